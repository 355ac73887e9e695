"""Batch throughput under a service's limits, and the cost of a cache hit, as ratios.

Why: ``llm.map`` promises to run a batch as fast as the service's limits allow without
collecting 429s, and the response cache promises that a repeated call costs next to nothing.
Every number here is a ratio against an ideal or a baseline measured in the same run, against
``sigla.testing.FakeGitHubModels`` (a fresh double per run, so no window or learned
concurrency leaks from one run into the next). Each run is warmed up with one ``chat`` (the
SDK import and the client's build are not timed), then the double's log is reset.

1. known cap: the double allows ``concurrency=2`` at ``latency=0.2`` s and the client is told
   (``RateLimits(concurrent_requests=2)``). Throughput = ideal / wall time, ideal = N / 2 x
   0.2 s. Targets: >= 0.95, zero 429s, the double's ``max_in_flight`` <= 2. Measured twice:
   the double in this process (its log gives 429s and the in-flight maximum; its threads
   compete with the client's for the GIL) and in a child process, as a real service is.
2. unknown cap: the same double, the client not told (adaptive concurrency, AIMD). Targets:
   >= 0.85, at most 10 % of the requests sent answered 429, all N answers.
3. per-minute limit: the double's ``rpm=20`` and the client's ``RateLimits(requests_per_minute=
   20)`` on one fast clock (see :class:`FastClock`), 2 x 20 + 1 prompts (quick: 21); the ideal
   is in :func:`per_minute`. Targets: >= 0.9 of the limit, zero 429s.
4. beside each of 1-3, what a user would write: a ``ThreadPoolExecutor`` calling ``llm.chat``
   with as many threads as map starts with in flight (1: the cap + 1; 2 and 3: 4, adaptive's
   start), same client settings, same double (no target: the comparison).
5. cache hit: a ``chat`` answered from ``cache=<tmp file>`` (the same prompt again) against a
   ``chat`` to the double at latency 0 in a child process, in interleaved rounds (per-call
   median ratio; no target, reported).
6. ``summarize_capsules`` of 1,000 synthetic capsules (quick: 200) against the double's
   extractive replies: requests sent against a lower bound (see :func:`capsule_requests`).
   Target: at most 1.1x.

    python benchmarks/pipeline.py            # 60 prompts per run
    python benchmarks/pipeline.py --quick    # 20 prompts, fewer rounds
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import (
    FastClock,
    interleaved,
    median,
    ratio_line,
    result_line,
    row,
    sigla_origin,
    use_this_checkout,
)
from _loopback import serve

CAP, LATENCY = 2, 0.2
RPM = 20  # requests per minute of the per-minute run
# The fast clock: one minute of it lasts five real seconds. Not faster: the limiter's 1 s
# margin per minute shrinks to 1/SPEED s of real time, and at 30x (33 ms) a busy machine's
# delay between a request's booking and the double reading it (up to ~60 ms seen) drew 429s
# that cannot happen at real speed.
SPEED = 12.0
RPM_LATENCY = 0.02  # real seconds (0.24 s of the fast clock)


class Run:
    """What one batch did: its wall time (s) and the double's log."""

    def __init__(
        self, label: str, results: Sequence[Any], started: float, wall: float, fake: Any
    ) -> None:
        self.label = label
        self.started = started
        self.wall = wall
        self.answers = sum(isinstance(r, str) for r in results)
        self.lost = len(results) - self.answers
        self.log = [r for r in fake.requests if r.path.endswith("/chat/completions")]
        self.sent = len(self.log)
        self.refused = sum(r.status == 429 for r in self.log)
        self.max_in_flight = fake.max_in_flight

    def line(self, ideal: float) -> str:
        return (
            f"  {self.label:<22} throughput: {ideal / self.wall:5.3f} of the limit   "
            f"{self.refused:3d} x 429 of {self.sent} sent   max in flight {self.max_in_flight}   "
            f"{self.answers} answers, {self.lost} lost   ({self.wall:.2f} s)"
        )

    def span(self) -> float:
        """Seconds from the first request the double read to the last answer it finished."""
        done = [r.finished_at for r in self.log if r.finished_at is not None]
        return max(done) - min(r.received_at for r in self.log)

    def timings(self) -> str:
        """Where time goes besides the latency: the client's start (call to first request
        read), how long a freed slot stays empty (an answer's last bytes to the next request
        read, median), and the double's own time beyond its latency (median)."""
        done = sorted(r.finished_at for r in self.log if r.finished_at is not None)
        came = sorted(r.received_at for r in self.log)
        refill = [min(c for c in came if c >= f) - f for f in done if f <= came[-1]]
        served = [r.finished_at - r.received_at - LATENCY for r in self.log if r.status == 200]
        return (
            f"    start {1e3 * (came[0] - self.started):.0f} ms, slot refill median "
            f"{1e3 * median(refill or [0.0]):.1f} ms, double's time over latency median "
            f"{1e3 * median(served):.1f} ms"
        )


