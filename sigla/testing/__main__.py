"""Run the GitHub Models double on its own: ``python -m sigla.testing [--port 8765]``.

For trying sigla (or any OpenAI-style client) with no account and no network: it prints
the variables to point sigla at it and serves until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import threading

from ._fake import FakeGitHubModels


def main(argv: list[str] | None = None) -> None:
    """Serve the double until interrupted, after printing how to point sigla at it."""
    parser = argparse.ArgumentParser(prog="python -m sigla.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--chunk-delay", type=float, default=0.05, help="seconds between chunks")
    parser.add_argument("--rpm", type=int, default=None, help="requests per minute to enforce")
    args = parser.parse_args(argv)
    fake = FakeGitHubModels(
        host=args.host,
        port=args.port,
        latency=args.latency,
        chunk_delay=args.chunk_delay,
        rpm=args.rpm,
    )
    with fake:
        print(f"A GitHub Models double is listening on {fake.url}", flush=True)
        print(f"  export SIGLA_LLM_ENDPOINT={fake.url} GITHUB_TOKEN=test", flush=True)
        print('  sigla chat "What is the capital of France?"   (Ctrl-C here to stop)', flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
