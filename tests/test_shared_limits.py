"""The shared limiter (``limiter=``): one budget in SQLite or Redis for every process.

Each behaviour is checked on both backends (the ``limiter_url`` fixture: a fresh SQLite
file, or a real redis-server emptied). Windows run on the store's clock, so these tests
use short windows (``time_scale``) and short leases (``lease_ttl``), never a fake clock.
Processes are real: ``multiprocessing`` with the spawn start method, and a child SIGKILLed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
import shared_workers as workers

from sigla import errors
from sigla._limits import RateLimits, limiter_for
from sigla._shared_limits import SharedLimiter, parse_limiter_url, resolve_limiter
from sigla.llm import GitHubLLM
from sigla.testing import FakeGitHubModels

ENDPOINT = "http://127.0.0.1:9/"
SCALE = 0.05  # a "minute" of 3 s (plus a 0.05 s margin)
MINUTE = 60 * SCALE + 0.25  # the margin of a shortened window is at least 0.25 s


def options(url: str, **query: float) -> str:
    joined = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{url}{'&' if '?' in url else '?'}{joined}" if joined else url


def budget(url: str, limits: RateLimits, **query: float) -> SharedLimiter:
    """A shared limiter of a budget of its own (another test's leftovers never count)."""
    target = parse_limiter_url(options(url, **query), "test")
    model = f"m-{uuid.uuid4().hex[:8]}"
    made = limiter_for(ENDPOINT, model, "d", limits, time.monotonic, store=target)
    assert isinstance(made, SharedLimiter)
    return made


def twin(limiter: SharedLimiter) -> SharedLimiter:
    """Another limiter object of the same budget and store, as another process builds."""
    return SharedLimiter(limiter.store, limiter.budget, limiter.limits, time.monotonic,
                         time_scale=limiter._scale)


# ---------------------------------------------------------------- windows


def test_a_minute_window_is_shared_and_the_next_request_waits_for_its_end(limiter_url):
    first = budget(limiter_url, RateLimits(requests_per_minute=3), time_scale=SCALE)
    other = twin(first)
    waits = [first.book(60)[1], other.book(60)[1], first.book(60)[1]]
    assert waits == [0.0, 0.0, 0.0] or max(waits) < 0.01
    _, wait = other.book(60)  # the fourth, from the other object: the window is full
    assert MINUTE - 0.2 < wait <= MINUTE + 0.01


def test_a_booking_over_max_retry_wait_is_refused_unless_the_caller_is_patient(limiter_url):
    limiter = budget(limiter_url, RateLimits(requests_per_minute=1), time_scale=SCALE)
    limiter.book(60)
    with pytest.raises(errors.RateLimitError) as caught:
        limiter.book(1.0)
    assert caught.value.client_side and caught.value.limit_type == "sigla requests per minute"
    assert caught.value.retry_after is not None and caught.value.retry_after > 1.0
    assert limiter.store.snapshot(limiter.budget)["bookings"] == 1  # nothing booked
    _, wait = limiter.book(1.0, patient=True)  # a batch waits minutes, never days
    assert wait > 1.0
    assert limiter.store.snapshot(limiter.budget)["bookings"] == 2


def test_a_spent_day_is_refused_even_to_a_patient_batch(limiter_url):
    limiter = budget(limiter_url, RateLimits(requests_per_day=2), time_scale=SCALE)
    limiter.book(60)
    limiter.book(60)
    with pytest.raises(errors.RateLimitError) as caught:
        limiter.book(60, patient=True)
    assert caught.value.limit_type == "sigla requests per day"
    assert caught.value.retry_after is not None and caught.value.retry_after > 60


def test_a_cancelled_booking_frees_its_place(limiter_url):
    limiter = budget(limiter_url, RateLimits(requests_per_minute=1), time_scale=SCALE)
    ticket, _ = limiter.book(60)
    limiter.cancel(ticket)
    assert limiter.book(60)[1] == pytest.approx(0.0, abs=0.01)


def test_tokens_per_minute_count_estimates_then_the_usage(limiter_url):
    limiter = budget(limiter_url, RateLimits(tokens_per_minute=100), time_scale=SCALE)
    first, wait = limiter.book(60, tokens=60)
    assert wait == pytest.approx(0.0, abs=0.01)
    _, wait = twin(limiter).book(0.5, tokens=30)  # 90 of 100: fits
    assert wait == pytest.approx(0.0, abs=0.01)
    with pytest.raises(errors.RateLimitError) as caught:
        limiter.book(0.5, tokens=30)  # 120: must wait for the first to age out
    assert caught.value.limit_type == "sigla tokens per minute"
    limiter.settle(first, 60, 10)  # the answer said it cost 10
    assert limiter.book(0.5, tokens=30)[1] == pytest.approx(0.0, abs=0.01)


def test_tokens_wait_only_until_enough_of_them_age_out(limiter_url):
    limiter = budget(limiter_url, RateLimits(tokens_per_minute=100), time_scale=SCALE)
    limiter.book(60, tokens=60)
    time.sleep(0.5)
    limiter.book(60, tokens=30)
    _, wait = limiter.book(60, tokens=30, patient=True)  # 120: the first 60 must go
    assert MINUTE - 0.5 - 0.15 < wait < MINUTE - 0.5 + 0.05  # not the second's expiry


def test_a_late_send_moves_the_booking_to_when_it_left(limiter_url):
    limiter = budget(limiter_url, RateLimits(requests_per_minute=1), time_scale=SCALE)
    ticket, _ = limiter.book(60)
    time.sleep(0.3)  # the thread woke late: it really left now, not at its booked time
    limiter.sent(ticket)
    _, wait = twin(limiter).book(60, patient=True)
    # Counted from the real send: a whole window from now, not 0.3 s less.
    assert MINUTE - 0.15 < wait <= MINUTE + 0.01


# ---------------------------------------------------------------- leases


def test_concurrent_slots_are_leases_in_the_store(limiter_url):
    limiter = budget(limiter_url, RateLimits(concurrent_requests=2))
    other = twin(limiter)
    other.slots = type(limiter.slots)(limiter.store, limiter.budget, "c", 2, 30.0)  # type: ignore[misc]
    limiter.acquire(1.0)
    other.acquire(1.0)
    with pytest.raises(errors.RateLimitError) as caught:
        other.acquire(0.05)
    assert caught.value.limit_type == "sigla concurrent requests"
    limiter.release()
    other.acquire(1.0)
    assert limiter.store.snapshot(limiter.budget)["leases"] == {"c": 2}


async def test_the_async_twin_waits_for_a_lease_without_blocking_the_loop(limiter_url):
    import asyncio

    limiter = budget(limiter_url, RateLimits(concurrent_requests=1))
    await limiter.aacquire(1.0)
    waiting = asyncio.ensure_future(limiter.aacquire(2.0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    limiter.release()
    await asyncio.wait_for(waiting, 2.0)
    with pytest.raises(errors.RateLimitError) as caught:  # held: the wait is bounded
        await limiter.aacquire(0.05)
    assert caught.value.limit_type == "sigla concurrent requests"
    limiter.release()


def test_a_lease_of_a_killed_worker_expires_and_a_live_one_is_renewed(limiter_url, tmp_path):
    url = options(limiter_url, lease_ttl=0.6)
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, workers.__file__, "hold", url, "2", str(ready)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists(), "the child never took its leases"
        target = parse_limiter_url(url, "test")
        here = limiter_for(
            ENDPOINT, workers.MODEL, "digest", RateLimits(concurrent_requests=2),
            time.monotonic, store=target,
        )
        time.sleep(1.5)  # over two TTLs: only renewal keeps the child's leases alive
        with pytest.raises(errors.RateLimitError):
            here.acquire(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        started = time.monotonic()
        here.acquire(5.0)  # frees within one TTL of the last renewal
        assert time.monotonic() - started < 1.5
        here.release()
    finally:
        child.kill()
        child.wait(10)


# ---------------------------------------------------------------- pause and learning


def test_a_pause_set_by_one_process_holds_every_other(limiter_url):
    limiter = budget(limiter_url, RateLimits(concurrent_requests=1))
    spawn = multiprocessing.get_context("spawn")
    # the child's budget is workers.MODEL's: look at that one
    target = parse_limiter_url(limiter_url, "test")
    here = limiter_for(ENDPOINT, workers.MODEL, "digest", RateLimits(concurrent_requests=1),
                       time.monotonic, store=target)
    child = spawn.Process(target=workers.pause_budget, args=(limiter_url, 30.0))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert 25 < here.paused_for(60) <= 30
    with pytest.raises(errors.RateLimitError) as caught:
        here.paused_for(5)
    assert caught.value.limit_type == "UserByModelByMinute"
    assert limiter.paused_for(60) == 0.0  # another budget is not paused


def test_the_learned_concurrency_is_shared(limiter_url):
    limiter = budget(limiter_url, RateLimits())
    other = twin(limiter)
    start = limiter.adaptive.value
    other.adaptive.overloaded(other.adaptive.round)
    assert limiter.adaptive.value == pytest.approx(max(1.0, start / 2))
    limiter.adaptive.overloaded(0)  # the same burst, seen late by another worker: once
    assert other.adaptive.value == pytest.approx(max(1.0, start / 2))
    limiter.adaptive.overloaded(limiter.adaptive.round, stated=3)
    assert other.adaptive.value == 3.0
    for _ in range(5):  # successes never grow it past the cap the service stated
        limiter.adaptive.succeeded()
    assert other.adaptive.value == 3.0
    # the learned value is also the cap of the "a" leases a learning batch takes
    seats = limiter.adaptive.slots
    assert all(seats.acquire(0.5) for _ in range(3))
    assert not other.adaptive.slots.acquire(0.02)


# ---------------------------------------------------------------- through GitHubLLM


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "private"])
def test_processes_keep_one_budget_only_with_a_shared_limiter(limiter_url, shared):
    """Three processes, four threads each, against a cap of 2 in flight and 8 a minute."""
    spawn = multiprocessing.get_context("spawn")
    clock = lambda: time.monotonic() / SCALE  # noqa: E731 (the double's minute lasts 3 s)
    rpm = 8 if shared else None
    with FakeGitHubModels(concurrency=2, rpm=rpm, latency=0.2, clock=clock) as fake:
        # Private budgets: no per-minute limit, whose 429s would pause each worker for a
        # real minute; the concurrency cap alone shows them overspending.
        limits = {"concurrent_requests": 2, "requests_per_minute": 8}
        if not shared:
            del limits["requests_per_minute"]
        url = options(limiter_url, time_scale=SCALE) if shared else None
        prompts = [f"p{i}" for i in range(15)]
        barrier, queue = spawn.Barrier(3), spawn.Queue()
        children = [
            spawn.Process(
                target=workers.map_prompts,
                args=(fake.url, url, prompts[i::3], limits, barrier, queue),
            )
            for i in range(3)
        ]
        for child in children:
            child.start()
        results = [queue.get(timeout=60) for _ in children]
        for child in children:
            child.join(30)
        statuses = Counter(r.status for r in fake.requests if r.path.endswith("completions"))
    answers = [a for part in results for a in part]
    if shared:
        assert statuses == {200: 15}, statuses
        assert fake.max_in_flight <= 2
        assert all(a.startswith("Echo") for a in answers)
    else:  # the reason the shared limiter exists: each process spends the whole budget
        assert statuses[429] > 0 or fake.max_in_flight > 2


def test_a_store_that_is_down_fails_the_call_naming_it_and_never_goes_private(start_redis):
    server = start_redis(password="pw-s3cret-limiter")
    url = options(server.url, time_scale=SCALE)
    with FakeGitHubModels() as fake:
        llm = GitHubLLM(workers.MODEL, token=workers.TOKEN, endpoint=fake.url,
                        limits=RateLimits(concurrent_requests=2), limiter=url)
        assert llm.chat("one") == "Echo: one"
        server.stop()
        with pytest.raises(errors.StoreUnavailableError) as caught:
            llm.chat("two")
        text = str(caught.value)
        assert "pw-s3cret-limiter" not in text and "redis://:***@127.0.0.1" in text
        results = llm.map(["a", "b", "c"], return_exceptions=True)
        assert all(isinstance(r, errors.StoreUnavailableError | errors.NotAttemptedError)
                   for r in results)
        assert len([r for r in fake.requests if r.path.endswith("completions")]) == 1
        # built while the store is down (a worker unpickling it): the call says so
        later = GitHubLLM(workers.MODEL, token=workers.TOKEN, endpoint=fake.url, limiter=url)
        with pytest.raises(errors.StoreUnavailableError):
            later.chat("three")


def test_an_sqlite_store_that_cannot_be_opened_is_named(tmp_path):
    folder = tmp_path / "taken.db"
    folder.mkdir()
    with FakeGitHubModels() as fake:
        llm = GitHubLLM(workers.MODEL, token=workers.TOKEN, endpoint=fake.url,
                        limits=RateLimits(concurrent_requests=1),
                        limiter=f"sqlite:///{tmp_path / 'other.db'}")
        assert llm.chat("x") == "Echo: x"
        with pytest.raises(errors.ConfigurationError) as caught:
            GitHubLLM(workers.MODEL, token=workers.TOKEN, endpoint=fake.url,
                      limiter=f"sqlite:///{folder}")
        assert str(folder) in str(caught.value)
        assert not fake.requests[1:]


def test_the_credential_is_in_no_key_and_no_value_of_the_store(limiter_url, tmp_path):
    password = "userpass-in-the-endpoint-0123"
    with FakeGitHubModels() as fake:
        endpoint = f"{fake.url.rstrip('/')}/?key={password}"
        llm = GitHubLLM(workers.MODEL, token=workers.TOKEN, endpoint=endpoint,
                        limits=RateLimits(requests_per_minute=100, concurrent_requests=2,
                                          tokens_per_minute=10**6),
                        limiter=limiter_url)
        assert llm.map(["a", "b"]) == ["Echo: a", "Echo: b"]
        store = llm._attempts.limiter.store
        if limiter_url.startswith("sqlite"):
            written = repr(store.dump())
        else:
            import redis

            with redis.Redis.from_url(limiter_url) as client:
                keys = client.keys("*")
                assert keys
                written = repr(keys)
                for key in keys:
                    kind = client.type(key).decode()
                    written += repr(
                        client.zrange(key, 0, -1, withscores=True) if kind == "zset"
                        else client.hgetall(key) if kind == "hash" else client.get(key)
                    )
    for secret in (workers.TOKEN, password, workers.TOKEN[-12:]):
        assert secret not in written
    assert "openai/gpt-4o-mini" in written  # the budget is readable: endpoint and model


# ---------------------------------------------------------------- settings


def test_the_setting_comes_from_the_argument_or_the_environment(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}?lease_ttl=5&time_scale=0.5"
    target = resolve_limiter(None, environ={"SIGLA_LIMITER_URL": url})
    assert target is not None and target.source == "SIGLA_LIMITER_URL"
    assert (target.lease_ttl, target.time_scale) == (5.0, 0.5)
    assert target.location == str(tmp_path / "l.db")
    assert resolve_limiter(None, environ={"SIGLA_LIMITER_URL": "  "}) is None
    redis_target = parse_limiter_url("redis://:pw@h:6379/2?lease_ttl=9&ssl_cert_reqs=none", "x")
    assert redis_target.location == "redis://:pw@h:6379/2?ssl_cert_reqs=none"
    assert redis_target.shown == "redis://:***@h:6379/2?ssl_cert_reqs=none"


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("limits.db", "not one sigla knows"),
        ("http://h/x", "not one sigla knows"),
        ("sqlite://host/x.db", "three slashes"),
        ("sqlite:///x.db?lease_ttl=0", "lease_ttl"),
        ("sqlite:///x.db?time_scale=nan", "time_scale"),
        ("sqlite:///x.db?journal=wal", "journal"),
        ("redis://:pw@/0", "Redis URL"),
        ("", "empty"),
    ],
)
def test_a_bad_setting_is_a_configuration_error_naming_it(setting, says):
    with pytest.raises(errors.ConfigurationError) as caught:
        GitHubLLM(workers.MODEL, token=workers.TOKEN, endpoint=ENDPOINT, limiter=setting)
    assert says in str(caught.value)
    assert "pw" not in str(caught.value).replace("pw@", "") or ":***@" in str(caught.value)


