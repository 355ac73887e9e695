"""Several worker processes under one service's limits: the shared limiter (``limiter=``).

Why: the service counts requests per credential and model, not per process. Four workers
that each keep their own budget send four times the limit and collect 429s; ``limiter=``
keeps one budget in SQLite or Redis for all of them. This measures both halves of that
promise against ``sigla.testing.FakeGitHubModels`` (in this process), as ratios against
ideals or baselines measured in the same run, never absolute times.

1. scale-out: ``--processes`` (4) spawned workers, each ``llm.map(its slice,
   concurrency=--threads)`` (4 threads), ``--prompts`` (200) in all, against one double
   enforcing ``concurrency=2`` and ``rpm=R`` (``--rpm``, 60) on a fast clock: the double's
   clock is ``time.monotonic() / SCALE`` (``--scale``, 0.1: its minute lasts 6 real
   seconds) and the limiter's URL says ``?time_scale=SCALE``, so both count one window.
   Client and double share ``RateLimits(requests_per_minute=R, concurrent_requests=2)``.
   Each worker first makes one call with a warm-up credential (its own budget at the
   limiter and the double): the SDK import, the store's connection and the client's build
   are not timed. The clock starts when every worker is warm (a barrier).
   Throughput = the ideal span / the measured span (first ``map`` call to the last answer
   the double finished). The ideal is the double's limits alone, simulated: each request
   starts as soon as one of the 2 slots is free and the sliding window allows it, each
   takes ``LATENCY``. The limiter keeps a margin of 1 s per minute, and at least 0.25 s
   in a shortened window (network skew does not shrink with it): 0.25 s per 6 s here, so
   its best steady-state ratio is 6/6.25 = 0.96.
   Three configurations: a shared SQLite limiter, a shared Redis limiter (a real
   ``redis-server`` on a free port, as ``tests/redis_server.py`` starts it), and none
   (each process its own in-process budget, on the same fast clock). Reported: the
   double's 429s (by kind: concurrency, per-minute), its ``max_in_flight`` (it counts
   admitted requests only, so it can never exceed 2: "tried in flight" adds the refused
   ones, from the log), the most requests it was sent in any one window against R, items
   that failed. Targets (shared limiters): throughput >= 0.9, 429s <= 2 % of requests
   sent, max in flight <= 2, no item failed.
2. limiter alone: ``acquire(None); book(max_wait=60); release()`` in a loop for
   ``--seconds`` (3) in 1, 2 and 4 processes, on limiters built as ``GitHubLLM`` builds
   them (``limiter_for(..., store=parse_limiter_url(url))``) with limits that never wait
   (64 concurrent, 10**9 per minute); a fresh budget each run. Total cycles/s for the
   in-process limiter (each process its own budget: the baseline), SQLite and Redis, and
   the ratio to in-process. Also a whole ``Admission`` cycle (enter, succeeded, leave: the
   gate every request passes). Target: the shared limiters sustain >= 500 cycles/s.
3. Dask: ``--capsules`` (500) synthetic capsules (unique texts) summarised on
   ``tests/test_engines.py``'s ``distributed.LocalCluster`` (3 worker processes x 2
   threads), in ``--partitions`` (20) pandas partitions, ``client.map(summarize_batch,
   parts, llm=llm)`` (``field=None``: one summary request per capsule), against a double
   with extractive replies, ``concurrency=2``, ``rpm=--dask-rpm`` (120: 20 requests/s
   real, about 25 s for 500) on the same fast clock, once with the shared SQLite limiter
   and once with Redis. Each worker first summarises two capsules on a warm-up credential
   of its own (``client.run``): imports, store and client are not timed. Throughput = the
   ideal span for the capsules' requests / submit to the last answer the double finished
   (best steady state 0.96, as in part 1). Checked: the answered requests hold each
   capsule's text exactly once, every row has a summary and no error. Reported: the
   workers' CPU (all three processes) and this process's (the double, the scheduler),
   against the span. Targets: throughput >= 0.85, every capsule exactly once, 429s <= 2 %,
   max in flight <= 2.

    python benchmarks/scale_out.py            # 200 prompts, 4 processes x 4 threads
    python benchmarks/scale_out.py --quick    # 100 prompts, 150 capsules, shorter runs
    python benchmarks/scale_out.py --part dask    # the Dask cluster only
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from _common import ROOT, FastClock, sigla_origin, use_this_checkout

CAP = 2  # the double's (and the client's) concurrent requests
LATENCY = 0.05  # real seconds per answer: 2 slots give 40 requests/s, well over R per window
MODEL = "openai/gpt-4.1"
TOKEN = "bench-scale"
SPAWN = multiprocessing.get_context("spawn")  # the double's threads live in the parent
TIMEOUT = 600.0  # seconds a worker may take before the run is called failed


# ---------------------------------------------------------------- part 1: scale-out


def scaled_clock(scale: float) -> Callable[[], float]:
    """The double's clock: one of its minutes lasts ``60 * scale`` real seconds."""
    return lambda: time.monotonic() / scale


