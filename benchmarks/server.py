"""The team server (``sigla.server``) against a direct client: overhead, queueing, streams.

Why (issue 14): the server sits between every caller and the model service. It must add
little to each call (target: at most 2 ms per request over calling ``GitHubLLM`` directly),
keep the service's concurrency limit under a crowd of callers (every request answered, none
refused, never more upstream requests in flight than the limit), and relay streams cheaply.
Everything is measured against ``sigla.testing.FakeGitHubModels`` and reported as ratios
against a baseline measured in the same run (a direct client, the double's own limits),
never as absolute times: the machine is shared.

Three processes: this one (the load generator and the direct client), the double (its own
child process, driven over a pipe: its options, ``max_in_flight``, its request log), and the
server: ``create_app(ServerConfig(...))`` under a real uvicorn on 127.0.0.1, configured as
``sigla serve`` runs it (h11/asyncio as installed, no access log, sigla's request log at INFO,
written to a file here), in a child process of its own. Part 1 also runs the same app in a
thread of this process, as ``tests/live_server.py`` does, to show what sharing the GIL with
the load generator does to the figures; the headline figures are the child process's.

1. overhead: sequential requests on one keep-alive ``httpx.Client`` to ``POST /llm``
   (``{"prompt": "hi"}``), ``POST /v1/chat/completions`` (non-streamed, one user message) and
   ``GET /healthz`` (the HTTP hop and the framework alone, no upstream call), against the
   direct ``GitHubLLM.achat`` (the call the server makes, timed inside the event loop) and
   ``chat``, sending the same upstream bodies (checked), all to the same double (latency 0,
   no limits) with ``limits=RateLimits()``, in ``--calls`` (300) interleaved rounds after a
   warm-up. Reported: median and p90 wall ms per request; added ms (difference of the
   medians, and the median of the per-round differences) and ratio to the direct ``achat``;
   and CPU, the steadier figure on a busy machine: mean CPU ms per request over sequential
   blocks, the caller's (this process) and the server process's (read inside it). Target:
   added wall <= 2 ms (medians). The same app in a thread of this process follows, for
   comparison: a sequential caller waits in ``recv`` without the GIL, so there the thread
   costs little, but it hides the server's CPU and, in parts 2 and 3, 200 clients would
   share the GIL with the server: the headline figures are the child process's.
2. queue: ``--clients`` (200) concurrent clients (asyncio, one ``httpx.AsyncClient`` allowing
   200 connections), each ``--rounds`` (2; quick 1) ``POST /llm`` in turn, against a double
   with ``concurrency=2, latency=0.02`` and a server with ``RateLimits(concurrent_requests=2)``
   and ``queue_timeout=120``. Checked: every answer is a 200, the double answered no 429 and
   ``max_in_flight <= 2``. Reported: p50/p99/max latency, span, and the upstream slots'
   utilisation (the double's busy time / (2 x span)); the baseline is the same crowd of
   ``achat`` calls on one direct client with the same limits.
3. streams: the same with ``POST /llm/stream`` (one stream per client, a prompt of
   ``--words`` words echoed back in pieces, ``chunk_delay=0.002``). Checked: every stream is
   a 200 ending with ``event: done``, no ``event: error``, ``max_in_flight <= 2``. Reported
   as in part 2, plus the server process's CPU time per ``data:`` delta event delivered
   (``time.process_time()`` read inside it), against the direct client's (``astream``, the
   same crowd in this process) CPU per piece, and per event beyond a ``POST /llm``'s CPU in
   part 2 (the cost of one more event, with the request's own cost taken out). Then the same
   crowd streams ``POST /v1/chat/completions`` (``stream: true``), whose route returns an
   ``EventSourceResponse`` over its own generator where ``/llm/stream`` is a generator route
   that FastAPI drives through its producer and keep-alive tasks: its CPU per event shows
   what that machinery costs.

    python benchmarks/server.py            # a minute or two on two cores (more when busy)
    python benchmarks/server.py --quick    # a short run
    python benchmarks/server.py --part overhead
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import multiprocessing
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from _common import interleaved, median, p90, sigla_origin, use_this_checkout

MODEL = "openai/gpt-4o-mini"
CAP = 2  # the double's concurrency limit and the server's client-side one (parts 2 and 3)
LATENCY = 0.02  # the double's latency in parts 2 and 3
CHUNK_DELAY = 0.002  # between the double's stream events (part 3)
QUEUE_TIMEOUT = 120.0  # the server's wait for an upstream slot: never reached here
TARGET_MS = 2.0  # issue 14: at most 2 ms added per request
SPAWN = multiprocessing.get_context("spawn")
V1_MESSAGES = [{"role": "user", "content": "hi"}]
SERVER_TOKEN, DIRECT_TOKEN = "bench-server", "bench-direct"  # the double counts per token


# ---------------------------------------------------------------- child processes


def _clean_environment() -> None:
    """No SIGLA_* setting of this machine (a limiter, a cache, limits) changes the run."""
    for name in list(os.environ):
        if name.startswith("SIGLA_"):
            del os.environ[name]


def double_child(conn: Any) -> None:
    """Serve the double and answer the parent's commands until it says ``stop``."""
    use_this_checkout()
    from sigla.testing import FakeGitHubModels

    with FakeGitHubModels() as fake:
        conn.send(fake.url)
        while True:
            command, arg = conn.recv()
            if command == "stop":
                conn.send(None)
                return
            if command == "set":  # options, then a fresh log and max_in_flight
                for name, value in arg.items():
                    setattr(fake, name, value)
                fake.reset()
                conn.send(None)
            elif command == "stats":
                chats = [r for r in fake.requests if r.path.endswith("/chat/completions")]
                busy = sum(r.finished_at - r.received_at for r in chats if r.finished_at)
                conn.send(
                    {
                        "requests": len(chats),
                        "statuses": Counter(r.status for r in chats),
                        "max_in_flight": fake.max_in_flight,
                        "in_flight": fake.in_flight,
                        "busy": busy,
                        "bodies": [r.body for r in chats[-arg:]] if arg else [],
                    }
                )
            elif command == "cpu":
                conn.send(time.process_time())


