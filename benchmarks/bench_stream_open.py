"""The fixed cost of opening a stream, and the memory an open stream holds, against the bare SDK.

Why: ``GitHubLLM.stream()`` lets mistralai build and send the request, then reads the open
response itself. What a stream costs before its first piece (building the request, the
body rewrite, sending, the first event) is paid by every stream however short; what an
open stream holds is paid by every stream a program keeps open at once. Bars, each against
the bare SDK in the same run: time to first piece at most 0.85x, memory per open stream at
most 1.2x.

Server: ``_loopback.py``'s minimal server in a child process (``--server fake``: the double,
``sigla.testing.FakeGitHubModels``, Azure-style streams, which the bare SDK can parse).

Opening phase: each contender calls, then takes pieces until the first non-empty text; the
clocks (wall, and CPU of the calling thread) stop there. The rest of the answer is read
untimed so the connection goes back to the pool. The bare SDK is
``Mistral(api_key=, server_url=, client=<a plain httpx.Client>)``, ``chat.stream`` with the
same messages as dicts, iterated until the first event whose ``delta.content`` is non-empty.

Memory phase (loopback server only: its "hold" model sends one piece, then keeps the stream
open): each round opens N streams, takes their first piece and keeps them open, and counts
with ``tracemalloc`` what they hold (after a ``gc.collect()``), then closes them. Two
prompts: ``hi``, and 32,000 characters (GitHub's 8000-token input cap), because a prompt's
bytes are what an open stream may hold most of. N is at most 10: sigla's connection pool,
httpcore's default, holds 10 connections, and an 11th stream would wait for one. The sync
and the async API are measured alike.

    python benchmarks/bench_stream_open.py            # 200 openings, 15 memory rounds each
    python benchmarks/bench_stream_open.py --quick    # a tiny run
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from _common import (
    add_checkout_option,
    interleaved,
    median,
    mistral_class,
    mistralai_version,
    p90,
    paired_ratios,
    ratio_line,
    result_line,
    row,
    sigla_origin,
    us,
    use_this_checkout,
)
from _loopback import HOLD_MODEL, serve

MODEL = "mistral-ai/Codestral-2501"
TIME_TARGET = 0.85
MEMORY_TARGET = 1.2
LONG_PROMPT = "x" * 32_000


def first_content(event: Any) -> str:
    choices = event.data.choices
    content = choices[0].delta.content if choices else None
    return content if isinstance(content, str) else ""


def opening(args: argparse.Namespace, url: str, llm: Any, bare: Any) -> dict[str, list[Any]]:
    """(wall, CPU) from the call to the first piece, per contender and round."""
    from sigla._constants import DEFAULT_SYSTEM_PROMPT

    messages = [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "hi"},
    ]

    def sigla_open() -> tuple[float, float]:
        cpu, started = time.thread_time(), time.perf_counter()
        with llm.stream("hi") as stream:
            first = next(stream)
            spent = time.perf_counter() - started, time.thread_time() - cpu
            rest = "".join(stream)
        assert first and rest, "sigla: no text"
        return spent

    def bare_open() -> tuple[float, float]:
        cpu, started = time.thread_time(), time.perf_counter()
        with bare.chat.stream(model=MODEL, messages=messages, temperature=0.7) as events:
            first = ""
            for event in events:
                first = first_content(event)
                if first:
                    break
            spent = time.perf_counter() - started, time.thread_time() - cpu
            rest = "".join(first_content(event) for event in events)
        assert first and rest, "bare SDK: no text"
        return spent

    runners: dict[str, Callable[[], Any]] = {"sigla": sigla_open, "bare SDK": bare_open}
    interleaved(runners, args.warmup, seed=1)
    gc.collect()
    return interleaved(runners, args.streams, seed=2)


def memory(args: argparse.Namespace, url: str, token: str) -> dict[str, list[float]]:
    """Bytes held per open stream, per contender (sync and async, two prompts) and round."""
    import httpx

    from sigla.llm import GitHubLLM

    llm = GitHubLLM(HOLD_MODEL, endpoint=url, token=token)
    bare = mistral_class()(
        api_key=token, server_url=url, client=httpx.Client(), async_client=httpx.AsyncClient()
    )

    def messages(prompt: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": prompt}]

    def held(open_one: Callable[[], Any], close: Callable[[Any], None]) -> float:
        """Open one stream (warm-up), then N more: the bytes the N hold, per stream."""
        close(open_one())
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        streams = [open_one() for _ in range(args.held)]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        for stream in streams:
            close(stream)
        return (after - before) / args.held

    async def aheld(open_one: Callable[[], Any], close: Callable[[Any], Any]) -> float:
        await close(await open_one())
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        streams = [await open_one() for _ in range(args.held)]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        for stream in streams:
            await close(stream)
        return (after - before) / args.held

    def sigla_sync(prompt: str) -> Callable[[], float]:
        def open_one() -> Any:
            stream = llm.stream(prompt)
            assert next(stream)
            return stream

        return lambda: held(open_one, lambda s: s.close())

    def bare_sync(prompt: str) -> Callable[[], float]:
        def open_one() -> Any:
            stream = bare.chat.stream(model=HOLD_MODEL, messages=messages(prompt))
            assert first_content(next(iter(stream)))
            return stream

        return lambda: held(open_one, lambda s: s.response.close())

    def sigla_async(prompt: str) -> Callable[[], float]:
        async def open_one() -> Any:
            stream = llm.astream(prompt)
            assert await stream.__anext__()
            return stream

        async def close(stream: Any) -> None:
            await stream.aclose()

        return lambda: asyncio.run(aheld(open_one, close))

    def bare_async(prompt: str) -> Callable[[], float]:
        async def open_one() -> Any:
            stream = await bare.chat.stream_async(model=HOLD_MODEL, messages=messages(prompt))
            assert first_content(await stream.__aiter__().__anext__())
            return stream

        async def close(stream: Any) -> None:
            await stream.response.aclose()

        return lambda: asyncio.run(aheld(open_one, close))

    runners: dict[str, Callable[[], float]] = {}
    for size, prompt in (("hi", "hi"), ("32 KB", LONG_PROMPT)):
        runners[f"sigla, {size}"] = sigla_sync(prompt)
        runners[f"bare SDK, {size}"] = bare_sync(prompt)
        runners[f"sigla async, {size}"] = sigla_async(prompt)
        runners[f"bare SDK async, {size}"] = bare_async(prompt)
    interleaved(runners, 1, seed=3)  # first-use costs: caches, the async clients' pools
    return interleaved(runners, args.rounds, seed=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200, help="timed openings per contender")
    parser.add_argument("--warmup", type=int, default=15, help="untimed openings per contender")
    parser.add_argument("--rounds", type=int, default=15, help="memory rounds per contender")
    parser.add_argument("--held", type=int, default=10, help="streams held open per round")
    parser.add_argument("--server", choices=("loopback", "fake"), default="loopback")
    parser.add_argument("--quick", action="store_true", help="tiny run: 20 openings, 3 rounds")
    add_checkout_option(parser)
    args = parser.parse_args()
    if args.quick:
        args.streams, args.warmup, args.rounds = 20, 3, 3
    if not 1 <= args.held <= 10:
        parser.error("--held must be 1 to 10: sigla's connection pool holds 10 connections")

    use_this_checkout(args.checkout)
    import httpx

    from sigla.llm import GitHubLLM

    with serve(args.server, sigla_origin()) as url:
        llm = GitHubLLM(endpoint=url, token="bench")
        bare = mistral_class()(api_key="bench", server_url=url, client=httpx.Client())
        opened = opening(args, url, llm, bare)
        held = None
        if args.server == "loopback":
            held = memory(args, url, "bench")

    print(
        f"bench_stream_open: mistralai {mistralai_version()}, sigla from {sigla_origin()}, "
        f"{args.server} server in a child process, {args.streams} interleaved openings each "
        f"after {args.warmup} warm-up"
    )
    wall = {name: [s[0] for s in samples] for name, samples in opened.items()}
    cpu = {name: [s[1] for s in samples] for name, samples in opened.items()}
    for clock, series in (("wall", wall), ("CPU of the calling thread", cpu)):
        print(f"call -> first piece, {clock}:")
        for name, values in series.items():
            print(row(name, values, us))
        print(ratio_line("sigla / bare SDK", series["sigla"], series["bare SDK"]))
    results = [
        result_line("stream_open", median(wall["sigla"]) / median(wall["bare SDK"]), TIME_TARGET),
        result_line("stream_open_cpu", median(cpu["sigla"]) / median(cpu["bare SDK"]), TIME_TARGET),
    ]
    if held is not None:
        print(
            f"memory held per open stream (tracemalloc, {args.held} streams held open, "
            f"{args.rounds} interleaved rounds):"
        )
        for name, values in held.items():
            print(
                f"  {name:<28} median {median(values) / 1024:7.1f} KB   "
                f"p90 {p90(values) / 1024:7.1f} KB"
            )
        for api in ("", " async"):
            for size in ("hi", "32 KB"):
                mine, theirs = held[f"sigla{api}, {size}"], held[f"bare SDK{api}, {size}"]
                label = f"sigla{api} / bare SDK{api}, {size}"
                print(ratio_line(label, mine, theirs))
                ratio = median(mine) / median(theirs)
                name = f"stream_memory{api.replace(' ', '_')}_{size.replace(' ', '')}"
                results.append(result_line(name, ratio, MEMORY_TARGET))
        worst = max(
            median(paired_ratios(held[f"sigla{api}, {size}"], held[f"bare SDK{api}, {size}"]))
            for api in ("", " async")
            for size in ("hi", "32 KB")
        )
        print(f"  worst of the four (paired median): {worst:.3f}x")
    for line in results:
        print(line)


if __name__ == "__main__":
    main()