def batch(llm: Any, prompts: list[str], how: str, threads: int) -> list[Any]:
    if how == "map":
        return llm.map(prompts, progress=False, return_exceptions=True)
    from sigla.errors import LLMError

    def call(prompt: str) -> Any:  # what a user writes, errors kept to be counted
        try:
            return llm.chat(prompt)
        except LLMError as error:
            return error

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(call, prompts))


def one_run(
    label: str,
    how: str,
    threads: int,
    prompts: list[str],
    double: dict[str, Any],
    client: dict[str, Any],
    before: Callable[[], None] = lambda: None,
) -> Run:
    from sigla.llm import GitHubLLM
    from sigla.testing import FakeGitHubModels

    with FakeGitHubModels(**double) as fake:
        llm = GitHubLLM(endpoint=fake.url, token="bench", **client)
        llm.chat("warm-up")
        before()
        fake.reset()
        started = time.perf_counter()
        results = batch(llm, prompts, how, threads)
        wall = time.perf_counter() - started
        return Run(label, results, started, wall, fake)


def in_child_process(prompts: list[str], told: bool) -> tuple[float, int, int]:
    """Part 1 or 2 with the double in a child process, as a real service is: the client
    then has the GIL to itself. Wall time, answers, and 429s the client met (its retries;
    the child's log is out of reach)."""
    import subprocess
    import sys

    from sigla.llm import GitHubLLM, RateLimits

    command = [sys.executable, "-m", "sigla.testing", "--port", "0"]
    command += ["--latency", str(LATENCY), "--concurrency", str(CAP)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        url = child.stdout.readline().split()[-1]
        limits = {"limits": RateLimits(concurrent_requests=CAP)} if told else {}
        llm = GitHubLLM(endpoint=url, token="bench", **limits)
        llm.chat("warm-up")
        before = llm.usage.snapshot()
        started = time.perf_counter()
        results = llm.map(prompts, progress=False, return_exceptions=True)
        wall = time.perf_counter() - started
        answers = sum(isinstance(r, str) for r in results)
        return wall, answers, (llm.usage.snapshot() - before).retries
    finally:
        child.terminate()
        child.wait(5)


def verdict(name: str, value: float, at_least: float, ok: bool, note: str) -> str:
    passed = "PASS" if ok and value >= at_least else "MISS"
    return f"RESULT {name} ratio={value:.3f} target>={at_least:.2f}{note} ({passed})"


def concurrency(n: int, told: bool) -> tuple[Run, Run, float]:
    from sigla.llm import RateLimits

    prompts = [f"prompt {i}" for i in range(n)]
    ideal = n / CAP * LATENCY
    double = {"latency": LATENCY, "concurrency": CAP}
    client = {"limits": RateLimits(concurrent_requests=CAP)} if told else {}
    naive = CAP + 1 if told else 4
    mapped = one_run("llm.map", "map", 0, prompts, double, client)
    pool = one_run(f"ThreadPool({naive}) chat", "naive", naive, prompts, double, client)
    return mapped, pool, ideal


def per_minute(windows: int) -> tuple[Run, Run, float, int]:
    """``windows`` x RPM + 1 prompts under RPM requests per minute.

    The ideal: a sliding 60 s window holds at most RPM requests, so the k-th request
    (from 0) can be read no earlier than the (k - RPM)-th plus 60 s: RPM at once at t=0,
    RPM more at 60 s, ... The last of ``windows`` x RPM + 1 requests is read at
    ``windows`` x 60 s at best and answered a latency later: ideal = windows x 60 s +
    latency, in the fast clock's seconds. It is compared with the same span as the double
    saw it (first request read to last answer finished, real seconds x SPEED): the client's
    start-up is left out, because the fast clock would multiply those real milliseconds by
    SPEED while the window does not shrink at real speed. sigla's limiter keeps a 1 s margin
    per minute for clock and network skew (61 s windows), so its best is 60/61 = 0.984.
    """
    from sigla.llm import RateLimits

    n = windows * RPM + 1
    prompts = [f"prompt {i}" for i in range(n)]
    ideal = windows * 60.0 + RPM_LATENCY * SPEED
    runs = []
    for label, how in (("llm.map", "map"), ("ThreadPool(4) chat", "naive")):
        clock = FastClock(SPEED)
        double = {"latency": RPM_LATENCY, "rpm": RPM, "clock": clock}
        client = {
            "limits": RateLimits(requests_per_minute=RPM),
            "clock": clock,
            "sleep": clock.sleep,
            "async_sleep": clock.async_sleep,
        }
        # After the warm-up, a minute passes for both sides: its booking leaves both windows.
        run = one_run(label, how, 4, prompts, double, client, before=lambda c=clock: c.advance(61))
        run.wall = run.span() * SPEED
        runs.append(run)
    return runs[0], runs[1], ideal, n


def cache_hit(rounds: int) -> tuple[list[float], list[float]]:
    from sigla.llm import GitHubLLM

    with tempfile.TemporaryDirectory() as tmp, serve("fake", sigla_origin()) as url:
        cached = GitHubLLM(endpoint=url, token="bench", cache=Path(tmp) / "answers.sqlite")
        plain = GitHubLLM(endpoint=url, token="bench", cache=False)

        def timed(llm: Any) -> float:
            started = time.perf_counter()
            llm.chat("hi")
            return time.perf_counter() - started

        runners = {"hit": lambda: timed(cached), "sent": lambda: timed(plain)}
        interleaved(runners, 10, seed=1)  # warm-up; the first fills the cache
        got = interleaved(runners, rounds)
        if cached.cache is not None:
            cached.cache.close()
    return got["hit"], got["sent"]


def synthetic_capsules(count: int) -> list[dict[str, Any]]:
    """Capsules of 1-4 paragraphs of 2-5 sentences; every 100th has 40 paragraphs (split)."""
    rng = random.Random(7)
    words = [f"{a}{b}" for a in ("cache", "queue", "node", "lock", "disk") for b in "aeiouy"]

    def paragraph() -> str:
        return " ".join(
            " ".join(rng.choices(words, k=rng.randint(6, 18))).capitalize() + "."
            for _ in range(rng.randint(2, 5))
        )

    return [
        {
            "id": f"cap-{i}",
            "title": f"Incident {i}",
            "score": rng.random(),
            "text": "\n\n".join(
                paragraph() for _ in range(40 if i % 100 == 99 else rng.randint(1, 4))
            ),
        }
        for i in range(count)
    ]


def capsule_requests(count: int) -> tuple[int, int, int]:
    """Requests ``summarize_capsules`` sent, and the fewest its map and reduce stages need.

    Map: ceil(tokens of all capsules as rendered / a map request's room). Reduce: for each
    round, ceil(tokens of the partial summaries it was given, as rendered / a reduce
    request's room). Tokens, rooms and rendering are capsules.py's own (its counter and
    budget), so the bound counts what sigla counts; the packing is what is measured.
    """
    from sigla import capsules as C
    from sigla.llm import GitHubLLM
    from sigla.testing import FakeGitHubModels

    items = synthetic_capsules(count)
    with FakeGitHubModels(reply_mode="extractive") as fake:
        llm = GitHubLLM(endpoint=fake.url, token="bench")
        run = C._prepare(items, llm, 8000, C.MAP_PROMPT, C.REDUCE_PROMPT)
        tokens, sep = run.budget.counter.count, run.budget.counter.count(C.SEPARATOR)

        def need(texts: list[str], room: int) -> int:
            return math.ceil((sum(tokens(t) + sep for t in texts) - sep) / room)

        stages: list[list[str]] = []  # each llm.map's answers
        plain_map = llm.map
        llm.map = lambda *a, **k: stages.append(plain_map(*a, **k)) or stages[-1]  # type: ignore
        C.summarize_capsules(items, llm=llm, max_input_tokens=8000, progress=False)
        sent = sum(r.path.endswith("/chat/completions") for r in fake.requests)
    bound = need([C.Capsule(**c).render() for c in items], run.map_room)
    for answers in stages[:-1]:
        partials = [
            C.Capsule(a.strip(), title=f"Partial summary {i}") for i, a in enumerate(answers, 1)
        ]
        bound += need([p.render() for p in partials], run.reduce_room)
    return sent, bound, len(stages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 prompts, fewer rounds")
    args = parser.parse_args()
    n, windows, rounds, capsules = (20, 1, 40, 200) if args.quick else (60, 2, 200, 1000)

    use_this_checkout()
    print(f"pipeline: sigla from {sigla_origin()}, {n} prompts per concurrency run")

    verdicts = []
    prompts = [f"prompt {i}" for i in range(n)]
    for told, name, target in ((True, "map_known_cap", 0.95), (False, "map_adaptive", 0.85)):
        print(
            f"1. cap known: double concurrency={CAP}, latency={LATENCY} s, client told"
            if told
            else "2. cap unknown (adaptive): the same double, client not told"
        )
        mapped, pool, ideal = concurrency(n, told)
        for run in (mapped, pool):
            print(run.line(ideal))
            print(run.timings())
        if told:  # zero 429s, the cap kept
            ok, note = (
                mapped.refused == 0 and mapped.max_in_flight <= CAP,
                ", 0 x 429, <=2 in flight",
            )
        else:
            ok, note = mapped.refused <= 0.1 * mapped.sent, ", <=10% 429"
        ok, note = ok and mapped.lost == 0, note + ", none lost"
        verdicts.append(verdict(name, ideal / mapped.wall, target, ok, note))
        wall, answers, retried = in_child_process(prompts, told)
        print(
            f"  llm.map, double in a child process: throughput {ideal / wall:5.3f} of the "
            f"limit   {retried} retries   {answers} of {n} answers"
        )
        child_ok = answers == n and retried <= (0 if told else 0.1 * n)
        verdicts.append(verdict(name + "_child", ideal / wall, target, child_ok, ""))

    m, pool, ideal, count = per_minute(windows)
    print(
        f"3. per-minute limit: rpm={RPM} at the double and the client, {count} prompts, "
        f"a clock {SPEED:g}x real time (first request to last answer, in its seconds)"
    )
    for run in (m, pool):
        print(run.line(ideal))
    verdicts.append(verdict("map_rpm", ideal / m.wall, 0.9, m.refused + m.lost == 0, ", 0 x 429"))

    print("5. cache hit vs a chat to the double (latency 0, child process), per call:")
    hit, sent = cache_hit(rounds)
    print(row("chat, cache hit", hit))
    print(row("chat, sent to the double", sent))
    print(ratio_line("hit / sent", hit, sent))
    sent_c, bound, stages = capsule_requests(capsules)
    print(f"6. summarize_capsules, {capsules} capsules, extractive double, 8,000 tokens a request:")
    print(f"  {sent_c} requests in {stages} stages; lower bound {bound}: {sent_c / bound:.3f}x")
    print("\n".join(verdicts))
    print(result_line("cache_hit", median(hit) / median(sent), None))
    print(result_line("capsule_requests", sent_c / bound, 1.1))


if __name__ == "__main__":
    main()