def uvicorn_config(app: Any, log_file: str | None, keep_alive: float | None = None) -> Any:
    """uvicorn as ``sigla serve`` runs it (one worker, no access log, sigla's request log
    at INFO), on a free loopback port; the log goes to ``log_file`` (None: no handler).
    ``keep_alive``: uvicorn's ``timeout_keep_alive`` (None: its default, as ``sigla serve``)."""
    import uvicorn

    from sigla._cli_serve import _log_config

    log_config = None
    if log_file is not None:
        log_config = _log_config("INFO")
        log_config["handlers"]["stderr"] = {
            "class": "logging.FileHandler",
            "formatter": "plain",
            "filename": log_file,
        }
    extra: dict[str, Any] = {} if keep_alive is None else {"timeout_keep_alive": keep_alive}
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        access_log=False,
        log_config=log_config,
        lifespan="on",
        timeout_graceful_shutdown=10,
        **extra,
    )


def build_app(double_url: str, cap: int | None) -> Any:
    from sigla.llm import RateLimits
    from sigla.server import ServerConfig, create_app

    limits = RateLimits(concurrent_requests=cap) if cap else RateLimits()
    options = {"endpoint": double_url, "token": SERVER_TOKEN, "limits": limits}
    config = ServerConfig(models=(MODEL,), queue_timeout=QUEUE_TIMEOUT, client_options=options)
    return create_app(config)


def server_child(
    conn: Any, double_url: str, cap: int | None, log_file: str, keep_alive: float | None
) -> None:
    """Run the app under uvicorn in this process; a thread answers the parent's commands
    (``cpu``: this process's CPU seconds; ``system``: the kernel's share; ``stop``)."""
    use_this_checkout()
    import uvicorn

    server = uvicorn.Server(uvicorn_config(build_app(double_url, cap), log_file, keep_alive))

    def control() -> None:
        while not server.started:
            time.sleep(0.01)
        conn.send(server.servers[0].sockets[0].getsockname()[1])
        while True:
            command = conn.recv()
            if command == "stop":
                server.should_exit = True
                return
            conn.send(time.process_time() if command == "cpu" else os.times().system)

    threading.Thread(target=control, daemon=True).start()
    server.run()