def scale_worker(
    index: int,
    url: str,
    limiter: str | None,
    scale: float,
    rpm: int,
    prompts: list[str],
    threads: int,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One worker: warm up on its own credential, wait for the others, map its slice."""
    try:
        use_this_checkout()
        from sigla.llm import GitHubLLM, RateLimits

        limits = RateLimits(requests_per_minute=rpm, concurrent_requests=CAP)
        if limiter is not None:  # the store's clock, scaled windows: real time here
            setting: dict[str, Any] = {"limiter": limiter}
        else:  # a budget in this process, on a clock as fast as the double's
            clock = FastClock(1 / scale)
            setting = {"clock": clock, "sleep": clock.sleep, "async_sleep": clock.async_sleep}
        GitHubLLM(endpoint=url, token=f"warm-{index}", model=MODEL, limits=limits, **setting).chat(
            "warm-up"
        )
        llm = GitHubLLM(endpoint=url, token=TOKEN, model=MODEL, limits=limits, **setting)
        ready.wait(TIMEOUT)
        go.wait(TIMEOUT)
        started, cpu = time.perf_counter(), time.process_time()
        results = llm.map(prompts, concurrency=threads, progress=False, return_exceptions=True)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        failed = Counter(
            f"{type(r).__name__}: {str(r).splitlines()[0][:400]}"
            for r in results
            if not isinstance(r, str)
        )
        retries = llm.usage.snapshot().retries
        out.put((index, len(results), dict(failed), retries, wall, cpu, None))
    except BaseException as exc:  # say so: the parent would otherwise wait for nothing
        out.put((index, 0, {}, 0, 0.0, 0.0, f"{type(exc).__name__}: {exc}"))
        raise


def counting_double(**options: Any) -> Any:
    """A ``FakeGitHubModels`` that also counts its 429s by kind (its ``x-ratelimit-type``):
    the request log gives how many, not why."""
    from sigla.testing import FakeGitHubModels

    class CountingDouble(FakeGitHubModels):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.refusals: Counter[str] = Counter()
            self._count_lock = threading.Lock()

        def _admit(self, token: str, model: str, cost: int) -> Any:
            refusal = super()._admit(token, model, cost)
            if refusal is not None:
                kind = refusal.headers.get("x-ratelimit-type", "other")
                with self._count_lock:
                    self.refusals[kind] += 1
            return refusal

        def reset(self) -> None:
            super().reset()
            with self._count_lock:
                self.refusals.clear()

    return CountingDouble(**options)


def ideal_span(n: int, rpm: int, window: float, cap: int, latency: float) -> float:
    """Seconds the double's limits alone need for ``n`` requests: each starts when one of
    ``cap`` slots is free and fewer than ``rpm`` requests started in the last ``window``
    seconds, and takes ``latency``; the span ends with the last answer."""
    free = [0.0] * cap
    starts: list[float] = []
    end = 0.0
    for k in range(n):
        at = heapq.heappop(free)
        if k >= rpm:
            at = max(at, starts[k - rpm] + window)
        starts.append(at)
        heapq.heappush(free, at + latency)
        end = max(end, at + latency)
    return end


def most_in_window(times: Sequence[float], window: float) -> int:
    """The most of ``times`` (sorted) in any half-open span of ``window`` seconds."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - window:
            first += 1
        most = max(most, last - first + 1)
    return most


def tried_in_flight(log: Sequence[Any], admitted_most: int) -> int:
    """The most requests that wanted to be in flight at once: the double's own maximum of
    admitted ones, or, at a refused arrival, the admitted requests still being answered
    (from the log) plus the one refused. Only refusals are looked at: the double frees a
    slot just before an answer's last bytes, so the log overlaps admitted neighbours."""
    admitted = [
        (r.received_at, r.finished_at if r.finished_at is not None else float("inf"))
        for r in log
        if r.status != 429
    ]
    most = admitted_most
    for r in log:
        if r.status == 429:
            at = r.received_at
            most = max(most, 1 + sum(1 for start, end in admitted if start < at < end))
    return most


@dataclass
class ScaleRun:
    label: str
    n: int
    rpm: int
    window: float  # real seconds of the double's minute
    span: float = 0.0
    ideal: float = 0.0
    sent: int = 0
    answered: int = 0
    refused: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    max_in_flight: int = 0
    tried: int = 0
    most_per_window: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    items: int = 0
    retries: int = 0
    walls: list[float] = field(default_factory=list)
    cpu: float = 0.0  # CPU seconds the workers spent in map, all together
    error: str | None = None

    @property
    def throughput(self) -> float:
        return self.ideal / self.span if self.span > 0 else 0.0

    @property
    def refused_share(self) -> float:
        return self.refused / self.sent if self.sent else 0.0

    @property
    def lost(self) -> int:
        return sum(self.failed.values())

    def lines(self) -> list[str]:
        if self.error:
            return [f"  {self.label:<22} FAILED: {self.error}"]
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.refusals.items())) or "none"
        rate, limit = self.answered / self.span, self.rpm / self.window
        out = [
            f"  {self.label:<22} throughput {self.throughput:5.3f} of the limit   "
            f"({rate:.2f} answers/s, limit {limit:.2f}/s; span {self.span:.2f} s, "
            f"ideal {self.ideal:.2f} s)",
            f"  {'':<22} {self.refused} x 429 of {self.sent} sent "
            f"({100 * self.refused_share:.1f} %: {kinds})   "
            f"max in flight {self.max_in_flight} (tried {self.tried})",
            f"  {'':<22} most sent in one window {self.most_per_window} = "
            f"{self.most_per_window / self.rpm:.2f}x the limit of {self.rpm}   "
            f"{self.items - self.lost} of {self.items} items answered, {self.lost} failed, "
            f"{self.retries} retries",
            f"  {'':<22} workers' map {min(self.walls):.1f}-{max(self.walls):.1f} s, their CPU "
            f"{self.cpu:.1f} s ({1e3 * self.cpu / max(1, self.sent):.1f} ms a request sent, "
            f"{self.cpu / self.span:.2f} cores over the span)",
        ]
        out += [f"  {'':<22}   failed: {n} x {what}" for what, n in sorted(self.failed.items())]
        return out


