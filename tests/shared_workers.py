"""Functions that run in child processes of the shared-limiter tests (importable by name,
as multiprocessing's spawn start method needs)."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

TOKEN = "sk-shared-limiter-test-0123456789abcdef"
MODEL = "openai/gpt-4o-mini"


def client(url: str, limiter: str, **limits: int) -> Any:
    from sigla.llm import GitHubLLM, RateLimits

    return GitHubLLM(
        MODEL,
        token=TOKEN,
        endpoint=url,
        limits=RateLimits(**limits),
        limiter=limiter,
        max_retries=0,
    )


def map_prompts(
    url: str,
    limiter: str | None,
    prompts: list[str],
    limits: dict[str, int],
    barrier: Any,
    results: Any,
) -> None:
    """One worker's share of a batch, started with the others once all are ready (the SDK
    imported): each item's answer or its error's class name, put on ``results``."""
    llm = client(url, limiter, **limits)  # type: ignore[arg-type]
    llm._sdk()
    barrier.wait(60)
    out = llm.map(prompts, concurrency=4, return_exceptions=True)
    results.put([a if isinstance(a, str) else type(a).__name__ for a in out])


def hold_leases(limiter: str, count: int, ready: str) -> None:
    """Take ``count`` concurrent-request leases, say so in the file ``ready``, then sleep
    until killed (the test SIGKILLs this process)."""
    from sigla._limits import RateLimits, limiter_for
    from sigla._shared_limits import parse_limiter_url

    target = parse_limiter_url(limiter, "test")
    shared = limiter_for(
        "http://127.0.0.1:9/", MODEL, "digest", RateLimits(concurrent_requests=count),
        time.monotonic, store=target,
    )
    for _ in range(count):
        shared.acquire(5.0)
    with open(ready, "w") as file:
        file.write(str(os.getpid()))
    while True:
        time.sleep(0.05)


def pause_budget(limiter: str, seconds: float) -> None:
    """Set a pause for every worker of the budget, as a 429's retry-after does."""
    from sigla._limits import RateLimits, limiter_for
    from sigla._shared_limits import parse_limiter_url

    shared = limiter_for(
        "http://127.0.0.1:9/", MODEL, "digest", RateLimits(concurrent_requests=1),
        time.monotonic, store=parse_limiter_url(limiter, "test"),
    )
    shared.pause(seconds, "UserByModelByMinute")


if __name__ == "__main__":  # python shared_workers.py hold LIMITER COUNT READY
    if sys.argv[1] == "hold":
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        hold_leases(sys.argv[2], int(sys.argv[3]), sys.argv[4])


def release_twice(limiter: Any) -> None:
    """In a forked child: take a lease, then give back one more than it took."""
    limiter.acquire(5.0)
    limiter.release()
    limiter.release()  # must not give back the parent's lease