class Child:
    """A spawned child process and its end of the command pipe."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self.conn, theirs = SPAWN.Pipe()
        self.process = SPAWN.Process(target=target, args=(theirs, *args), daemon=True)
        self.process.start()
        if not self.conn.poll(60):
            raise RuntimeError(f"{target.__name__} did not start")
        self.first = self.conn.recv()

    def ask(self, *message: Any) -> Any:
        self.conn.send(message if len(message) > 1 else message[0])
        return self.conn.recv()

    def stop(self, message: Any) -> None:
        if self.process.is_alive():
            self.conn.send(message)
            self.process.join(15)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


class Double(Child):
    def __init__(self) -> None:
        super().__init__(double_child)
        self.url: str = self.first

    def set(self, **options: Any) -> None:
        self.ask("set", options)

    def stats(self, bodies: int = 0) -> dict[str, Any]:
        stats: dict[str, Any] = self.ask("stats", bodies)
        return stats


@contextmanager
def server_process(
    double_url: str, cap: int | None, log_file: str, keep_alive: float | None = None
) -> Iterator[Child]:
    child = Child(server_child, double_url, cap, log_file, keep_alive)
    try:
        yield child
    finally:
        child.stop("stop")


@contextmanager
def server_thread(app: Any) -> Iterator[str]:
    """The app under uvicorn in a thread of this process (as ``tests/live_server.py``)."""
    import uvicorn

    server = uvicorn.Server(uvicorn_config(app, None))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn stopped before it started")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)


# ---------------------------------------------------------------- figures


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


Summary = list[tuple[str, str, str, "bool | None"]]


# ---------------------------------------------------------------- part 1: overhead


Timed = Callable[[], float]  # -> wall seconds


def timed(call: Callable[[], Any]) -> Timed:
    def run() -> float:
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    return run


def timed_async(loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[Any]]) -> Timed:
    """``call()`` awaited on ``loop``, timed inside it (the loop's entry is not counted)."""

    async def inner() -> float:
        started = time.perf_counter()
        await call()
        return time.perf_counter() - started

    return lambda: loop.run_until_complete(inner())


def http_calls(http: Any) -> dict[str, Callable[[], None]]:
    def llm() -> None:
        response = http.post("/llm", json={"prompt": "hi"})
        assert response.status_code == 200 and response.json()["answer"] == "Echo: hi", response

    def v1() -> None:
        response = http.post("/v1/chat/completions", json={"model": MODEL, "messages": V1_MESSAGES})
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "Echo: hi"

    def healthz() -> None:
        assert http.get("/healthz").status_code == 200

    return {"POST /llm": llm, "POST /v1/chat/completions": v1, "GET /healthz": healthz}


def same_bodies(
    double: Double, pairs: Sequence[tuple[Callable[[], Any], Callable[[], Any]]]
) -> bool:
    """Whether each pair of calls sends the double the same body."""
    for first, second in pairs:
        first()
        second()
        a, b = double.stats(bodies=2)["bodies"]
        if a != b:
            print(f"  upstream bodies differ:\n    {a}\n    {b}")
            return False
    return True


def cpu_block(call: Callable[[], Any], n: int, server: Child | None) -> tuple[float, float]:
    """Mean CPU seconds per call over ``n`` sequential calls: this process's (the caller's)
    and the server process's (0 without one). Means, not medians: a call's share of the
    garbage collections it causes is part of its cost."""
    gc.collect()
    before = server.ask("cpu") if server is not None else 0.0
    cpu = time.process_time()
    for _ in range(n):
        call()
    cpu = time.process_time() - cpu
    spent = server.ask("cpu") - before if server is not None else 0.0
    return cpu / n, spent / n


@dataclass
class Pair:
    """A route against its direct baseline, from the same interleaved rounds."""

    route: str
    base: str
    wall: dict[str, list[float]]

    @property
    def added(self) -> float:
        """Difference of the medians, seconds."""
        return median(self.wall[self.route]) - median(self.wall[self.base])

    @property
    def paired(self) -> float:
        """Median of the per-round differences, seconds."""
        pairs = zip(self.wall[self.route], self.wall[self.base], strict=True)
        return median([a - b for a, b in pairs])

    @property
    def ratio(self) -> float:
        return median(self.wall[self.route]) / median(self.wall[self.base])


def wall_lines(wall: dict[str, list[float]], pairs: Sequence[Pair]) -> list[str]:
    lines = [f"    {'':<30} {'median':>8} {'p90':>8}   added: of medians, paired   ratio"]
    against = {p.route: p for p in pairs}
    for name, values in wall.items():
        line = f"    {name:<30} {median(values) * 1e3:8.3f} {p90(values) * 1e3:8.3f}"
        pair = against.get(name)
        if pair is not None:
            line += (
                f"   {pair.added * 1e3:+7.3f} {pair.paired * 1e3:+7.3f} ms"
                f"   {pair.ratio:5.2f}x  (vs {pair.base})"
            )
        lines.append(line)
    return lines


def part_overhead(args: Any, double: Double, folder: str) -> Summary:
    import httpx

    from sigla.llm import GitHubLLM, RateLimits

    double.set(latency=0.0, chunk_delay=0.0, concurrency=None)
    llm = GitHubLLM(model=MODEL, endpoint=double.url, token=DIRECT_TOKEN, limits=RateLimits())
    loop = asyncio.new_event_loop()
    direct_calls: dict[str, Callable[[], Any]] = {
        "direct achat(prompt)": lambda: loop.run_until_complete(llm.achat("hi")),
        "direct achat(messages)": lambda: loop.run_until_complete(llm.achat(messages=V1_MESSAGES)),
        "direct chat(prompt)": lambda: llm.chat("hi"),
    }
    direct: dict[str, Timed] = {
        "direct achat(prompt)": timed_async(loop, lambda: llm.achat("hi")),
        "direct achat(messages)": timed_async(loop, lambda: llm.achat(messages=V1_MESSAGES)),
        "direct chat(prompt)": timed(lambda: llm.chat("hi")),
    }
    base = "direct achat(prompt)"
    against = {"POST /llm": base, "POST /v1/chat/completions": "direct achat(messages)"}
    print(
        f"part 1, overhead: {args.calls} sequential requests each after {args.warmup} warm-up, "
        "interleaved rounds; double latency 0, limits=RateLimits(); wall ms per request"
    )
    cpu: dict[str, tuple[float, float]] = {}
    log_file = os.path.join(folder, "server-overhead.log")
    with (
        server_process(double.url, None, log_file) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.first}", timeout=30) as http,
    ):
        calls = http_calls(http)
        runners = {**direct, **{name: timed(call) for name, call in calls.items()}}
        interleaved(runners, args.warmup, seed=1)
        same = same_bodies(
            double,
            [
                (lambda: llm.chat("hi"), calls["POST /llm"]),
                (lambda: llm.chat(messages=V1_MESSAGES), calls["POST /v1/chat/completions"]),
            ],
        )
        gc.collect()
        wall = interleaved(runners, args.calls, seed=2)
        for name, call in {**direct_calls, **calls}.items():
            cpu[name] = cpu_block(call, args.cpu_calls, None if name in direct else server)
    pairs = [Pair(route, baseline, wall) for route, baseline in against.items()]
    print(f"  upstream bodies of /llm and /v1 the same as the direct calls': {same}")
    print("  uvicorn in a child process (the headline figures):")
    print("\n".join(wall_lines(wall, pairs)))
    print(
        f"  CPU ms per request, means over {args.cpu_calls} sequential calls each (the server's "
        "includes its own GitHubLLM call):"
    )
    print(f"    {'':<30} {'caller':>8} {'server':>8} {'sum':>8}")
    for name, (caller, served) in cpu.items():
        print(
            f"    {name:<30} {caller * 1e3:8.3f} {served * 1e3:8.3f} {(caller + served) * 1e3:8.3f}"
        )

    app = build_app(double.url, None)
    with server_thread(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        calls = http_calls(http)
        runners = {base: direct[base], "POST /llm": timed(calls["POST /llm"])}
        interleaved(runners, args.warmup, seed=3)
        gc.collect()
        thread_wall = interleaved(runners, args.thread_calls, seed=4)
    thread_pair = Pair("POST /llm", base, thread_wall)
    print(
        f"  uvicorn in a thread of the load generator's process (as tests/live_server.py), "
        f"{args.thread_calls} rounds:"
    )
    print("\n".join(wall_lines(thread_wall, [thread_pair])))
    loop.close()

    rows: Summary = []
    for pair in pairs:
        route_cpu = sum(cpu[pair.route]) - sum(cpu[pair.base])
        rows.append(
            (
                f"{pair.route}: added wall (paired), ratio",
                f"{pair.added * 1e3:+.2f} ms ({pair.paired * 1e3:+.2f}), {pair.ratio:.2f}x",
                f"<= {TARGET_MS:g} ms",
                pair.added <= TARGET_MS / 1e3,
            )
        )
        rows.append(
            (
                f"{pair.route}: added CPU (server + caller)",
                f"{route_cpu * 1e3:+.2f} ms",
                "report",
                None,
            )
        )
    rows.append(
        (
            "POST /llm: added wall, uvicorn in a thread",
            f"{thread_pair.added * 1e3:+.2f} ms ({thread_pair.paired * 1e3:+.2f})",
            "report",
            None,
        )
    )
    rows.append(("upstream bodies identical to the direct calls'", str(same), "True", same))
    return rows


# ---------------------------------------------------------------- parts 2 and 3: a crowd


@dataclass
class Crowd:
    """What one crowd run saw."""

    label: str
    latencies: list[float]
    span: float
    statuses: Counter[Any]
    events: int  # delta events (part 3) received
    done: int  # streams that ended with event: done
    errors: int  # event: error
    cpu: float  # CPU seconds of the measured process (the server, or this one for direct)
    caller_cpu: float  # CPU seconds of this process (the load generator)
    system: float  # the kernel's share of ``cpu``
    upstream: dict[str, Any]

    @property
    def utilisation(self) -> float:
        return float(self.upstream["busy"]) / (CAP * self.span)

    def line(self) -> str:
        lat = self.latencies
        return (
            f"    {self.label:<16} p50 {pct(lat, 0.5) * 1e3:7.1f} ms  "
            f"p99 {pct(lat, 0.99) * 1e3:7.1f} ms"
            f"  max {max(lat) * 1e3:8.1f} ms  span {self.span:6.2f} s  slots busy "
            f"{self.utilisation:5.1%}  upstream max in flight {self.upstream['max_in_flight']}, "
            f"statuses {dict(self.upstream['statuses'])}"
        )


async def crowd(
    clients: int, rounds: int, request: Callable[[int], Awaitable[Any]]
) -> tuple[list[float], float, list[Any]]:
    """``clients`` tasks started together, each making ``rounds`` requests in turn; a request
    that raises (a connection reset...) counts as the exception's class name."""
    latencies: list[float] = []
    outcomes: list[Any] = []

    async def client(i: int) -> None:
        for r in range(rounds):
            started = time.perf_counter()
            try:
                outcomes.append(await request(i * rounds + r))
            except Exception as exc:  # counted, by kind, among the statuses: never fatal
                outcomes.append((type(exc).__name__, 0, False, False))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, time.perf_counter() - started, outcomes


def run_server_crowd(
    label: str,
    double: Double,
    server: Child,
    clients: int,
    rounds: int,
    stream_prompt: str | None,
    v1: bool = False,
) -> Crowd:
    """The crowd against the server: ``POST /llm``, or with ``stream_prompt`` streams on
    ``POST /llm/stream`` (``v1``: ``POST /v1/chat/completions`` with ``stream: true``)."""
    import httpx

    url = f"http://127.0.0.1:{server.first}"
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def run() -> tuple[list[float], float, list[Any]]:
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as http:

            async def plain(i: int) -> tuple[int, int, bool, bool]:
                response = await http.post("/llm", json={"prompt": f"n{i}"})
                ok = response.status_code == 200 and response.json()["answer"] == f"Echo: n{i}"
                return response.status_code if ok else -response.status_code, 0, False, False

            async def stream(i: int) -> tuple[int, int, bool, bool]:
                events, done, error, event = 0, False, False, None
                body = {"prompt": f"n{i} {stream_prompt}"}
                async with http.stream("POST", "/llm/stream", json=body) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:"):
                            if event is None:
                                events += 1
                            done |= event == "done"
                            error |= event == "error"
                        elif not line:
                            event = None
                return response.status_code, events, done, error

            async def openai_stream(i: int) -> tuple[int, int, bool, bool]:
                events, done, error = 0, False, False
                content = f"n{i} {stream_prompt}"
                body = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
                async with http.stream(
                    "POST", "/v1/chat/completions", json={**body, "stream": True}
                ) as response:
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            done = True
                            continue
                        chunk = json.loads(data)
                        error |= "error" in chunk
                        choices = chunk.get("choices") or [{}]
                        events += bool(choices[0].get("delta", {}).get("content"))
                return response.status_code, events, done, error

            request = plain if stream_prompt is None else openai_stream if v1 else stream
            return await crowd(clients, rounds, request)

    cpu, system, caller = server.ask("cpu"), server.ask("system"), time.process_time()
    latencies, span, outcomes = asyncio.run(run())
    cpu, caller = server.ask("cpu") - cpu, time.process_time() - caller
    system = server.ask("system") - system
    return Crowd(
        label,
        latencies,
        span,
        Counter(o[0] for o in outcomes),
        sum(o[1] for o in outcomes),
        sum(o[2] for o in outcomes),
        sum(o[3] for o in outcomes),
        cpu,
        caller,
        system,
        double.stats(),
    )


def run_direct_crowd(
    label: str, double: Double, clients: int, rounds: int, stream_prompt: str | None, token: str
) -> Crowd:
    from sigla.llm import GitHubLLM, RateLimits

    llm = GitHubLLM(
        model=MODEL,
        endpoint=double.url,
        token=token,
        limits=RateLimits(concurrent_requests=CAP),
        queue_timeout=QUEUE_TIMEOUT,
        max_retry_wait=5.0,
    )

    async def run() -> tuple[list[float], float, list[Any]]:
        async def plain(i: int) -> tuple[int, int, bool, bool]:
            ok = await llm.achat(f"n{i}") == f"Echo: n{i}"
            return (200 if ok else -1), 0, False, False

        async def stream(i: int) -> tuple[int, int, bool, bool]:
            pieces = [p async for p in llm.astream(f"n{i} {stream_prompt}")]
            return 200, len(pieces), True, False

        return await crowd(clients, rounds, plain if stream_prompt is None else stream)

    caller, system = time.process_time(), os.times().system
    latencies, span, outcomes = asyncio.run(run())
    caller, system = time.process_time() - caller, os.times().system - system
    return Crowd(
        label,
        latencies,
        span,
        Counter(o[0] for o in outcomes),
        sum(o[1] for o in outcomes),
        sum(o[2] for o in outcomes),
        0,
        caller,
        caller,
        system,
        double.stats(),
    )


def crowd_rows(name: str, server: Crowd, direct: Crowd, expected: int) -> Summary:
    up = server.upstream
    refused = sum(n for status, n in up["statuses"].items() if status != 200)
    answered = server.statuses.get(200, 0)
    return [
        (
            f"{name}: answered 200",
            f"{answered} of {expected} {dict(server.statuses)}",
            f"{expected}",
            answered == expected,
        ),
        (
            f"{name}: upstream max in flight, non-200",
            f"{up['max_in_flight']}, {refused}",
            f"<= {CAP}, 0",
            up["max_in_flight"] <= CAP and refused == 0,
        ),
        (
            f"{name}: p50 / p99 (direct)",
            f"{pct(server.latencies, 0.5) * 1e3:.0f} / {pct(server.latencies, 0.99) * 1e3:.0f} ms "
            f"({pct(direct.latencies, 0.5) * 1e3:.0f} / {pct(direct.latencies, 0.99) * 1e3:.0f})",
            "report",
            None,
        ),
        (
            f"{name}: span / direct span",
            f"{server.span / direct.span:.2f}x",
            "report",
            None,
        ),
        (
            f"{name}: upstream slots busy (direct)",
            f"{server.utilisation:.1%} ({direct.utilisation:.1%})",
            "report",
            None,
        ),
    ]


def part_queue(args: Any, double: Double, server: Child) -> Summary:
    n = args.clients * args.rounds
    print(
        f"part 2, queue: {args.clients} concurrent clients x {args.rounds} POST /llm, double "
        f"concurrency={CAP} latency={LATENCY}, server RateLimits(concurrent_requests={CAP}); "
        f"ideal span {math.ceil(n / CAP) * LATENCY:.2f} s"
    )
    double.set(latency=LATENCY, chunk_delay=0.0, concurrency=CAP)
    asyncio.run(_warm(server))  # the server's client is built by the first request
    double.set()
    served = run_server_crowd("server", double, server, args.clients, args.rounds, None)
    double.set()
    direct = run_direct_crowd("direct achat", double, args.clients, args.rounds, None, "queue")
    print(served.line())
    print(direct.line())
    per_request, direct_per_request = served.cpu / n, direct.cpu / n
    args.crowd_cpu_per_request = per_request
    print(
        f"    server process CPU {served.cpu:.2f} s: {per_request * 1e3:.2f} ms per request, "
        f"{1 / per_request:.0f} requests/s per core at most, against the upstream's "
        f"{CAP / LATENCY:.0f}/s; the load generator's CPU {served.caller_cpu:.2f} s; the direct "
        f"client's {direct.cpu:.2f} s: {direct_per_request * 1e3:.2f} ms per request"
    )
    rows = crowd_rows("queue", served, direct, n)
    rows.append(
        (
            "queue: server CPU per request (direct's)",
            f"{per_request * 1e3:.2f} ms ({direct_per_request * 1e3:.2f})",
            "report",
            None,
        )
    )
    return rows


async def _warm(server: Child) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.first}") as http:
        for _ in range(3):
            assert (await http.post("/llm", json={"prompt": "warm"})).status_code == 200