def test_a_pickled_client_keeps_its_shared_budget(tmp_path):
    import pickle

    url = f"sqlite:///{tmp_path / 'l.db'}"
    llm = GitHubLLM(workers.MODEL, token=workers.TOKEN, endpoint=ENDPOINT, limiter=url,
                    limits=RateLimits(concurrent_requests=2))
    copy = pickle.loads(pickle.dumps(llm))
    assert copy._attempts.limiter.budget == llm._attempts.limiter.budget
    assert copy._attempts.limiter.store.location == str(tmp_path / "l.db")


def test_import_sigla_llm_opens_no_store_library():
    names = "('redis', 'sqlite3', 'sigla._shared_limits')"
    code = f"import sys, sigla.llm; print(sorted(m for m in {names} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- the command line


def test_doctor_checks_the_shared_limiter_and_fails_when_it_is_down(limiter_url, start_redis):
    from click.testing import CliRunner

    from sigla.cli import main

    with FakeGitHubModels() as fake:
        env = {"GITHUB_TOKEN": workers.TOKEN, "SIGLA_LLM_ENDPOINT": fake.url,
               "SIGLA_LIMITER_URL": limiter_url}
        result = CliRunner().invoke(main, ["doctor"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "limiter check OK" in result.output
        assert "(from SIGLA_LIMITER_URL)" in result.output
        assert "check         OK" in result.output
        # the check request itself went through the shared budget
        limiter = GitHubLLM(
            token=workers.TOKEN, endpoint=fake.url, limiter=limiter_url
        )._attempts.limiter
        assert limiter.store.snapshot(limiter.budget)["bookings"] == 1
        down = start_redis(password="doctor-s3cret")
        url = down.url
        down.stop()
        result = CliRunner().invoke(main, ["doctor", "--limiter", url], env=env)
        assert result.exit_code == 2, result.output
        assert "limiter check FAILED" in result.output and "doctor-s3cret" not in result.output
        assert "redis://:***@127.0.0.1" in result.output
        result = CliRunner().invoke(main, ["doctor", "--no-request"], env={**env,
                                    "SIGLA_LIMITER_URL": ""})
        assert "this process only" in result.output


def test_sigla_map_takes_a_limiter(limiter_url, tmp_path):
    from click.testing import CliRunner

    from sigla.cli import main

    source = tmp_path / "prompts.txt"
    source.write_text("one\ntwo\n")
    with FakeGitHubModels() as fake:
        env = {"GITHUB_TOKEN": workers.TOKEN, "SIGLA_LLM_ENDPOINT": fake.url}
        result = CliRunner().invoke(
            main, ["map", str(source), "--limiter", limiter_url, "--no-progress"], env=env,
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        same = GitHubLLM(token=workers.TOKEN, endpoint=fake.url, limiter=limiter_url)
        limiter = same._attempts.limiter
        # each request booked its place in the shared store (no window is set here)
        assert limiter.store.snapshot(limiter.budget)["bookings"] == 2


def test_a_store_lost_mid_batch_stops_it_keeping_every_answer(start_redis):
    import threading

    server = start_redis()
    with FakeGitHubModels(latency=0.05) as fake:
        llm = GitHubLLM(workers.MODEL, token=workers.TOKEN, endpoint=fake.url,
                        limits=RateLimits(concurrent_requests=2), limiter=server.url)

        def answered() -> int:
            return sum(r.status == 200 for r in fake.requests)

        def stop_after_five() -> None:
            while answered() < 5:
                time.sleep(0.005)
            server.stop()

        watcher = threading.Thread(target=stop_after_five)
        watcher.start()
        with pytest.raises(errors.BatchError) as caught:
            llm.map([f"p{i}" for i in range(40)])
        watcher.join(10)
        sent = len(fake.requests)
    results = caught.value.results
    assert isinstance(caught.value.reason, errors.StoreUnavailableError)
    answers = [r for r in results if isinstance(r, str)]
    assert len(answers) == sent >= 5  # every answer received is kept, in its place
    assert all(r == f"Echo: p{i}" for i, r in enumerate(results) if isinstance(r, str))
    assert all(isinstance(r, errors.StoreUnavailableError | errors.NotAttemptedError)
               for r in results if not isinstance(r, str))
    assert sent < 40  # it stopped: no private budget took over


def test_an_answer_in_flight_when_the_store_goes_is_kept(start_redis, caplog):
    import threading

    server = start_redis()
    with FakeGitHubModels(latency=0.4) as fake:
        llm = GitHubLLM(workers.MODEL, token=workers.TOKEN, endpoint=fake.url,
                        limits=RateLimits(concurrent_requests=2, tokens_per_minute=10**6),
                        limiter=server.url)
        got: list[str] = []
        call = threading.Thread(target=lambda: got.append(llm.chat("kept")))
        call.start()
        deadline = time.monotonic() + 10
        while fake.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.stop()  # its lease, token count and success can no longer be written
        call.join(10)
    assert got == ["Echo: kept"]
    assert "could not free a concurrent-request lease" in caplog.text


def test_a_forked_child_never_gives_back_its_parents_leases(limiter_url):
    limiter = budget(limiter_url, RateLimits(concurrent_requests=2))
    limiter.acquire(1.0)
    child = multiprocessing.get_context("fork").Process(
        target=workers.release_twice, args=(limiter,)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert limiter.store.snapshot(limiter.budget)["leases"] == {"c": 1}  # the parent's
    limiter.release()