def slices(items: list[str], parts: int) -> list[list[str]]:
    return [items[i::parts] for i in range(parts)]


def scale_run(
    label: str, limiter: str | None, n: int, processes: int, threads: int, rpm: int, scale: float
) -> ScaleRun:
    prompts = [f"prompt {i}" for i in range(n)]
    run = ScaleRun(label, n, rpm, 60.0 * scale)
    options = {"concurrency": CAP, "rpm": rpm, "clock": scaled_clock(scale), "latency": LATENCY}
    with counting_double(**options) as fake:
        ready, go, out = SPAWN.Barrier(processes + 1), SPAWN.Event(), SPAWN.Queue()
        workers = [
            SPAWN.Process(
                target=scale_worker,
                args=(i, fake.url, limiter, scale, rpm, part, threads, ready, go, out),
                daemon=True,
            )
            for i, part in enumerate(slices(prompts, processes))
        ]
        for worker in workers:
            worker.start()
        try:
            ready.wait(TIMEOUT)  # every worker warm
            fake.reset()  # the warm-up calls are not counted
            started = time.perf_counter()
            go.set()
            answers = [out.get(timeout=TIMEOUT) for _ in workers]
            for worker in workers:
                worker.join(30)
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
                    worker.join(5)
        errors = [a[-1] for a in answers if a[-1]]
        if errors:
            run.error = "; ".join(errors)
            return run
        log = [r for r in fake.requests if r.path.endswith("/chat/completions")]
        run.sent = len(log)
        run.answered = sum(r.status == 200 for r in log)
        run.refused = sum(r.status == 429 for r in log)
        run.refusals = dict(fake.refusals)
        run.max_in_flight = fake.max_in_flight
        run.tried = tried_in_flight(log, run.max_in_flight)
        run.most_per_window = most_in_window(sorted(r.received_at for r in log), run.window)
        done = [r.finished_at for r in log if r.finished_at is not None]
        run.span = max(done) - started if done else 0.0
        # The ideal for the answers the double gave (without a shared limiter some items fail).
        run.ideal = ideal_span(run.answered, rpm, run.window, CAP, LATENCY)
    for _, items, failed, retries, wall, cpu, _ in answers:
        run.items += items
        run.retries += retries
        run.walls.append(wall)
        run.cpu += cpu
        for what, count in failed.items():
            run.failed[what] = run.failed.get(what, 0) + count
    return run