def part_streams(args: Any, double: Double, server: Child) -> Summary:
    words = " ".join(f"w{i}" for i in range(args.words))
    print(
        f"part 3, streams: {args.clients} concurrent POST /llm/stream, a {args.words + 1}-word "
        f"prompt echoed in pieces, double concurrency={CAP} latency={LATENCY} "
        f"chunk_delay={CHUNK_DELAY}"
    )
    double.set(latency=LATENCY, chunk_delay=CHUNK_DELAY, concurrency=CAP)
    asyncio.run(_warm(server))
    double.set()
    served = run_server_crowd("server", double, server, args.clients, 1, words)
    double.set()
    direct = run_direct_crowd("direct astream", double, args.clients, 1, words, "streams")
    double.set()
    openai = run_server_crowd("server /v1", double, server, args.clients, 1, words, v1=True)
    print(served.line())
    print(direct.line())
    print(openai.line())
    per_event = served.cpu / max(1, served.events)
    direct_per_event = direct.cpu / max(1, direct.events)
    print(
        f"    delta events delivered: {served.events} ({served.events / args.clients:.1f} per "
        f"stream; direct pieces {direct.events}); done {served.done}, error {served.errors}"
    )
    print(
        f"    server process CPU {served.cpu:.2f} s: {per_event * 1e6:.0f} µs per delta event, "
        f"{served.cpu / args.clients * 1e3:.2f} ms per stream, {served.system / served.cpu:.0%} "
        f"of it in the kernel (direct {direct.system / direct.cpu:.0%}); the load generator's CPU "
        f"{served.caller_cpu:.2f} s; direct astream client CPU {direct.cpu:.2f} s: "
        f"{direct_per_event * 1e6:.0f} µs per piece"
    )
    openai_per_event = openai.cpu / max(1, openai.events)
    print(
        f"    POST /v1/chat/completions streams (returning an EventSourceResponse, not a "
        f"generator route): {openai.events} content events, [DONE] {openai.done}, errors "
        f"{openai.errors}; server CPU {openai.cpu:.2f} s: {openai_per_event * 1e6:.0f} µs per "
        f"content event, {openai.cpu / args.clients * 1e3:.2f} ms per stream"
    )
    per_stream = served.cpu / args.clients
    fixed = getattr(args, "crowd_cpu_per_request", None)
    if fixed is not None and served.events:
        marginal = (per_stream - fixed) / (served.events / args.clients)
        print(
            f"    beyond a POST /llm's CPU in part 2 ({fixed * 1e3:.2f} ms): "
            f"{marginal * 1e6:.0f} µs per delta event"
        )
    rows = crowd_rows("streams", served, direct, args.clients)
    rows.insert(
        1,
        (
            "streams: ended with event: done, error",
            f"{served.done}, {served.errors}",
            f"{args.clients}, 0",
            served.done == args.clients and served.errors == 0,
        ),
    )
    rows.append(
        (
            "streams: server CPU per delta event",
            f"{per_event * 1e6:.0f} µs ({per_event / direct_per_event:.2f}x direct's)",
            "report",
            None,
        )
    )
    openai_ok = (
        openai.statuses.get(200, 0) == args.clients
        and openai.done == args.clients
        and openai.errors == 0
        and openai.upstream["max_in_flight"] <= CAP
    )
    rows.append(
        (
            "streams /v1: all [DONE], CPU per event",
            f"{openai.done}, {openai_per_event * 1e6:.0f} µs ({openai_per_event / per_event:.2f}x "
            "/llm/stream's)",
            f"{args.clients}",
            openai_ok,
        )
    )
    return rows


