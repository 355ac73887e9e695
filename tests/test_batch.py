"""Batches: map/imap/amap against the double over loopback, threads and asyncio both."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import TOKEN, interruptible

from sigla._cache import open_cache
from sigla.llm import (
    AuthenticationError,
    BatchError,
    GitHubLLM,
    InputTooLargeError,
    InvalidRequestError,
    NotAttemptedError,
    RateLimitError,
    RateLimits,
)
from sigla.testing import FakeGitHubModels

pytestmark = pytest.mark.e2e

TOO_LARGE = "x" * 40_000  # over the double's 8,000-token input cap: a 413 for that item


def run_map(llm: GitHubLLM, mode: str, prompts, **kwargs):
    kwargs.setdefault("progress", False)
    if mode == "sync":
        return llm.map(prompts, **kwargs)
    return asyncio.run(llm.amap(prompts, **kwargs))


def test_answers_come_back_in_input_order(make_llm, fake, mode):
    fake.latency = 0.01
    prompts = [f"q{i}" for i in range(25)]
    answers = run_map(make_llm(), mode, prompts, concurrency=5)
    assert answers == [f"Echo: q{i}" for i in range(25)]
    assert len(fake.requests) == 25


def test_an_item_may_be_a_message_list_and_system_goes_first(make_llm, fake, mode):
    items = [
        "plain",
        [{"role": "user", "content": "listed"}],
        [{"role": "system", "content": "own"}, {"role": "user", "content": "kept"}],
    ]
    answers = run_map(make_llm(), mode, items, system="Be terse.", concurrency=1)
    assert answers == ["Echo: plain", "Echo: listed", "Echo: kept"]
    systems = [r.body["messages"][0] for r in fake.requests]
    assert systems == [
        {"role": "system", "content": "Be terse."},
        {"role": "system", "content": "Be terse."},
        {"role": "system", "content": "own"},
    ]


def test_options_apply_to_every_item(make_llm, fake, mode):
    run_map(make_llm(), mode, ["a", "b"], temperature=0.1, max_tokens=7, seed=3)
    assert {(r.body["temperature"], r.body["max_tokens"]) for r in fake.requests} == {(0.1, 7)}


def test_failed_items_keep_their_error_in_place_and_the_batch_goes_on(make_llm, fake, mode):
    items = ["a", TOO_LARGE, 42, "d"]
    results = run_map(make_llm(), mode, items, return_exceptions=True, concurrency=2)
    assert results[0] == "Echo: a" and results[3] == "Echo: d"
    assert isinstance(results[1], InputTooLargeError)
    assert isinstance(results[2], InvalidRequestError) and "Item 2" in str(results[2])
    assert len(fake.requests) == 3, "the malformed item was never sent"


def test_a_failed_item_raises_a_batch_error_that_keeps_every_answer(make_llm, fake, mode):
    with pytest.raises(BatchError) as caught:
        run_map(make_llm(), mode, ["a", TOO_LARGE, "c"], concurrency=2)
    error = caught.value
    assert error.results[0] == "Echo: a" and error.results[2] == "Echo: c"
    assert isinstance(error.results[1], InputTooLargeError)
    assert [i for i, _ in error.errors] == [1]
    assert "1 of 3 items failed (1 InputTooLargeError)" in str(error)
    assert error.reason is None


def test_a_rejected_credential_stops_the_batch(make_llm, fake, mode):
    fake.fail("bad_credentials", times=None)
    results = run_map(
        make_llm(), mode, [f"q{i}" for i in range(30)], return_exceptions=True, concurrency=2
    )
    assert len(results) == 30
    sent = [r for r in results if isinstance(r, AuthenticationError)]
    skipped = [r for r in results if isinstance(r, NotAttemptedError)]
    assert 1 <= len(sent) <= 2, "only the requests already on the wire were sent"
    assert len(sent) + len(skipped) == 30
    assert all(isinstance(s.reason, AuthenticationError) for s in skipped)
    assert len(fake.requests) == len(sent)


def test_a_spent_daily_quota_stops_the_batch_and_says_how_to_resume(clock, make_llm, mode):
    with FakeGitHubModels(daily=3, clock=clock) as limited:
        llm = make_llm(endpoint=limited.url, clock=clock)
        with pytest.raises(BatchError) as caught:
            run_map(llm, mode, [f"q{i}" for i in range(8)], concurrency=1)
        statuses = [r.status for r in limited.requests]
    error = caught.value
    assert error.results[:3] == ["Echo: q0", "Echo: q1", "Echo: q2"]
    assert isinstance(error.results[3], RateLimitError)
    assert all(isinstance(r, NotAttemptedError) for r in error.results[4:])
    assert isinstance(error.reason, RateLimitError)
    assert statuses == [200, 200, 200, 429]
    text = str(error)
    assert "daily quota resets in" in text and "cache" in text and "4 items not sent" in text


def test_imap_yields_pairs_as_they_finish_and_reads_the_input_lazily(make_llm, fake):
    fake.latency = 0.005
    produced = []

    def prompts():
        for i in itertools.count():
            produced.append(i)
            yield f"q{i}"

    llm = make_llm()
    seen = {}
    for index, answer in llm.imap(prompts(), concurrency=3, progress=False):
        seen[index] = answer
        assert len(produced) <= len(seen) + 3 + 2 * 3 + 1, "read ahead only by the concurrency"
        if len(seen) == 40:
            break
    assert all(seen[i] == f"Echo: q{i}" for i in seen)
    time.sleep(0.05)
    assert len(fake.requests) <= 40 + 3, "leaving the loop stopped the batch"


def test_imap_raises_when_the_batch_was_stopped(make_llm, fake):
    fake.fail("unauthorized", times=None)
    pairs = []
    with pytest.raises(BatchError) as caught:
        for pair in make_llm().imap(iter(["a", "b", "c"]), concurrency=1, progress=False):
            pairs.append(pair)
    assert isinstance(caught.value.reason, AuthenticationError)
    assert [i for i, _ in pairs] == [0], "the rest of the input was not read"


def test_imap_surfaces_an_error_of_the_input_itself(make_llm, fake):
    def prompts():
        yield "a"
        raise KeyError("broken input")

    with pytest.raises(KeyError, match="broken input"):
        list(make_llm().imap(prompts(), concurrency=1, progress=False))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", 10_000])
def test_concurrency_must_be_a_sensible_int(make_llm, bad):
    with pytest.raises(InvalidRequestError, match="concurrency"):
        make_llm().map(["a"], concurrency=bad, progress=False)


def test_a_known_cap_is_never_exceeded_and_draws_no_429(mode):
    with FakeGitHubModels(concurrency=2, latency=0.02) as capped:
        llm = GitHubLLM(endpoint=capped.url, token=TOKEN, limits=RateLimits(concurrent_requests=2))
        answers = run_map(llm, mode, [f"q{i}" for i in range(20)])
        statuses = [r.status for r in capped.requests]
        most = capped.max_in_flight
    assert answers == [f"Echo: q{i}" for i in range(20)]
    assert statuses == [200] * 20
    assert most == 2, "the cap was used, and never exceeded"


def test_an_unknown_cap_is_learned_from_429s_and_nothing_is_lost(mode):
    with FakeGitHubModels(concurrency=2, latency=0.02) as capped:
        llm = GitHubLLM(
            endpoint=capped.url, token=TOKEN, sleep=lambda s: None, async_sleep=_no_wait
        )
        answers = run_map(llm, mode, [f"q{i}" for i in range(30)])
        statuses = [r.status for r in capped.requests]
        learned = llm._attempts.limiter.adaptive.value
    assert answers == [f"Echo: q{i}" for i in range(30)]
    assert statuses.count(429) >= 1 and statuses.count(200) == 30
    assert learned == 2, "GitHub's 429 states the cap (2 per 0s): the batch keeps to it"


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def test_without_adaptation_a_fixed_concurrency_runs(make_llm, fake, mode):
    answers = run_map(make_llm(), mode, ["a", "b", "c"], adaptive=False)
    assert answers == ["Echo: a", "Echo: b", "Echo: c"]


def test_usage_totals_add_up_over_a_batch(make_llm, fake, mode):
    llm = make_llm()
    fake.fail("server_error")
    run_map(llm, mode, ["a", "b", "c"], concurrency=1)
    usage = llm.usage
    assert (usage.requests, usage.retries, usage.cached) == (4, 1, 0)
    assert usage.total_tokens > 0


def test_a_progress_bar_counts_items_and_failures(make_llm, fake, capsys):
    make_llm().map(["a", TOO_LARGE, "c"], progress=True, return_exceptions=True, concurrency=1)
    err = capsys.readouterr().err
    assert "3/3" in err and "failed=1" in err


def test_no_bar_when_stderr_is_not_a_terminal(make_llm, fake, capsys):
    make_llm().map(["a"])
    assert capsys.readouterr().err == ""


CTRL_C = textwrap.dedent(
    """
    import asyncio, sys, threading, time
    from sigla.llm import GitHubLLM
    llm = GitHubLLM(endpoint=sys.argv[1], token="t" * 20)
    print("started", flush=True)
    prompts = [f"q{i}" for i in range(50)]
    try:
        if sys.argv[2] == "sync":
            llm.map(prompts, concurrency=2, progress=False)
        else:
            asyncio.run(llm.amap(prompts, concurrency=2, progress=False))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        # the workers' sockets were shut down: they end now, not when their answers come
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline and any(
            t.name.startswith("sigla-batch") for t in threading.enumerate()
        ):
            time.sleep(0.01)
        print("workers left:", sum(t.name.startswith("sigla-batch") for t in threading.enumerate()))
        raise
    """
)


def test_ctrl_c_stops_a_batch_promptly_and_closes_its_connections(fake, tmp_path, mode):
    fake.latency = 5.0  # every answer is slow: the batch is mid-request when interrupted
    script = tmp_path / "batch.py"
    script.write_text(CTRL_C)
    child = subprocess.Popen(
        interruptible([sys.executable, str(script), fake.url, mode]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 20
        while len(fake.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(fake.requests) == 2
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=10)
        took = time.monotonic() - sent
        out, err = child.communicate()
    finally:
        child.kill()
    assert code != 0 and "KeyboardInterrupt" in err
    assert "interrupted" in out and "workers left: 0" in out
    assert took < 1.0, f"took {took:.2f} s to stop (~0.25 s measured, process exit included)"
    assert len(fake.requests) == 2, "nothing was sent after Ctrl-C"


# -- the response cache: hits send nothing; a killed batch resumes


def test_a_cached_answer_sends_no_request_in_any_call(make_llm, fake, tmp_path, mode):
    llm = make_llm(cache=tmp_path / "answers.sqlite")
    first = run_map(llm, mode, ["a", "b"])
    again = run_map(llm, mode, ["a", "b", "c"])
    assert first == ["Echo: a", "Echo: b"] and again == [*first, "Echo: c"]
    assert len(fake.requests) == 3
    assert llm.chat("a") == "Echo: a"
    assert "".join(llm.stream("b")) == "Echo: b", "a stream of a cached answer yields it"
    assert len(fake.requests) == 3
    assert (llm.usage.cached, llm.usage.requests) == (4, 3)


def test_only_finished_answers_are_cached(make_llm, fake, tmp_path):
    llm = make_llm(cache=tmp_path / "answers.sqlite")
    fake.fail("content_filter")
    results = llm.map(["a"], return_exceptions=True, progress=False)
    assert not isinstance(results[0], str)
    assert llm.map(["a"], progress=False) == ["Echo: a"]
    assert len(fake.requests) == 2


def test_the_cache_comes_from_sigla_cache_url(make_llm, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("SIGLA_CACHE_URL", f"sqlite:///{tmp_path}/env.sqlite")
    llm = make_llm()
    llm.chat("a")
    llm.chat("a")
    assert len(fake.requests) == 1
    assert make_llm(cache=False).cache is None


RESUMABLE = textwrap.dedent(
    """
    import sys
    from sigla.llm import GitHubLLM
    llm = GitHubLLM(endpoint=sys.argv[1], token="t" * 20, cache=sys.argv[2])
    out = llm.map([f"q{i}" for i in range(int(sys.argv[3]))], concurrency=2, progress=False)
    print(len(out), llm.usage.cached, llm.usage.requests, flush=True)
    """
)


def _python(script, *args):
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_a_batch_killed_hard_resumes_with_only_the_missing_requests(fake, tmp_path):
    script = tmp_path / "resumable.py"
    script.write_text(RESUMABLE)
    cache = tmp_path / "answers.sqlite"
    fake.latency = 0.05
    child = _python(script, fake.url, cache, 40)
    deadline = time.monotonic() + 30
    while sum(r.status == 200 for r in fake.requests) < 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    with open_cache(cache) as stored:
        kept = stored.info().entries  # answers the client had received and stored
    answered = sum(r.status == 200 for r in fake.requests)
    assert answered - 2 <= kept <= answered < 40, "at most the two on the wire were lost"
    fake.reset()
    fake.latency = 0
    again = _python(script, fake.url, cache, 40)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    total, cached, requests = map(int, out.split())
    assert (total, cached, requests) == (40, kept, 40 - kept)
    assert len(fake.requests) == 40 - kept, "only the requests with no stored answer were sent"


def test_processes_share_one_cache_file(fake, tmp_path):
    script = tmp_path / "resumable.py"
    script.write_text(RESUMABLE)
    cache = tmp_path / "shared.sqlite"
    children = [_python(script, fake.url, cache, 30) for _ in range(3)]
    outputs = [child.communicate(timeout=60) for child in children]
    assert all(child.returncode == 0 for child in children), [e for _, e in outputs]
    assert all(out.split()[0] == "30" for out, _ in outputs)
    final = _python(script, fake.url, cache, 30).communicate(timeout=60)[0].split()
    assert final[1:] == ["30", "0"], "every answer is in the shared file"


def test_a_per_minute_limit_shared_with_the_double_draws_no_429(clock, make_llm):
    with FakeGitHubModels(rpm=4, clock=clock) as limited:
        llm = make_llm(endpoint=limited.url, clock=clock, limits=RateLimits(requests_per_minute=4))
        answers = llm.map([f"q{i}" for i in range(10)], concurrency=1, progress=False)
        statuses = [r.status for r in limited.requests]
    assert answers == [f"Echo: q{i}" for i in range(10)]
    assert statuses == [200] * 10
    assert clock.sleeps == [61, 61], "two waits for the next minute, margin included"


def test_tokens_per_minute_shared_with_the_double_draw_no_429(clock, make_llm):
    with FakeGitHubModels(tpm=400, clock=clock) as limited:
        llm = make_llm(endpoint=limited.url, clock=clock, limits=RateLimits(tokens_per_minute=400))
        prompts = ["x" * 300 for _ in range(6)]  # ~100 estimated + 50 for the answer, each
        answers = llm.map(prompts, concurrency=1, max_tokens=50, progress=False)
        statuses = [r.status for r in limited.requests]
    assert len(answers) == 6 and statuses == [200] * 6
    assert clock.sleeps, "the budget made the batch wait rather than be refused"


def test_waiting_for_a_slot_on_an_event_loop_does_not_poll(monkeypatch):
    from sigla._slots import Slots

    slots = Slots(1)
    naps = []
    real_sleep = asyncio.sleep

    async def counting_sleep(seconds, *args):
        naps.append(seconds)
        return await real_sleep(seconds, *args)

    async def scenario():
        assert await slots.aacquire(5)
        waiter = asyncio.ensure_future(slots.aacquire(5))
        await real_sleep(0.05)
        monkeypatch.setattr(asyncio, "sleep", counting_sleep)
        await real_sleep(0.1)  # the waiter is parked: nothing wakes it to look again
        assert not waiter.done()
        slots.release()
        assert await waiter
        slots.release()

    asyncio.run(scenario())
    assert naps == []


def test_a_per_minute_limit_alone_paces_a_batch_that_never_fails_on_it(clock, make_llm, mode):
    """The learned concurrency never exceeds a minute's requests, and a batch waits for
    its minutes however many there are (max_retry_wait bounds a single call's patience):
    before, bookings two minutes out failed as client-side 429s. (A fake clock that jumps
    when one worker sleeps may date another's request later than it was booked, so the
    double may refuse one now and then: those are retried; none may fail.)"""
    with FakeGitHubModels(rpm=2, clock=clock) as limited:
        llm = make_llm(endpoint=limited.url, clock=clock, limits=RateLimits(requests_per_minute=2))
        answers = run_map(llm, mode, [f"q{i}" for i in range(12)])
    assert answers == [f"Echo: q{i}" for i in range(12)]
    assert llm._attempts.limiter.adaptive.ceiling == 2


def test_the_bar_says_what_the_batch_waits_for(clock, make_llm, fake, capsys):
    llm = make_llm(clock=clock, limits=RateLimits(requests_per_minute=1))
    llm.map(["a", "b"], progress=True, concurrency=1)
    err = capsys.readouterr().err
    assert "waiting 1 min 1 s: 1/min" in err or "waiting 61 s: 1/min" in err, err[-300:]
    assert "2/2" in err


def test_leaving_imap_early_leaves_no_worker_thread_behind(make_llm, fake):
    import threading

    fake.latency = 0.01
    for _ in range(2):
        for _index, _answer in make_llm().imap((f"q{i}" for i in range(100)), concurrency=4):
            time.sleep(0.3)  # a slow reader: the results queue fills and the workers block
            break
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        t.name.startswith("sigla-batch") for t in threading.enumerate()
    ):
        time.sleep(0.01)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("sigla-batch")]


def test_a_short_batch_starts_no_more_threads_than_it_has_items(make_llm, fake):
    import threading

    fake.latency = 0.3
    seen: list[int] = []
    llm = make_llm(limits=RateLimits(concurrent_requests=5))
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            seen.append(sum(t.name.startswith("sigla-batch") for t in threading.enumerate()))
            time.sleep(0.01)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        assert llm.map(["only"], concurrency=None) == ["Echo: only"]
        assert llm.map(["a", "b"], concurrency=8) == ["Echo: a", "Echo: b"]
    finally:
        done.set()
        counter.join()
    assert 0 < max(seen) <= 2