# ---------------------------------------------------------------- part 2: the limiter alone


def limiter_worker(
    url: str | None, budget: str, mode: str, seconds: float, ready: Any, go: Any, out: Any
) -> None:
    """Cycles of the limiter (``mode`` "limiter") or of a whole Admission ("admission")."""
    try:
        use_this_checkout()
        from sigla._admission import Admission
        from sigla._limits import RateLimits, limiter_for
        from sigla._shared_limits import parse_limiter_url

        limits = RateLimits(requests_per_minute=10**9, concurrent_requests=64)
        target = parse_limiter_url(url, "bench") if url else None
        digest = hashlib.sha256(budget.encode()).hexdigest()
        limiter = limiter_for(
            "http://127.0.0.1:9/bench", MODEL, digest, limits, time.monotonic, store=target
        )

        def cycle() -> None:
            limiter.acquire(None)
            _ticket, wait = limiter.book(max_wait=60)
            assert wait <= 0, wait
            limiter.release()

        def admission() -> None:
            gate = Admission(
                limiter, max_wait=60, sleep=time.sleep, async_sleep=_no_async, label=MODEL
            )
            with gate:
                gate.enter()
                gate.succeeded(None)

        step = cycle if mode == "limiter" else admission
        for _ in range(20):  # the store opened, its scripts loaded
            step()
        ready.wait(TIMEOUT)
        go.wait(TIMEOUT)
        count, started = 0, time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            step()
            count += 1
        out.put((count, time.perf_counter() - started, None))
    except BaseException as exc:
        out.put((0, 1.0, f"{type(exc).__name__}: {exc}"))
        raise


async def _no_async(seconds: float) -> None:  # the sync gate never awaits
    raise AssertionError("async sleep in a sync benchmark")


_budgets = iter(range(10**9))


