"""Per-call overhead of ``GitHubLLM.chat()`` against the bare mistralai SDK.

Why: sigla wraps ``Mistral.chat.complete`` (settings, message building, a body-rewriting
transport, error translation, retries). On loopback, with no model latency to hide behind,
this shows what the wrapper adds to each call. Bar: sigla's median per call at most 1.05x
the bare SDK's, measured in the same run.

All contenders talk to one ``sigla.testing.FakeGitHubModels`` (no latency) in this process,
in interleaved rounds (a fresh random order each round) after a warm-up, so machine noise
falls on all of them alike. A raw ``httpx.Client`` POST is the floor.
The baseline sends what the original SIGLA code sent through the bare SDK, and what
``chat("hi")`` sends: a system message and the user's, at temperature 0.7, with a timeout.
A fourth contender, the bare SDK with the user message alone, shows what the second message
costs inside the SDK (it validates and serialises every message with pydantic).

    python benchmarks/bench_overhead.py            # 400 calls each
    python benchmarks/bench_overhead.py --quick    # a tiny run
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

from _common import (
    interleaved,
    median,
    mistral_class,
    mistralai_version,
    result_line,
    row,
    use_this_checkout,
)

MODEL = "mistral-ai/Codestral-2501"
TARGET = 1.05


def timed(call: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="timed calls per contender")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per contender")
    parser.add_argument("--quick", action="store_true", help="tiny run: 30 calls, 5 warm-up")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.warmup = 30, 5

    use_this_checkout()
    import httpx

    from sigla._constants import DEFAULT_SYSTEM_PROMPT, DEFAULT_TIMEOUT
    from sigla.llm import GitHubLLM
    from sigla.testing import FakeGitHubModels

    user = [{"role": "user", "content": "hi"}]
    as_sigla = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, *user]

    with FakeGitHubModels() as fake:
        llm = GitHubLLM(endpoint=fake.url, token="bench")
        bare = mistral_class()(api_key="bench", server_url=fake.url)
        raw = httpx.Client()
        raw_url = f"{fake.url}/v1/chat/completions"
        raw_body = {"model": MODEL, "messages": user, "temperature": 0.7, "stream": False}

        def sigla_call() -> None:
            assert llm.chat("hi") == "Echo: hi"

        def bare_call() -> None:
            response = bare.chat.complete(model=MODEL, messages=user, temperature=0.7)
            assert response.choices[0].message.content == "Echo: hi"

        def bare_as_sigla_call() -> None:
            response = bare.chat.complete(
                model=MODEL,
                messages=as_sigla,
                temperature=0.7,
                timeout_ms=int(DEFAULT_TIMEOUT * 1000),
            )
            assert response.choices[0].message.content == "Echo: hi"

        def raw_call() -> None:
            response = raw.post(raw_url, json=raw_body, headers={"Authorization": "Bearer bench"})
            assert response.json()["choices"][0]["message"]["content"] == "Echo: hi"

        runners = {
            "sigla": sigla_call,
            "bare SDK": bare_as_sigla_call,
            "bare SDK, user message only": bare_call,
            "raw httpx": raw_call,
        }
        interleaved(runners, args.warmup, seed=1)
        gc.collect()
        times = interleaved({name: timed(call) for name, call in runners.items()}, args.calls)
        statuses = {r.status for r in fake.requests}
        raw.close()

    sigla_s, bare_s, one_s, raw_s = (
        median(times[name])
        for name in ("sigla", "bare SDK", "bare SDK, user message only", "raw httpx")
    )
    paired = median([s / b for s, b in zip(times["sigla"], times["bare SDK"], strict=True)])
    ratio = sigla_s / bare_s
    print(
        f"bench_overhead: mistralai {mistralai_version()}, {args.calls} interleaved calls each "
        f"after {args.warmup} warm-up, statuses seen {sorted(statuses)}"
    )
    print("per-call wall time:")
    for name, series in times.items():
        print(row(name, series))
    extra_ms, message_ms = (sigla_s - bare_s) * 1e3, (bare_s - one_s) * 1e3
    print(f"  sigla - bare SDK                {extra_ms:+8.3f} ms per call (sigla's layers)")
    print(f"  a second message in the SDK     {message_ms:+8.3f} ms per call")
    print(f"  ratio sigla / bare SDK          {ratio:8.3f}x (paired per round: {paired:.3f}x)")
    print(f"  ratio bare SDK / raw httpx      {bare_s / raw_s:8.3f}x (the SDK's own cost)")
    print(result_line("overhead", ratio, TARGET))


if __name__ == "__main__":
    main()
