"""Streaming latency and per-event cost of ``GitHubLLM.stream()`` against the bare mistralai SDK.

Why: ``stream()`` reads the SDK's open HTTP response and parses each SSE event with ``json``
instead of letting the SDK validate it with pydantic. That must not delay the first piece
(bar: time to first piece at most 1.05x the bare SDK's, same run), must cost less per event
than the SDK, and must not buffer: each piece is yielded while the service is still sending.

Latency phase: both contenders stream the same scripted ~20-chunk answer from one
``sigla.testing.FakeGitHubModels`` in this process, with a small delay between events, in
interleaved rounds after a warm-up. Time to first piece runs from the double's
``chunk_times[0]`` (a ``time.perf_counter()`` taken right after it wrote the first content
event) to the moment the client hands over the first non-empty text; the bare SDK is iterated
until the first event whose ``choices[0].delta.content`` is non-empty. The double runs with
``stream_style="azure"``: the bare SDK cannot parse GitHub's first chunk (it has no ``model``).

Burst phase: no delay between events, short and long answers, to get the cost of one more
event on the wire (the slope), which is what a long answer pays per chunk.

    python benchmarks/bench_stream.py            # 200 streams each
    python benchmarks/bench_stream.py --quick    # a tiny run
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from _common import (
    interleaved,
    median,
    mistral_class,
    mistralai_version,
    result_line,
    row,
    us,
    use_this_checkout,
)

MODEL = "mistral-ai/Codestral-2501"
TARGET = 1.05
SHORT, LONG = 20, 200  # content chunks per answer


def answer(chunks: int) -> list[str]:
    return [f"word{i} " for i in range(chunks)]


@dataclass(frozen=True)
class Sample:
    """One stream as seen from both ends."""

    first_latency: float  # first content event written -> first piece in the caller's hands
    total: float  # call -> iteration finished
    cpu: float  # CPU time of the calling thread for the whole stream
    most_ahead: int  # most content events the double had written beyond the piece yielded
    first_before_last: bool  # first piece came out before the last content event was written
    text: str


def measure(fake: Any, pieces: Callable[[], Iterator[str]], chunks: list[str]) -> Sample:
    """Script ``chunks`` as the next answer, run one stream and time it against the double."""
    fake.reply("".join(chunks), chunks=chunks)
    received: list[str] = []
    first, written, ahead = None, [], 0
    cpu_started = time.thread_time()
    started = time.perf_counter()
    for piece in pieces():
        if first is None:
            first = time.perf_counter()
            written = fake.last_request.chunk_times  # the double appends to this very list
        received.append(piece)
        ahead = max(ahead, len(written) - len(received))
    total = time.perf_counter() - started
    cpu = time.thread_time() - cpu_started
    assert first is not None, "the stream yielded no text"
    return Sample(
        first_latency=first - written[0],
        total=total,
        cpu=cpu,
        most_ahead=ahead,
        first_before_last=first < written[-1],
        text="".join(received),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200, help="timed streams per contender")
    parser.add_argument("--warmup", type=int, default=15, help="untimed streams per contender")
    parser.add_argument("--burst", type=int, default=30, help="burst-phase rounds")
    parser.add_argument("--chunk-delay", type=float, default=0.002, help="seconds between events")
    parser.add_argument("--quick", action="store_true", help="tiny run: 20 streams, 3 warm-up")
    args = parser.parse_args()
    if args.quick:
        args.streams, args.warmup, args.burst = 20, 3, 5

    use_this_checkout()
    from sigla.llm import GitHubLLM
    from sigla.testing import FakeGitHubModels

    with FakeGitHubModels(stream_style="azure", chunk_delay=args.chunk_delay) as fake:
        llm = GitHubLLM(endpoint=fake.url, token="bench")
        bare = mistral_class()(api_key="bench", server_url=fake.url)

        def sigla_pieces() -> Iterator[str]:
            yield from llm.stream("hi")

        def bare_pieces() -> Iterator[str]:
            stream = bare.chat.stream(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=0.7
            )
            with stream as events:
                for event in events:
                    choices = event.data.choices
                    content = choices[0].delta.content if choices else None
                    if isinstance(content, str) and content:
                        yield content

        contenders = {"sigla": sigla_pieces, "bare SDK": bare_pieces}

        def runners(chunks: list[str]) -> dict[str, Callable[[], Sample]]:
            return {name: (lambda f=f: measure(fake, f, chunks)) for name, f in contenders.items()}

        short, long = answer(SHORT), answer(LONG)
        interleaved(runners(short), args.warmup, seed=1)
        gc.collect()
        latency = interleaved(runners(short), args.streams)

        fake.chunk_delay = 0.0
        burst = {
            f"{name} {size}": series
            for size, chunks in ((SHORT, short), (LONG, long))
            for name, series in interleaved(runners(chunks), args.burst, seed=size).items()
        }
        statuses = {r.status for r in fake.requests}

    events = SHORT + 3  # the filter-results event, the role chunk, the content, the finish chunk
    print(
        f"bench_stream: mistralai {mistralai_version()}, {args.streams} interleaved streams each "
        f"of {SHORT} content chunks ({events} events), {args.chunk_delay * 1e3:g} ms between "
        f"events, after {args.warmup} warm-up; statuses seen {sorted(statuses)}"
    )
    for name, samples in latency.items():
        assert all(s.text == "".join(short) for s in samples), f"{name}: wrong text"
    print("time to first piece (double wrote the first content event -> caller has it):")
    for name, samples in latency.items():
        print(row(name, [s.first_latency for s in samples], us))
    first_s, first_b = (median([s.first_latency for s in latency[k]]) for k in contenders)
    ratio = first_s / first_b
    print(f"  ratio sigla / bare SDK      {ratio:8.3f}x (of medians)")
    negative = {k: sum(s.first_latency < 0 for s in v) for k, v in latency.items()}
    if any(negative.values()):
        print(f"  negative readings (client ran before the double timed its write): {negative}")

    print("whole stream, wall time (mostly the double's delays):")
    for name, samples in latency.items():
        print(row(name, [s.total for s in samples]))
    print("client-thread CPU per stream (building and sending the request included):")
    for name, samples in latency.items():
        print(row(name, [s.cpu for s in samples]))
    cpu_s, cpu_b = (median([s.cpu for s in latency[k]]) for k in contenders)
    print(f"  ratio sigla / bare SDK      {cpu_s / cpu_b:8.3f}x")

    print(f"burst, no delay, {args.burst} rounds: streams of {SHORT} and {LONG} content chunks")
    slopes: dict[str, dict[str, float]] = {"wall": {}, "CPU": {}}
    for name in contenders:
        short_runs, long_runs = burst[f"{name} {SHORT}"], burst[f"{name} {LONG}"]
        print(row(f"{name} {SHORT}, wall", [s.total for s in short_runs]))
        print(row(f"{name} {LONG}, wall", [s.total for s in long_runs]))
        for kind, get in (("wall", attrgetter("total")), ("CPU", attrgetter("cpu"))):
            spread = median(list(map(get, long_runs))) - median(list(map(get, short_runs)))
            slopes[kind][name] = spread / (LONG - SHORT)
    print("cost of one more event (slope between the two lengths):")
    for kind, slope in slopes.items():
        costs = "   ".join(f"{name} {us(value)}" for name, value in slope.items())
        print(f"  {kind:<5} {costs}   ratio {slope['sigla'] / slope['bare SDK']:6.3f}x")

    print("no buffering (each piece comes out while the double is still sending):")
    for name, samples in latency.items():
        early = sum(s.first_before_last for s in samples)
        ahead = max(s.most_ahead for s in samples)
        verdict = "OK" if early == len(samples) and ahead <= 1 else "BUFFERED?"
        print(
            f"  {name:<9} first piece out before the last chunk was written: {early}/{len(samples)}"
            f" streams; most chunks written ahead of the piece being yielded: {ahead} of {SHORT}"
            f" -> {verdict}"
        )
    print(result_line("stream_first_piece", ratio, TARGET))


if __name__ == "__main__":
    main()