def limiter_rate(url: str | None, mode: str, processes: int, seconds: float) -> float:
    """Total cycles per second of ``processes`` processes on one fresh budget."""
    budget = f"bench-{os.getpid()}-{next(_budgets)}"
    ready, go, out = SPAWN.Barrier(processes + 1), SPAWN.Event(), SPAWN.Queue()
    workers = [
        SPAWN.Process(
            target=limiter_worker, args=(url, budget, mode, seconds, ready, go, out), daemon=True
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        ready.wait(TIMEOUT)
        go.set()
        answers = [out.get(timeout=TIMEOUT) for _ in workers]
        for worker in workers:
            worker.join(30)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
    errors = [a[2] for a in answers if a[2]]
    if errors:
        raise RuntimeError("; ".join(errors))
    return sum(count / elapsed for count, elapsed, _ in answers)


# ---------------------------------------------------------------- part 3: a Dask cluster


DASK_WORKERS, DASK_THREADS = 3, 2  # tests/test_engines.py's LocalCluster
MAX_INPUT = 2_000  # tokens a request may hold: the double states no model limit


def capsule_text(i: int) -> str:
    """Capsule ``i``'s text: unique, and no capsule's text holds another's."""
    return f"Widget {i:05d} ships from depot {i % 7} on day {i % 28 + 1}. It is blue."


def dask_warm(url: str, limiter: str, rpm: int) -> tuple[int, float]:
    """On a worker: import sigla, pandas and the SDK, build a client, open the store and
    summarise two capsules on this worker's own warm-up credential (its own budget at the
    limiter and the double). Its pid and CPU seconds so far."""
    import pandas

    use_this_checkout()
    from sigla.capsules import summarize_batch
    from sigla.llm import GitHubLLM, RateLimits

    limits = RateLimits(requests_per_minute=rpm, concurrent_requests=CAP)
    llm = GitHubLLM(
        endpoint=url, token=f"warm-{os.getpid()}", model=MODEL, limits=limits, limiter=limiter
    )
    frame = pandas.DataFrame({"id": ["w-0", "w-1"], "text": ["Warm up. Now.", "Warm up twice."]})
    summarize_batch(frame, llm, max_input_tokens=MAX_INPUT)
    return os.getpid(), time.process_time()


def process_cpu() -> float:
    return time.process_time()


@dataclass
class DaskRun(ScaleRun):
    partitions: int = 0
    gathered: float = 0.0  # submit to the last partition back in the parent
    first: float = 0.0  # submit to the first request the double read
    parent_cpu: float = 0.0  # this process: the double, the scheduler, the client
    covered: Counter[int] = field(default_factory=Counter)  # capsules by times in answered requests
    sent_twice: int = 0  # capsules whose text went out more than once (a 429, a task rerun)
    bad_rows: list[str] = field(default_factory=list)

    @property
    def once(self) -> bool:
        return set(self.covered) == {1} and not self.bad_rows

    def lines(self) -> list[str]:
        if self.error:
            return [f"  {self.label:<22} FAILED: {self.error}"]
        out = super().lines()[:-1]  # the workers' map line is not Dask's
        times = ", ".join(f"{k}x: {n}" for k, n in sorted(self.covered.items()))
        out += [
            f"  {'':<22} capsules in the answered requests by times sent: {times}; "
            f"{self.sent_twice} sent more than once; {len(self.bad_rows)} rows without "
            f"a summary",
            f"  {'':<22} {self.partitions} partitions: first request {self.first:.2f} s, all "
            f"gathered {self.gathered:.2f} s after "
            f"submit; workers' CPU {self.cpu:.1f} s ({self.cpu / self.span:.2f} cores over "
            f"the span, {1e3 * self.cpu / max(1, self.sent):.1f} ms a request), this "
            f"process's {self.parent_cpu:.1f} s ({self.parent_cpu / self.span:.2f} cores)",
        ]
        out += [f"  {'':<22}   row: {row}" for row in self.bad_rows[:5]]
        return out


def dask_run(
    client: Any, label: str, limiter: str, n: int, partitions: int, rpm: int, scale: float
) -> DaskRun:
    """``n`` capsules in ``partitions`` DataFrame partitions, ``client.map(summarize_batch,
    parts, llm=llm)``, against a fresh double."""
    import pandas

    from sigla.capsules import summarize_batch
    from sigla.llm import GitHubLLM, RateLimits

    run = DaskRun(label, n, rpm, 60.0 * scale, partitions=partitions)
    ids = [f"cap-{i}" for i in range(n)]
    texts = [capsule_text(i) for i in range(n)]
    frame = pandas.DataFrame({"id": ids, "text": texts})
    size = -(-n // partitions)
    parts = [frame.iloc[i : i + size] for i in range(0, n, size)]
    options = {
        "reply_mode": "extractive",
        "concurrency": CAP,
        "rpm": rpm,
        "clock": scaled_clock(scale),
        "latency": LATENCY,
    }
    with counting_double(**options) as fake:
        try:
            client.run(dask_warm, fake.url, limiter, rpm)
            limits = RateLimits(requests_per_minute=rpm, concurrent_requests=CAP)
            llm = GitHubLLM(
                endpoint=fake.url, token=TOKEN, model=MODEL, limits=limits, limiter=limiter
            )
            cpu_before = client.run(process_cpu)
            fake.reset()  # the warm-up calls are not counted
            parent_cpu, started = time.process_time(), time.perf_counter()
            futures = client.map(
                summarize_batch, parts, llm=llm, max_input_tokens=MAX_INPUT, pure=False
            )
            out = pandas.concat(client.gather(futures))
            run.gathered = time.perf_counter() - started
            run.parent_cpu = time.process_time() - parent_cpu
            cpu_after = client.run(process_cpu)
        except Exception as exc:
            run.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:400]}"
            return run
        run.cpu = sum(cpu_after[w] - cpu_before.get(w, 0.0) for w in cpu_after)
        run.walls = [run.gathered]
        log = [r for r in fake.requests if r.path.endswith("/chat/completions")]
        run.sent = len(log)
        run.answered = sum(r.status == 200 for r in log)
        run.refused = sum(r.status == 429 for r in log)
        run.refusals = dict(fake.refusals)
        run.max_in_flight = fake.max_in_flight
        run.tried = tried_in_flight(log, run.max_in_flight)
        run.most_per_window = most_in_window(sorted(r.received_at for r in log), run.window)
        done = [r.finished_at for r in log if r.finished_at is not None]
        run.span = max(done) - started if done else 0.0
        run.first = min(r.received_at for r in log) - started if log else 0.0
    run.ideal = ideal_span(n, rpm, run.window, CAP, LATENCY)

    def contents(requests: list[Any]) -> str:  # every user message, one per line
        return "\n".join(
            str(m.get("content"))
            for r in requests
            for m in r.body["messages"]
            if m["role"] == "user"
        )

    answered = contents([r for r in log if r.status == 200])
    every = contents(log)
    run.covered = Counter(answered.count(text) for text in texts)
    run.sent_twice = sum(every.count(text) > 1 for text in texts)
    run.items = len(out)
    rows = out.to_dict("records")
    if [r["id"] for r in rows] != ids:
        run.bad_rows.append(f"ids out of order or missing: {len(rows)} rows for {n} capsules")
    for row in rows:
        if row["error"] is not None or not isinstance(row["summary"], str) or not row["summary"]:
            run.bad_rows.append(f"{row['id']}: summary {row['summary']!r}, error {row['error']!r}")
    run.failed = Counter(
        f"{r['error_type']}: {str(r['error'])[:200]}" for r in rows if r["error"] is not None
    )
    return run


@contextmanager
def dask_cluster() -> Iterator[Any]:
    """tests/test_engines.py's cluster: 3 worker processes x 2 threads on 127.0.0.1."""
    import _common
    import cloudpickle
    import dask
    import distributed

    # The workers import neither this script nor _common: their functions travel by value.
    cloudpickle.register_pickle_by_value(_common)
    # No sampling profiler on the workers: it calls sys._current_frames() every 10 ms, and
    # before CPython 3.11.9 (gh-106883) a garbage collection inside that call while a
    # thread exits deadlocks the worker (GIL against the thread-list lock). sigla's batches
    # start and end threads all the time (each summary's llm.map starts its own), and a
    # run hung for 10 minutes until the scheduler restarted the workers and their tasks
    # sent 190 capsules twice. Nanny hands this setting to the worker processes.
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = distributed.LocalCluster(
            n_workers=DASK_WORKERS,
            processes=True,
            threads_per_worker=DASK_THREADS,
            host="127.0.0.1",
            dashboard_address=None,
        )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


# ---------------------------------------------------------------- the stores


@contextmanager
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port (``tests/redis_server.py``)."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from redis_server import RedisServer
    finally:
        sys.path.pop(0)
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.close()


def sqlite_url(folder: str, name: str) -> str:
    return "sqlite:///" + os.path.join(folder, name)  # absolute path: sqlite:////tmp/...


def with_options(url: str, **options: float) -> str:
    return url + "?" + "&".join(f"{k}={v:g}" for k, v in options.items())


# ---------------------------------------------------------------- main


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


Row = tuple[str, str, str, bool | None]  # what, value, target, met (None: reported only)


def part_scale(args: Any, n: int, stores: dict[str, str]) -> list[Row]:
    print(
        f"1. {args.processes} processes x {args.threads} threads, {n} prompts, one double: "
        f"{CAP} concurrent, {args.rpm} per minute, a minute of {60 * args.scale:g} real s, "
        f"latency {LATENCY} s"
    )
    configurations = [
        (f"shared {name}", with_options(url, time_scale=args.scale)) for name, url in stores.items()
    ]
    configurations.append(("no shared limiter", None))
    rows: list[Row] = []
    for label, url in configurations:
        run = scale_run(label, url, n, args.processes, args.threads, args.rpm, args.scale)
        print("\n".join(run.lines()), flush=True)
        if run.error:
            rows.append((label, "failed", "runs", False))
            continue
        shared = url is not None
        if not shared:
            print(
                f"  {'':<22} without one, the workers sent up to "
                f"{run.most_per_window / args.rpm:.2f}x the per-minute limit in one window "
                f"and tried {run.tried} requests at once (limit {CAP})"
            )
        rows += [
            (
                f"{label}: throughput",
                f"{run.throughput:.3f}",
                ">= 0.90",
                run.throughput >= 0.9 if shared else None,
            ),
            (
                f"{label}: 429s",
                f"{100 * run.refused_share:.1f} % ({run.refused})",
                "<= 2 %",
                run.refused_share <= 0.02 if shared else None,
            ),
            (
                f"{label}: max in flight",
                f"{run.max_in_flight} (tried {run.tried})",
                f"<= {CAP}",
                run.max_in_flight <= CAP if shared else None,
            ),
            (f"{label}: most in a window", f"{run.most_per_window / run.rpm:.2f}x", "report", None),
            (
                f"{label}: items failed",
                f"{run.lost} of {run.items}",
                "0",
                run.lost == 0 if shared else None,
            ),
        ]
    return rows


def part_limiter(counts: list[int], seconds: float, folder: str, redis: str) -> list[Row]:
    print(
        f"2. the limiter alone: acquire + book + release per second, all processes "
        f"together, {seconds:g} s each (admission: a whole Admission cycle)"
    )
    rates: dict[tuple[str, str, int], float] = {}
    for mode in ("limiter", "admission"):
        for processes in counts:
            line = f"  {mode:<9} {processes} proc:"
            for name in ("in-process", "SQLite", "Redis"):
                url = {"in-process": None, "Redis": redis}.get(name)
                if name == "SQLite":  # a fresh file: no bookings of earlier runs
                    url = sqlite_url(folder, f"alone-{mode}-{processes}.db")
                rate = rates[(mode, name, processes)] = limiter_rate(url, mode, processes, seconds)
                line += f"   {name} {rate:9.0f}/s"
                if name != "in-process":
                    line += f" ({rate / rates[(mode, 'in-process', processes)]:.3f}x)"
            print(line, flush=True)
    rows: list[Row] = []
    for name in ("SQLite", "Redis"):
        for mode in ("limiter", "admission"):
            for processes in counts:
                rate = rates[(mode, name, processes)]
                base = rates[(mode, "in-process", processes)]
                limiter = mode == "limiter"
                rows.append(
                    (
                        f"{name} {mode}, {processes} proc",
                        f"{rate:.0f}/s ({rate / base:.3f}x)",
                        ">= 500/s" if limiter else "report",
                        rate >= 500 if limiter else None,
                    )
                )
    return rows


def part_dask(args: Any, n: int, stores: dict[str, str]) -> list[Row]:
    print(
        f"3. Dask: {DASK_WORKERS} worker processes x {DASK_THREADS} threads, {n} capsules in "
        f"{args.partitions} DataFrame partitions, summarize_batch each, one double: {CAP} "
        f"concurrent, {args.dask_rpm} per minute, a minute of {60 * args.scale:g} real s, "
        f"latency {LATENCY} s"
    )
    rows: list[Row] = []
    with dask_cluster() as client:
        for name, url in stores.items():
            label = f"Dask, shared {name}"
            run = dask_run(
                client,
                label,
                with_options(url, time_scale=args.scale),
                n,
                args.partitions,
                args.dask_rpm,
                args.scale,
            )
            print("\n".join(run.lines()), flush=True)
            if run.error:
                rows.append((label, "failed", "runs", False))
                continue
            rows += [
                (
                    f"{label}: throughput",
                    f"{run.throughput:.3f}",
                    ">= 0.85",
                    run.throughput >= 0.85,
                ),
                (
                    f"{label}: each capsule once",
                    f"{run.covered.get(1, 0)} of {n}, {len(run.bad_rows)} rows bad",
                    "all",
                    run.once,
                ),
                (
                    f"{label}: 429s",
                    f"{100 * run.refused_share:.1f} % ({run.refused})",
                    "<= 2 %",
                    run.refused_share <= 0.02,
                ),
                (
                    f"{label}: max in flight",
                    f"{run.max_in_flight} (tried {run.tried})",
                    f"<= {CAP}",
                    run.max_in_flight <= CAP,
                ),
            ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=None, help="prompts in all (200)")
    parser.add_argument("--processes", type=int, default=4, help="worker processes (4)")
    parser.add_argument("--threads", type=int, default=4, help="map concurrency per worker (4)")
    parser.add_argument("--rpm", type=int, default=60, help="requests per (scaled) minute (60)")
    parser.add_argument(
        "--scale", type=float, default=0.1, help="real seconds per second of the windows (0.1)"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="each limiter-alone run (3; quick 1.5)"
    )
    parser.add_argument(
        "--capsules", type=int, default=None, help="capsules summarised on Dask (500; quick 150)"
    )
    parser.add_argument("--partitions", type=int, default=20, help="Dask partitions (20)")
    parser.add_argument(
        "--dask-rpm", type=int, default=120, help="requests per (scaled) minute on Dask (120)"
    )
    parser.add_argument("--part", choices=("all", "scale", "limiter", "dask"), default="all")
    parser.add_argument(
        "--quick", action="store_true", help="100 prompts, 150 capsules, short limiter runs"
    )
    args = parser.parse_args()
    n = args.prompts or (100 if args.quick else 200)
    capsules = args.capsules or (150 if args.quick else 500)
    seconds = args.seconds or (1.5 if args.quick else 3.0)
    counts = sorted({1, 2, args.processes} if not args.quick else {1, args.processes})

    use_this_checkout()
    print(f"scale_out: sigla from {sigla_origin()}, {os.cpu_count()} CPUs")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sigla-scale-") as folder, redis_url() as redis:
        if args.part in ("all", "scale"):
            stores = {"SQLite": sqlite_url(folder, "limits.db"), "Redis": redis}
            rows += part_scale(args, n, stores)
        if args.part in ("all", "limiter"):
            rows += part_limiter(counts, seconds, folder, redis)
        if args.part in ("all", "dask"):
            stores = {"SQLite": sqlite_url(folder, "dask-limits.db"), "Redis": redis}
            rows += part_dask(args, capsules, stores)

    print("SUMMARY")
    width = max(len(r[0]) for r in rows)
    for what, value, target, ok in rows:
        shown = "report" if ok is None else verdict(ok)
        print(f"  {what:<{width}}  {value:<22} {target:<9} {shown}")
    checked = [ok for *_, ok in rows if ok is not None]
    print(
        f"RESULT scale_out targets met {sum(checked)} of {len(checked)} ({verdict(all(checked))})"
    )


if __name__ == "__main__":
    main()