# ---------------------------------------------------------------- main


def load_line() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def log_problems(folder: str) -> int:
    """WARNING/ERROR lines in the server processes' logs."""
    count = 0
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as log:
            for line in log:
                if " WARNING " in line or " ERROR " in line:
                    count += 1
                    if count <= 5:
                        print(f"  {name}: {line.rstrip()[:300]}")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="part 1 timed rounds (300)")
    parser.add_argument("--warmup", type=int, default=None, help="part 1 warm-up calls (30)")
    parser.add_argument("--cpu-calls", type=int, default=None, help="part 1 CPU blocks (100)")
    parser.add_argument(
        "--thread-calls", type=int, default=None, help="part 1 rounds, uvicorn in a thread (150)"
    )
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (200)")
    parser.add_argument("--rounds", type=int, default=None, help="requests per client (2)")
    parser.add_argument("--words", type=int, default=None, help="streamed prompt words (40)")
    parser.add_argument(
        "--keep-alive",
        type=float,
        default=None,
        help="uvicorn's timeout_keep_alive in parts 2 and 3 (default: uvicorn's, 5 s)",
    )
    parser.add_argument("--part", choices=("all", "overhead", "queue", "streams"), default="all")
    parser.add_argument("--quick", action="store_true", help="a short run")
    args = parser.parse_args()
    quick = args.quick
    args.calls = args.calls or (80 if quick else 300)
    args.warmup = args.warmup or (10 if quick else 30)
    args.cpu_calls = args.cpu_calls or (40 if quick else 100)
    args.thread_calls = args.thread_calls or (60 if quick else 150)
    args.rounds = args.rounds or (1 if quick else 2)
    args.words = args.words or (16 if quick else 40)

    _clean_environment()
    use_this_checkout()
    import httpx
    import uvicorn

    print(
        f"server: sigla from {sigla_origin()}, uvicorn {uvicorn.__version__} (asyncio/h11 unless "
        f"uvloop/httptools are installed), httpx {httpx.__version__}; {load_line()}"
    )
    started = time.perf_counter()
    rows: Summary = []
    double = Double()
    try:
        with tempfile.TemporaryDirectory(prefix="sigla-bench-server-") as folder:
            if args.part in ("all", "overhead"):
                rows += part_overhead(args, double, folder)
                print(f"  ({time.perf_counter() - started:.0f} s so far; {load_line()})")
            if args.part in ("all", "queue", "streams"):
                log_file = os.path.join(folder, "server-crowd.log")
                with server_process(double.url, CAP, log_file, args.keep_alive) as server:
                    if args.part in ("all", "queue"):
                        rows += part_queue(args, double, server)
                        print(f"  ({time.perf_counter() - started:.0f} s so far; {load_line()})")
                    if args.part in ("all", "streams"):
                        rows += part_streams(args, double, server)
            problems = log_problems(folder)
    finally:
        double.stop(("stop", None))
    rows.append(("server log WARNING/ERROR lines", str(problems), "0", problems == 0))

    print(f"SUMMARY ({time.perf_counter() - started:.0f} s; {load_line()})")
    width = max(len(r[0]) for r in rows)
    for what, value, target, ok in rows:
        shown = "report" if ok is None else verdict(ok)
        print(f"  {what:<{width}}  {value:<34} {target:<9} {shown}")
    checked = [ok for *_, ok in rows if ok is not None]
    print(f"RESULT server targets met {sum(checked)} of {len(checked)} ({verdict(all(checked))})")


if __name__ == "__main__":
    main()
