"""Run the GitHub Models double on its own, or run a command against it.

  python -m sigla.testing [options]                     serve until Ctrl-C (port 8765)
  python -m sigla.testing [options] -- CMD [ARGS...]    serve while CMD runs (a free port)

For trying sigla (or any OpenAI-style client) with no account and no network: on its own
it prints the variables to point sigla at it and serves until interrupted. ``--fail``
scripts the faults of :data:`sigla.testing.FAULTS`, so a client's error handling can be
tried by hand.

After ``--``, CMD runs with the double's address in its environment
(SIGLA_LLM_PROVIDER=github, SIGLA_LLM_ENDPOINT=<the double's URL>, GITHUB_TOKEN=test) and
without the variables that would send sigla elsewhere or hand it a real credential
(MISTRAL_API_KEY, AZURE_API_KEY, AZURE_ENDPOINT, AZURE_API_VERSION, SIGLA_LLM_API_KEY).
It shares the terminal: stdin, stdout, stderr, and Ctrl-C, which reaches it directly;
SIGTERM and SIGHUP are passed on to it. The double prints nothing and stops when CMD
exits; the exit status is CMD's (128+N if signal N ended it, 127 if CMD is not found).
In CI: ``python -m sigla.testing -- pytest``; for a demo:
``python -m sigla.testing --reply extractive --rpm 15 -- python my_pipeline.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys
import textwrap
import threading
from typing import Any

from ._command import _run_command
from ._contract import _REPLY_MODES, FAULTS
from ._fake import FakeGitHubModels

_PROG = "python -m sigla.testing"

_FAIL_HELP = """\
--fail NAME[:TIMES][,PARAM=VALUE...] (repeatable) queues fault NAME for the next TIMES
inference requests (default 1; '*' for every request), in the order given. PARAMs are those
of FakeGitHubModels.fail(); numbers are read as numbers.
{faults}
Examples:
  --fail rate_limit_day --fail server_error
  --fail rate_limit_minute:2,retry_after=3
  --fail server_error:*,status=503"""


def _parse_fault(spec: str) -> tuple[str, int | None, dict[str, Any]]:
    """Split ``NAME[:TIMES][,PARAM=VALUE...]``; raise ValueError saying what is wrong."""
    head, *pairs = spec.split(",")
    name, _, count = head.partition(":")
    times: int | None = 1
    if count == "*":
        times = None
    elif count:
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--fail {spec!r}: TIMES must be a positive integer or '*'")
        times = int(count)
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--fail {spec!r}: expected PARAM=VALUE after a comma, got {pair!r}")
        value: Any = raw
        for kind in (int, float):
            with contextlib.suppress(ValueError):
                value = kind(raw)
                break
        params[key.strip()] = value
    return name.strip(), times, params


def _positive(raw: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not raw.strip().isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {raw!r}")
    return int(raw)


def _describe(name: str, times: int | None, params: dict[str, Any]) -> str:
    count = "every request" if times is None else f"x{times}"
    args = "".join(f", {k}={v}" for k, v in params.items())
    return f"{name} ({count}{args})"


def main(argv: list[str] | None = None) -> int:
    """Serve the double until interrupted, after printing how to point sigla at it, or run
    the command given after ``--`` against it.

    Returns the exit code: 0 after Ctrl-C, 2 for bad options, 1 when it cannot listen, or
    the command's (see :func:`sigla.testing._command._run_command`).
    """
    options = list(sys.argv[1:] if argv is None else argv)
    command: list[str] | None = None
    if "--" in options:
        cut = options.index("--")
        options, command = options[:cut], options[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog=_PROG,
        usage="%(prog)s [options] [-- CMD [ARGS...]]",
        description=__doc__,
        epilog=_FAIL_HELP.format(
            faults=textwrap.fill(", ".join(FAULTS) + ".", 88, initial_indent="Faults: ")
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, help="port (0: any free one; default 8765, or 0 with a command)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before answering")
    parser.add_argument(
        "--chunk-delay",
        type=float,
        help="seconds between stream chunks (default 0.05, or 0 with a command)",
    )
    limits = parser.add_argument_group(
        "enforced limits", "per token and model (concurrency: per token); over one, a 429"
    )
    limits.add_argument("--rpm", type=_positive, metavar="N", help="requests per minute")
    limits.add_argument("--daily", type=_positive, metavar="N", help="requests per day")
    limits.add_argument(
        "--tpm",
        type=_positive,
        metavar="N",
        help="estimated tokens per minute: input (characters / 4) plus max_tokens",
    )
    limits.add_argument("--concurrency", type=_positive, metavar="N", help="requests at once")
    parser.add_argument(
        "--reply",
        choices=_REPLY_MODES,
        default="echo",
        help="unscripted replies: 'echo' the last user message, or 'extractive': its first "
        "sentence of each paragraph, like a summary (default: echo)",
    )
    parser.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="NAME[:TIMES][,PARAM=VALUE...]",
        help="queue a fault (repeatable; see below)",
    )
    args = parser.parse_args(options)
    if command == []:
        print(f"{_PROG}: expected a command after '--'", file=sys.stderr)
        return 2
    port = args.port if args.port is not None else 0 if command else 8765
    chunk_delay = args.chunk_delay if args.chunk_delay is not None else 0 if command else 0.05
    fake = FakeGitHubModels(
        host=args.host,
        port=port,
        latency=args.latency,
        chunk_delay=chunk_delay,
        rpm=args.rpm,
        daily=args.daily,
        tpm=args.tpm,
        concurrency=args.concurrency,
        reply_mode=args.reply,
    )
    scripted: list[str] = []
    for spec in args.fail:
        try:
            name, times, params = _parse_fault(spec)
            fake.fail(name, times, **params)
        except (ValueError, TypeError) as exc:  # fail() names the valid faults and parameters
            print(f"{_PROG}: {exc}", file=sys.stderr)
            return 2
        scripted.append(_describe(name, times, params))
    try:
        fake.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = f"port {port} on {args.host} is already in use"
        else:
            reason = f"cannot listen on {args.host}:{port} ({exc.strerror or exc})"
        print(f"{_PROG}: {reason}; try --port 0 for any free port", file=sys.stderr)
        return 1
    with fake:
        if command:
            return _run_command(command, fake.url, _PROG)
        print(f"A GitHub Models double is listening on {fake.url}", flush=True)
        print(f"  export SIGLA_LLM_ENDPOINT={fake.url} GITHUB_TOKEN=test", flush=True)
        if scripted:
            print(f"  scripted faults, in order: {'; '.join(scripted)}", flush=True)
        print('  sigla chat "What is the capital of France?"   (Ctrl-C here to stop)', flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
