"""Per-call cost of ``GitHubLLM.chat()`` against the bare mistralai SDK sending the same messages.

Why: sigla wraps ``Mistral.chat.complete`` (settings, message building, a body-rewriting
transport, error translation, retries). It also spares the SDK two pydantic model classes
per call (``pydantic.create_model`` in mistralai's ``utils.unmarshal``): it hands the SDK
typed message objects, and its transport validates the answer with the SDK's own
``ChatCompletionResponse`` class (``_transport.Claim``). On loopback, with no model latency
to hide behind, this shows what sigla adds to, or saves from, each call. Bar: sigla's
median per call at most 0.85x the bare SDK's, measured in the same run.

The bare SDK is ``Mistral(api_key=, server_url=, client=<a plain httpx.Client>)`` calling
``chat.complete`` with what ``chat("hi")`` sends: a system message and the user's, as dicts,
at temperature 0.7, with a timeout. Two more contenders frame it: the bare SDK given the same
messages as its own objects (``SystemMessage``, ``UserMessage``), and a raw ``httpx.Client``
POST (the floor). All run in interleaved rounds (a fresh random order each round) after a
warm-up, so machine noise falls on all of them alike.

The server runs in a child process, so that its work does not compete with the client's for
this process's GIL: by default ``_loopback.py``'s minimal server (``--server loopback``),
whose cost per request is a fraction of the double's; ``--server fake`` uses
``sigla.testing.FakeGitHubModels`` instead. Two clocks: wall time, and the CPU time of the
calling thread (what the client itself spends: the server's time and the machine's other
load are not in it), the steadier of the two on a busy machine.

    python benchmarks/bench_overhead.py                  # 400 calls each
    python benchmarks/bench_overhead.py --quick          # a tiny run
    python benchmarks/bench_overhead.py --checkout DIR   # measure another source tree's sigla
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

from _common import (
    add_checkout_option,
    interleaved,
    median,
    mistral_class,
    mistral_models,
    mistralai_version,
    ratio_line,
    result_line,
    row,
    sigla_origin,
    use_this_checkout,
)
from _loopback import serve

MODEL = "mistral-ai/Codestral-2501"
TARGET = 0.85


def timed(call: Callable[[], Any]) -> Callable[[], tuple[float, float]]:
    """``call`` made to return (wall seconds, CPU seconds of this thread)."""

    def run() -> tuple[float, float]:
        cpu = time.thread_time()
        started = time.perf_counter()
        call()
        return time.perf_counter() - started, time.thread_time() - cpu

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="timed calls per contender")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per contender")
    parser.add_argument("--server", choices=("loopback", "fake"), default="loopback")
    parser.add_argument("--quick", action="store_true", help="tiny run: 30 calls, 5 warm-up")
    add_checkout_option(parser)
    args = parser.parse_args()
    if args.quick:
        args.calls, args.warmup = 30, 5

    use_this_checkout(args.checkout)
    import httpx

    from sigla._constants import DEFAULT_SYSTEM_PROMPT, DEFAULT_TIMEOUT
    from sigla.llm import GitHubLLM

    models = mistral_models()
    as_dicts = [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "hi"},
    ]
    expected = "Echo: hi"

    with serve(args.server, sigla_origin()) as url:
        llm = GitHubLLM(endpoint=url, token="bench")
        bare = mistral_class()(api_key="bench", server_url=url, client=httpx.Client())
        raw = httpx.Client()
        raw_url = f"{url}/v1/chat/completions"
        raw_body = {"model": MODEL, "messages": as_dicts, "temperature": 0.7, "stream": False}
        timeout_ms = int(DEFAULT_TIMEOUT * 1000)

        def sigla_call() -> None:
            assert llm.chat("hi") == expected

        def bare_call() -> None:
            response = bare.chat.complete(
                model=MODEL, messages=as_dicts, temperature=0.7, timeout_ms=timeout_ms
            )
            assert response.choices[0].message.content == expected

        def bare_typed_call() -> None:
            typed = [
                models.SystemMessage(content=DEFAULT_SYSTEM_PROMPT),
                models.UserMessage(content="hi"),
            ]
            response = bare.chat.complete(
                model=MODEL, messages=typed, temperature=0.7, timeout_ms=timeout_ms
            )
            assert response.choices[0].message.content == expected

        def raw_call() -> None:
            response = raw.post(raw_url, json=raw_body, headers={"Authorization": "Bearer bench"})
            assert response.json()["choices"][0]["message"]["content"] == expected

        runners = {
            "sigla": sigla_call,
            "bare SDK": bare_call,
            "bare SDK, typed messages": bare_typed_call,
            "raw httpx": raw_call,
        }
        interleaved(runners, args.warmup, seed=1)
        gc.collect()
        samples = interleaved({name: timed(call) for name, call in runners.items()}, args.calls)
        raw.close()

    wall = {name: [s[0] for s in series] for name, series in samples.items()}
    cpu = {name: [s[1] for s in series] for name, series in samples.items()}
    print(
        f"bench_overhead: mistralai {mistralai_version()}, sigla from {sigla_origin()}, "
        f"{args.server} server in a child process, {args.calls} interleaved calls each after "
        f"{args.warmup} warm-up"
    )
    for clock, series in (("wall time", wall), ("CPU time of the calling thread", cpu)):
        print(f"per call, {clock}:")
        for name, values in series.items():
            print(row(name, values))
        print(ratio_line("sigla / bare SDK", series["sigla"], series["bare SDK"]))
        print(
            ratio_line(
                "bare SDK typed / bare SDK", series["bare SDK, typed messages"], series["bare SDK"]
            )
        )
        print(ratio_line("bare SDK / raw httpx", series["bare SDK"], series["raw httpx"]))
    extra = (median(cpu["sigla"]) - median(cpu["bare SDK, typed messages"])) * 1e3
    print(
        f"  sigla - bare SDK typed (CPU): {extra:+.3f} ms per call (sigla's layers, less the "
        "answer parse it spares the SDK)"
    )
    print(result_line("overhead", median(wall["sigla"]) / median(wall["bare SDK"]), TARGET))
    print(result_line("overhead_cpu", median(cpu["sigla"]) / median(cpu["bare SDK"]), TARGET))


if __name__ == "__main__":
    main()
