#!/usr/bin/env bash
# Mutation testing of one sigla module with mutmut, e.g. `bash tests/mutation.sh _retry`.
# Not part of CI or of `python -m pytest`. The first run builds .mutvenv/ (git-ignored) with
# sigla[dev] and mutmut; MUTATION_PYTHON=/path/to/python uses another environment instead
# (it needs mutmut 3.x). See tests/mutation.py for what it reports.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${MUTATION_PYTHON:-.mutvenv/bin/python}"
if [ ! -x "$(dirname "$python")/mutmut" ]; then
    if [ -n "${MUTATION_PYTHON:-}" ]; then
        echo "mutation: no mutmut next to $python" >&2
        exit 2
    fi
    python3 -m venv .mutvenv
    .mutvenv/bin/pip install --quiet -e '.[dev]' 'mutmut>=3.8,<4'
fi
exec nice -n 10 "$python" tests/mutation.py "$@"
