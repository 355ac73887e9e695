"""Client-side rate limits: GitHub's tier table, the booking arithmetic, and the double agreeing."""

from __future__ import annotations

import asyncio
import logging
import threading

import hostile
import pytest
from conftest import TOKEN, run_chat, run_stream

from sigla._admission import Admission
from sigla._limits import (
    GITHUB_TIERS,
    Limiter,
    default_limits,
    estimate_tokens,
    github_tier,
    limiter_for,
)
from sigla.llm import ConfigurationError, GitHubLLM, InvalidRequestError, RateLimitError, RateLimits
from sigla.testing import FakeGitHubModels


@pytest.mark.parametrize(
    ("model", "tier"),
    [
        ("mistral-ai/Codestral-2501", "low"),
        ("openai/gpt-4o-mini", "low"),
        ("openai/gpt-4.1-mini", "low"),
        ("openai/gpt-4o", "high"),
        ("openai/gpt-4.1", "high"),
        ("meta/Llama-3.3-70B-Instruct", "high"),
        ("openai/gpt-5", "reasoning"),
        ("openai/o3-mini", "reasoning-mini"),
        ("openai/gpt-5-nano", "reasoning-mini"),
        ("deepseek/DeepSeek-R1", "reasoning"),
        ("xai/grok-3-mini", "grok-3-mini"),
        ("xai/grok-3", "grok-3"),
        ("openai/text-embedding-3-small", "embeddings"),
        ("gpt-4o", "high"),
        ("azureml/openai/gpt-4o", "high"),
    ],
)
def test_github_tiers_follow_the_published_table(model, tier):
    assert github_tier(model) == tier


def test_defaults_come_from_the_provider_and_endpoint():
    github = "https://models.github.ai/inference"
    assert default_limits("github", github, "openai/gpt-4o")[0] == RateLimits(10, 50, 2)
    assert default_limits("github", "http://127.0.0.1:8080/inference", "openai/gpt-4o")[0] == (
        RateLimits()
    )
    assert default_limits("azure", "https://r.services.ai.azure.com", "gpt-4o")[0] == RateLimits()
    llm = GitHubLLM(token=TOKEN)
    assert llm.settings.limits == GITHUB_TIERS["low"]
    assert llm.settings.sources["limits"] == "default: GitHub's 'low' tier"


def test_booking_spaces_requests_over_a_sliding_minute():
    now = [0.0]
    limiter = Limiter(RateLimits(requests_per_minute=2), lambda: now[0])
    # a minute and the margin (1 s) after the first of the two
    assert [limiter.book(max_wait=120)[1] for _ in range(3)] == [0, 0, 61]
    now[0] = 61  # the two requests at 0 left the window; the one booked at 61 is in it
    assert limiter.book(max_wait=120)[1] == 0
    assert limiter.book(max_wait=120)[1] == pytest.approx(61)


def test_a_spent_daily_budget_fails_at_once_without_booking():
    now = [0.0]
    limiter = Limiter(RateLimits(requests_per_day=1), lambda: now[0])
    assert limiter.book(max_wait=60)[1] == 0
    with pytest.raises(RateLimitError, match="for this day") as caught:
        limiter.book(max_wait=60)
    assert caught.value.retry_after == pytest.approx(86_400 + 60)  # a day and its margin
    assert caught.value.client_side
    now[0] = 86_460
    assert limiter.book(max_wait=60)[1] == 0


def test_a_used_up_minute_says_minute():
    limiter = Limiter(RateLimits(requests_per_minute=1, requests_per_day=100), lambda: 0.0)
    limiter.book(max_wait=120)
    with pytest.raises(RateLimitError, match="for this minute"):
        limiter.book(max_wait=30)


def test_a_cancelled_booking_is_given_back():
    limiter = Limiter(RateLimits(requests_per_minute=1), lambda: 0.0)
    slot, _ = limiter.book(max_wait=120)
    limiter.cancel(slot)
    assert limiter.book(max_wait=120)[1] == 0


def test_a_used_up_limit_is_a_client_side_429_that_names_its_window():
    limits = RateLimits(requests_per_minute=1, requests_per_day=100)
    limiter = Limiter(limits, lambda: 0.0)
    limiter.book(max_wait=120)
    with pytest.raises(RateLimitError) as caught:
        limiter.book(max_wait=30)
    error = caught.value
    assert (error.status_code, error.client_side) == (429, True)
    assert error.retry_after == 61
    assert error.limit_type == "sigla requests per minute"
    assert str(limits) in str(error)


def test_a_spent_day_names_the_day_window():
    limiter = Limiter(RateLimits(requests_per_day=1), lambda: 0.0)
    limiter.book(max_wait=60)
    with pytest.raises(RateLimitError) as caught:
        limiter.book(max_wait=60)
    assert caught.value.limit_type == "sigla requests per day"


def test_cancelling_a_slot_that_is_not_booked_changes_nothing():
    limiter = Limiter(RateLimits(requests_per_minute=2), lambda: 0.0)
    slot, _ = limiter.book(max_wait=120)
    limiter.cancel(slot)
    limiter.cancel(slot)
    limiter.cancel(30.0)
    assert [limiter.book(max_wait=120)[1] for _ in range(3)] == [0, 0, 61]


def test_no_free_concurrent_slot_is_a_client_side_429_without_retry_after():
    limiter = Limiter(RateLimits(concurrent_requests=1), lambda: 0.0)
    limiter.acquire(timeout=0)
    with pytest.raises(RateLimitError) as caught:
        limiter.acquire(timeout=0)
    error = caught.value
    assert (error.status_code, error.client_side, error.retry_after) == (429, True, None)
    assert error.limit_type == "sigla concurrent requests"
    limiter.release()
    limiter.acquire(timeout=0)


def test_no_free_concurrent_slot_on_an_event_loop_is_the_same_429():
    limiter = Limiter(RateLimits(concurrent_requests=1), lambda: 0.0)

    async def twice() -> None:
        await limiter.aacquire(timeout=0)
        await limiter.aacquire(timeout=0)

    with pytest.raises(RateLimitError) as caught:
        asyncio.run(twice())
    assert caught.value.limit_type == "sigla concurrent requests"
    assert caught.value.client_side
    limiter.release()
    asyncio.run(limiter.aacquire(timeout=0))


@pytest.mark.parametrize(
    ("limits", "text"),
    [
        (RateLimits(15, 150, 5), "15/min, 150/day, 5 concurrent"),
        (RateLimits(requests_per_minute=2), "2/min"),
        (RateLimits(requests_per_day=8), "8/day"),
        (RateLimits(concurrent_requests=1), "1 concurrent"),
        (RateLimits(), "none"),
    ],
)
def test_limits_read_as_a_short_summary(limits, text):
    assert str(limits) == text


def test_limits_are_validated():
    with pytest.raises(ValueError, match="positive"):
        RateLimits(requests_per_minute=0)


def test_clients_share_a_limiter_per_endpoint_model_and_credential():
    limits = RateLimits(requests_per_minute=5)

    def clock() -> float:
        return 0.0

    def get(endpoint="https://e", model="openai/gpt-4o", token=TOKEN):
        return limiter_for(endpoint, model, token, limits, clock)

    assert get() is get(model="OpenAI/GPT-4o")
    assert get(token=None) is get(token="") is not None
    held = [get(), get(token="other"), get(token=None)]  # a budget lives while it is used
    assert len({id(limiter) for limiter in held}) == 3
    assert get() is not get(endpoint="https://other")
    assert get() is not get(model="openai/gpt-4o-mini")
    unlimited = limiter_for("https://e", "m", TOKEN, RateLimits(), clock)
    assert unlimited.slots is None, "no limits: still a budget, for pauses and adaptation"


def sleeps_for(limiter: Limiter, mode: str) -> list[float]:
    """Enter one Admission of the limiter, sync or async; the waits it asked for."""
    sleeps: list[float] = []

    async def async_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    admission = Admission(
        limiter, max_wait=60, sleep=sleeps.append, async_sleep=async_sleep, label="openai/gpt-4o"
    )
    if mode == "sync":
        with admission:
            admission.enter()
    else:

        async def enter() -> None:
            async with admission:
                await admission.aenter()

        asyncio.run(enter())
    return sleeps


def test_an_admission_waits_even_a_fraction_of_a_second_and_says_so(mode, caplog):
    now = [0.0]
    limiter = Limiter(RateLimits(requests_per_minute=1), lambda: now[0])
    with caplog.at_level(logging.INFO, logger="sigla"):
        assert sleeps_for(limiter, mode) == []
        assert caplog.records == [], "no wait, no notice"
        now[0] = 60.5  # a minute and its margin of 1 s after the first
        assert sleeps_for(limiter, mode) == [0.5]
    [record] = caplog.records
    assert (record.sigla_notice, record.sigla_wait) == ("rate_limit", 0.5)
    message = record.getMessage()
    assert "0.5 s" in message and str(limiter.limits) in message and "openai/gpt-4o" in message


@pytest.mark.e2e
def test_matching_the_services_rpm_means_no_429_at_all(clock, make_llm, mode):
    with FakeGitHubModels(rpm=3, clock=clock) as limited:
        llm = make_llm(endpoint=limited.url, limits=RateLimits(requests_per_minute=3), clock=clock)
        answers = [run_chat(llm, mode, f"q{i}") for i in range(7)]
        pieces, error = run_stream(llm, mode, "last")
        statuses = [r.status for r in limited.requests]
    assert answers == [f"Echo: q{i}" for i in range(7)]
    assert error is None and "".join(pieces) == "Echo: last"
    assert statuses == [200] * 8
    assert clock.sleeps == [61, 61]


@pytest.mark.e2e
def test_clients_of_one_model_and_token_share_one_budget(fake, make_llm, clock):
    limits = RateLimits(requests_per_minute=1)
    first = make_llm(limits=limits, clock=clock)
    second = make_llm(limits=limits, clock=clock)
    first.chat("a")
    second.chat("b")
    assert clock.sleeps == [61]
    other_model = make_llm(limits=limits, clock=clock, model="openai/gpt-4o-mini")
    other_model.chat("c")
    assert clock.sleeps == [61]


@pytest.mark.e2e
def test_a_spent_client_budget_refuses_before_sending(fake, make_llm, clock, mode):
    llm = make_llm(limits=RateLimits(requests_per_day=1), clock=clock)
    run_chat(llm, mode, "a")
    with pytest.raises(RateLimitError, match="client-side limit") as caught:
        run_chat(llm, mode, "b")
    assert caught.value.retry_after > 60
    assert len(fake.requests) == 1


@pytest.mark.e2e
def test_concurrent_requests_are_capped_on_the_client(clock, make_llm):
    with FakeGitHubModels(concurrency=1, latency=0.05, clock=clock) as limited:
        llm = make_llm(endpoint=limited.url, limits=RateLimits(concurrent_requests=1))
        threads = [threading.Thread(target=llm.chat, args=(f"q{i}",)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        async def many() -> list[str]:
            async def one(i: int) -> str:
                return "".join([piece async for piece in llm.astream(f"s{i}")])

            return await asyncio.gather(*(llm.achat(f"a{i}") for i in range(3)), one(0), one(1))

        results = asyncio.run(many())
        statuses = [r.status for r in limited.requests]
    assert results[:3] == ["Echo: a0", "Echo: a1", "Echo: a2"]
    assert statuses == [200] * 8, "the client never went over the service's concurrency"


class Interrupted(BaseException):
    """Like KeyboardInterrupt: the waits now happen inside the SDK's call, which wraps
    ordinary exceptions; an interruption passes through."""


@pytest.mark.e2e
def test_a_wait_interrupted_before_sending_gives_its_booking_back(fake, make_llm, clock, mode):
    calls = []

    def sleep_then_interrupt(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 1:
            raise Interrupted

    async def async_sleep_then_interrupt(seconds: float) -> None:
        sleep_then_interrupt(seconds)

    llm = make_llm(
        limits=RateLimits(requests_per_minute=1),
        clock=clock,
        sleep=sleep_then_interrupt,
        async_sleep=async_sleep_then_interrupt,
    )
    run_chat(llm, mode, "a")
    with pytest.raises(Interrupted):
        run_chat(llm, mode, "b")
    run_chat(llm, mode, "c")
    assert calls == [61, 61], "the interrupted booking was given back, not kept"
    assert len(fake.requests) == 2


@pytest.mark.e2e
def test_an_open_stream_in_the_same_thread_cannot_deadlock_a_call(fake, make_llm):
    llm = make_llm(limits=RateLimits(concurrent_requests=1), max_retry_wait=0.2)
    fake.reply("a b", chunks=["a ", "b"])
    stream = llm.stream("hi")
    assert next(stream) == "a "
    with pytest.raises(RateLimitError, match="unfinished stream") as caught:
        llm.chat("again")
    assert caught.value.client_side
    stream.close()
    assert llm.chat("again") == "Echo: again"


@pytest.mark.e2e
def test_a_stream_the_server_has_ended_frees_its_slot_before_its_last_piece_is_taken(mode):
    """The slot is held around the exchange on the wire: once the server has ended the
    stream, a call made while its caller still holds the last piece goes out at once."""
    last = b"data: " + hostile.json.dumps(hostile.chunk("b", finish_reason="stop")).encode()
    with hostile.HostileServer() as server:
        server.script(hostile.sse([hostile.chunk("a "), last], done=False))  # no blank line
        llm = GitHubLLM(
            provider="openai",
            endpoint=f"{server.url}/v1",
            model="m",
            token=TOKEN,
            limits=RateLimits(concurrent_requests=1),
            max_retry_wait=0.2,
        )
        if mode == "sync":
            stream = llm.stream("hi")
            assert [next(stream), next(stream)] == ["a ", "b"]  # the last: read at the end
            assert llm.chat("again") == "Echo: again"
            stream.close()
        else:

            async def hold_the_last_piece() -> str:
                stream = llm.astream("hi")
                assert [await stream.__anext__(), await stream.__anext__()] == ["a ", "b"]
                try:
                    return await llm.achat("again")
                finally:
                    await stream.aclose()

            assert asyncio.run(hold_the_last_piece()) == "Echo: again"


@pytest.mark.e2e
def test_a_stream_left_open_at_the_end_of_asyncio_run_frees_its_slot_quietly(
    fake, make_llm, caplog
):
    llm = make_llm(limits=RateLimits(concurrent_requests=1), max_retry_wait=1)
    fake.reply("a b c", chunks=["a ", "b ", "c"])
    fake.chunk_delay = 0.01
    kept = []

    async def leave_it_open() -> None:
        stream = llm.astream("hi")
        assert await stream.__anext__() == "a "
        kept.append(stream)  # still referenced when the loop shuts down

    with caplog.at_level("ERROR", logger="asyncio"):
        asyncio.run(leave_it_open())
    assert "already running" not in caplog.text
    assert "error occurred" not in caplog.text
    assert llm.chat("next") == "Echo: next"


# -- one budget per endpoint, credential and model: its limits, pauses and learned cap


def test_a_second_client_with_other_limits_for_one_budget_is_refused():
    def clock() -> float:
        return 0.0

    first = limiter_for("https://e", "m", "who", RateLimits(requests_per_minute=5), clock)
    with pytest.raises(ConfigurationError) as caught:
        limiter_for("https://e", "m", "who", RateLimits(requests_per_minute=9), clock)
    assert "5/min" in str(caught.value) and "9/min" in str(caught.value)
    joined = limiter_for("https://e", "m", "who", RateLimits(), clock, explicit=False)
    assert joined is first, "a client on the provider's defaults joins the configured budget"
    assert first.limits == RateLimits(requests_per_minute=5)


def test_the_clock_is_not_part_of_the_budget():
    limits = RateLimits(requests_per_minute=5)

    def one() -> float:
        return 0.0

    def other() -> float:
        return 0.0

    first = limiter_for("https://e", "m", "clocks", limits, one)
    with pytest.raises(ConfigurationError, match="clock"):
        limiter_for("https://e", "m", "clocks", limits, other)
    assert limiter_for("https://e", "m", "clocks", limits, one) is first


def test_defaults_then_explicit_limits_conflict_and_name_the_defaults():
    def clock() -> float:
        return 0.0

    first = limiter_for("https://e", "m", "dflt", RateLimits(), clock, explicit=False)
    with pytest.raises(ConfigurationError, match="provider's defaults"):
        limiter_for("https://e", "m", "dflt", RateLimits(concurrent_requests=2), clock)
    assert limiter_for("https://e", "m", "dflt", RateLimits(), clock) is first


def test_tokens_per_minute_hold_a_request_until_its_tokens_fit():
    now = [0.0]
    limiter = Limiter(RateLimits(tokens_per_minute=1000), lambda: now[0])
    assert limiter.book(max_wait=120, tokens=600)[1] == 0
    assert limiter.book(max_wait=120, tokens=400)[1] == 0
    slot, wait = limiter.book(max_wait=120, tokens=1)
    assert wait == 61, "the minute (and its margin) after the first booking"
    assert limiter.book(max_wait=120, tokens=500)[1] == 61
    limiter.cancel(slot, 1)
    now[0] = 61
    assert limiter.book(max_wait=120, tokens=100)[1] == 0


def test_a_request_larger_than_the_token_budget_goes_alone_rather_than_never():
    limiter = Limiter(RateLimits(tokens_per_minute=100), lambda: 0.0)
    assert limiter.book(max_wait=120, tokens=5000)[1] == 0
    assert limiter.book(max_wait=120, tokens=10)[1] == 61


def test_settling_with_the_reported_usage_frees_the_overestimate():
    limiter = Limiter(RateLimits(tokens_per_minute=1000), lambda: 0.0)
    slot, _ = limiter.book(max_wait=120, tokens=900)
    assert limiter.book(max_wait=120, tokens=200)[1] == 61
    limiter.settle(slot, 900, 100)
    assert limiter.book(max_wait=120, tokens=600)[1] == 0


def test_a_used_up_token_budget_says_tokens():
    limiter = Limiter(RateLimits(tokens_per_minute=100), lambda: 0.0)
    limiter.book(max_wait=120, tokens=100)
    with pytest.raises(RateLimitError) as caught:
        limiter.book(max_wait=10, tokens=50)
    assert caught.value.limit_type == "sigla tokens per minute"


def test_token_estimates_count_the_prompt_conservatively_and_room_for_the_answer():
    call = {"messages": [{"role": "user", "content": "x" * 30}], "max_tokens": 50}
    assert estimate_tokens(call) == 10 + 50
    assert estimate_tokens({"messages": [{"role": "user", "content": "abcd"}]}) == 2 + 1024


def test_a_pause_holds_every_request_of_the_budget(mode):
    now = [0.0]
    limiter = Limiter(RateLimits(), lambda: now[0])
    limiter.pause(30, "UserByModelByMinute")
    now[0] = 10
    assert sleeps_for(limiter, mode) == [20]
    limiter.pause(5000, "UserByModelByDay")
    with pytest.raises(RateLimitError) as caught:
        sleeps_for(limiter, mode)
    error = caught.value
    assert error.client_side and error.limit_type == "UserByModelByDay"
    assert error.retry_after == pytest.approx(5000)


def test_a_shorter_pause_does_not_cut_a_longer_one():
    now = [0.0]
    limiter = Limiter(RateLimits(), lambda: now[0])
    limiter.pause(30)
    limiter.pause(5)
    assert limiter.paused_for(60) == 30


def refusal(message: str, retry_after: float | None, limit_type: str | None) -> RateLimitError:
    return RateLimitError(message, status_code=429, retry_after=retry_after, limit_type=limit_type)


def test_a_concurrency_refusal_halves_the_learned_concurrency_once_per_round():
    limiter = Limiter(RateLimits(), lambda: 0.0)
    learned = limiter.adaptive
    start = learned.value
    gates = [Admission(limiter, max_wait=1, sleep=print, async_sleep=None, label="m") for _ in "ab"]
    for gate in gates:  # two requests of the same round refused at once: one cut
        gate.refused(refusal("busy", 0, None))
    assert learned.value == start / 2
    later = Admission(limiter, max_wait=1, sleep=print, async_sleep=None, label="m")
    later.refused(refusal("busy", None, "UserConcurrentRequests"))
    assert learned.value == start / 4
    for _ in range(4):
        later.succeeded(None)
    assert start / 4 < learned.value < start, "grows back slowly: about one per round"
    for _ in range(2500):
        later.succeeded(None)
    assert learned.value == learned.ceiling
    assert learned.slots.capacity == int(learned.value)


def test_a_refusal_that_states_its_cap_sets_it():
    limiter = Limiter(RateLimits(), lambda: 0.0)
    gate = Admission(limiter, max_wait=1, sleep=print, async_sleep=None, label="m")
    gate.refused(refusal("Rate limit of 2 per 0s exceeded for UserConcurrentRequests.", 0, None))
    assert limiter.adaptive.value == 2
    for _ in range(50):
        gate.succeeded(None)
    assert limiter.adaptive.value == 2, "never above the cap the service stated"


def test_a_rate_limit_wait_pauses_the_budget_and_sigla_own_refusals_teach_nothing():
    now = [0.0]
    limiter = Limiter(RateLimits(), lambda: now[0])
    gate = Admission(limiter, max_wait=1, sleep=print, async_sleep=None, label="m")
    start = limiter.adaptive.value
    gate.refused(
        RateLimitError("ours", status_code=429, retry_after=9, client_side=True, limit_type="x")
    )
    gate.refused(ConfigurationError("not a 429"))
    assert limiter.paused_for(60) == 0 and limiter.adaptive.value == start
    gate.refused(refusal("minute", 9, "UserByModelByMinute"))
    assert limiter.paused_for(60) == 9
    assert limiter.adaptive.value == start, "a per-minute 429 is not a concurrency one"


@pytest.mark.e2e
def test_a_429_on_one_client_pauses_another_of_the_same_budget(fake, make_llm, clock, mode):
    first = make_llm(max_retries=0, clock=clock)
    second = make_llm(clock=clock)
    fake.fail("rate_limit_minute", retry_after=30)
    with pytest.raises(RateLimitError):
        run_chat(first, mode, "refused")
    assert run_chat(second, mode, "waits") == "Echo: waits"
    assert clock.sleeps == [30], "the second client waited out the pause before sending"
    assert [r.status for r in fake.requests] == [429, 200]


@pytest.mark.e2e
def test_usage_totals_count_requests_retries_and_tokens(fake, make_llm, mode):
    llm = make_llm()
    fake.fail("server_error")
    run_chat(llm, mode, "one")
    _, error = run_stream(llm, mode, "two")
    assert error is None
    usage = llm.usage
    assert (usage.requests, usage.retries, usage.cached) == (3, 1, 0)
    statuses = [r.status for r in fake.requests]
    assert statuses == [500, 200, 200]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0


@pytest.mark.e2e
def test_tokens_per_minute_keep_a_burst_under_the_budget(fake, make_llm, clock):
    llm = make_llm(limits=RateLimits(tokens_per_minute=200), clock=clock)
    for _ in range(3):
        llm.chat("x" * 150, max_tokens=40)  # 50 + 40 estimated, settled to what was used
    assert clock.sleeps == [61]


# -- slots shared by threads and event loops


def test_slots_are_handed_over_in_arrival_order_across_threads():
    from sigla._slots import Slots

    slots = Slots(1)
    assert slots.acquire(0)
    order = []

    def take(name: str) -> None:
        assert slots.acquire(5)
        order.append(name)
        slots.release()

    first = threading.Thread(target=take, args=("first",))
    first.start()
    while not slots._waiters:
        pass
    second = threading.Thread(target=take, args=("second",))
    second.start()
    while len(slots._waiters) < 2:
        pass
    slots.release()
    first.join(5)
    second.join(5)
    assert order == ["first", "second"] and slots.used == 0


def test_a_thread_frees_a_slot_a_coroutine_waits_for():
    from sigla._slots import Slots

    slots = Slots(1)
    assert slots.acquire(0)

    async def wait_for_it() -> bool:
        threading.Timer(0.05, slots.release).start()
        return await slots.aacquire(5)

    assert asyncio.run(wait_for_it())
    assert slots.used == 1


def test_a_cancelled_or_timed_out_waiter_leaves_no_slot_taken():
    from sigla._slots import Slots

    slots = Slots(1)
    assert slots.acquire(0)
    assert not slots.acquire(0.01)

    async def cancel_one() -> None:
        waiter = asyncio.ensure_future(slots.aacquire(5))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(cancel_one())
    assert not asyncio.run(slots.aacquire(0.01))
    slots.release()
    assert slots.used == 0 and not slots._waiters
    assert slots.acquire(0)


def test_raising_the_capacity_wakes_waiters():
    from sigla._slots import Slots

    slots = Slots(1)
    assert slots.acquire(0)
    got = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire(5)))
    waiter.start()
    while not slots._waiters:
        pass
    slots.capacity = 2
    waiter.join(5)
    assert got == [True] and slots.used == 2


def test_a_request_books_its_minute_when_it_gets_its_slot_not_when_it_starts_waiting():
    """The service counts a request when it arrives. A request that waited 30 s for a
    concurrent slot must be booked at 30 s, or the minute after it opens too early."""
    now = [0.0]
    limiter = Limiter(RateLimits(requests_per_minute=2, concurrent_requests=1), lambda: now[0])
    sleeps: list[float] = []

    def gate() -> Admission:
        return Admission(limiter, max_wait=120, sleep=sleeps.append, async_sleep=None, label="m")

    first, second = gate(), gate()
    first.enter()  # sent at 0
    waiting = threading.Thread(target=second.enter)
    waiting.start()
    while not limiter.slots._waiters:
        pass
    now[0] = 30.0
    first.leave()  # the second gets the slot now, at 30, and is sent
    waiting.join(5)
    second.leave()
    now[0] = 61.0  # the first left the window (0 + 61); the second (30) has not
    third = gate()
    third.enter()
    third.leave()
    fourth = gate()
    fourth.enter()
    assert sleeps == [30.0], "the fourth waits for the second's minute: 30 + 61 - 61"


def test_a_patient_booking_waits_any_number_of_minutes_but_not_days():
    limiter = Limiter(RateLimits(requests_per_minute=1, requests_per_day=3), lambda: 0.0)
    waits = [limiter.book(max_wait=60, patient=True)[1] for _ in range(3)]
    assert waits == [0, 61, 122], "the third is two minutes out: a batch waits for it"
    with pytest.raises(RateLimitError, match="for this day"):
        limiter.book(max_wait=60, patient=True)


def test_the_learned_concurrency_never_exceeds_a_minutes_requests():
    assert Limiter(RateLimits(requests_per_minute=3), lambda: 0.0).adaptive.ceiling == 3
    assert Limiter(RateLimits(requests_per_minute=1), lambda: 0.0).adaptive.value == 1
    both = Limiter(RateLimits(requests_per_minute=9, concurrent_requests=2), lambda: 0.0)
    assert both.adaptive.ceiling == 2


def test_a_request_woken_late_is_counted_when_it_was_sent():
    now = [0.0]
    limiter = Limiter(RateLimits(requests_per_minute=1, tokens_per_minute=100), lambda: now[0])
    slot, _ = limiter.book(max_wait=120, tokens=10)
    now[0] = 5.0  # sent 5 s after its booked time
    assert limiter.sent(slot, 10) == 5.0
    assert limiter.book(max_wait=120, tokens=95)[1] == 61, "a minute after the real send"
    early = Limiter(RateLimits(requests_per_minute=1), lambda: 0.0)
    booked, _ = early.book(max_wait=120)
    assert early.sent(booked) == booked == 0.0


def test_a_request_waiting_for_a_slot_honours_the_pause_the_slots_last_holder_met():
    """The slot of a request refused with a wait goes to a waiter only once the budget is
    paused, and the waiter checks the pause again after taking the slot."""
    now = [0.0]
    limiter = Limiter(RateLimits(concurrent_requests=1), lambda: now[0])
    sleeps: list[float] = []

    def gate() -> Admission:
        return Admission(limiter, max_wait=60, sleep=sleeps.append, async_sleep=None, label="m")

    first, second = gate(), gate()
    first.enter()
    waiting = threading.Thread(target=second.enter)
    waiting.start()
    while not limiter.slots._waiters:
        pass
    first.__exit__(RateLimitError, refusal("wait", 30, "UserByModelByMinute"), None)
    waiting.join(5)
    second.leave()
    assert sleeps == [30], "the waiter slept out the pause before sending"


def test_a_stated_cap_never_raises_the_learned_ceiling():
    limiter = Limiter(RateLimits(), lambda: 0.0)
    gate = Admission(limiter, max_wait=1, sleep=print, async_sleep=None, label="m")
    gate.refused(refusal("Rate limit of 5000 per 0s exceeded.", 0, None))
    assert limiter.adaptive.ceiling == 32 and limiter.adaptive.value <= 32


# -- the edges of the arithmetic, one behaviour each


@pytest.mark.parametrize("value", [True, "5", 2.5])
def test_limits_are_ints_not_bools_strings_or_floats(value):
    with pytest.raises(InvalidRequestError):
        RateLimits(requests_per_minute=value)


def test_limits_go_up_to_ten_to_the_twelfth_and_name_the_value_refused():
    assert RateLimits(tokens_per_minute=10**12).tokens_per_minute == 10**12
    with pytest.raises(InvalidRequestError) as caught:
        RateLimits(requests_per_day=-5)
    assert "-5" in str(caught.value)
    huge = 10**70  # its repr is cut at 60 characters
    with pytest.raises(InvalidRequestError) as caught:
        RateLimits(requests_per_day=huge)
    assert str(huge)[:60] in str(caught.value) and str(huge)[:61] not in str(caught.value)


def test_a_token_limit_reads_in_the_summary():
    assert str(RateLimits(tokens_per_minute=500)) == "500 tokens/min"


def test_token_estimates_add_up_every_message_of_any_shape():
    parts = [{"type": "text", "text": "abc"}]
    call = {
        "messages": [
            {"role": "system", "content": "x" * 30},
            {"role": "user", "content": "y" * 30},
            {"role": "user", "content": parts},  # multimodal: counted as its text form
            {"role": "assistant", "content": None},
            "not a message",
        ],
        "max_tokens": 7,
    }
    assert estimate_tokens(call) == -(-(60 + len(str(parts))) // 3) + 7


def test_a_booking_without_tokens_does_not_wait_for_the_token_budget():
    limiter = Limiter(RateLimits(tokens_per_minute=100), lambda: 0.0)
    assert limiter.book(max_wait=120, tokens=5000)[1] == 0  # alone, over the budget
    assert limiter.book(max_wait=120)[1] == 0
    now = [0.0]
    limiter = Limiter(RateLimits(tokens_per_minute=100), lambda: now[0])
    limiter.book(max_wait=120, tokens=50)
    now[0] = 10.0
    limiter.book(max_wait=120)  # takes no place in the token budget, even a free one
    now[0] = 20.0
    assert limiter.book(max_wait=120, tokens=5000)[1] == 61 - 20  # once the 50 have left


def test_a_request_waits_until_enough_earlier_tokens_have_left_the_minute():
    now = [0.0]
    limiter = Limiter(RateLimits(tokens_per_minute=100), lambda: now[0])
    limiter.book(max_wait=120, tokens=30)
    now[0] = 10.0
    limiter.book(max_wait=120, tokens=70)
    now[0] = 20.0
    # 40 more fit once both earlier bookings have left: the 30 alone is not enough
    assert limiter.book(max_wait=120, tokens=40)[1] == 10 + 61 - 20


def test_a_cancelled_token_booking_is_given_back_in_full():
    limiter = Limiter(RateLimits(tokens_per_minute=100), lambda: 0.0)
    slot, _ = limiter.book(max_wait=120, tokens=100)
    limiter.cancel(slot, 100)
    assert limiter.book(max_wait=120, tokens=100)[1] == 0


def test_settling_a_booking_already_given_back_changes_nothing():
    limiter = Limiter(RateLimits(tokens_per_minute=100), lambda: 0.0)
    slot, _ = limiter.book(max_wait=120, tokens=60)
    limiter.cancel(slot, 60)
    limiter.settle(slot, 60, 50)
    limiter.settle(slot, 60, 50)
    assert limiter.book(max_wait=120, tokens=100)[1] == 0


def test_a_request_sent_late_moves_its_requests_and_its_tokens_to_when_it_went():
    now = [0.0]
    requests = Limiter(RateLimits(requests_per_minute=1), lambda: now[0])
    slot, _ = requests.book(max_wait=120)
    now[0] = 5.0
    assert requests.sent(slot) == 5.0
    assert requests.book(max_wait=120)[1] == 61
    now[0] = 0.0
    tokens = Limiter(RateLimits(tokens_per_minute=100), lambda: now[0])
    slot, _ = tokens.book(max_wait=120, tokens=10)
    now[0] = 5.0
    assert tokens.sent(slot, 10) == 5.0
    assert tokens.book(max_wait=120, tokens=95)[1] == 61


def test_a_booking_given_back_then_reported_sent_books_nothing():
    now = [0.0]
    limiter = Limiter(RateLimits(requests_per_minute=1, tokens_per_minute=100), lambda: now[0])
    slot, _ = limiter.book(max_wait=120, tokens=100)
    limiter.cancel(slot, 100)
    now[0] = 5.0
    assert limiter.sent(slot, 100) == 5.0
    assert limiter.book(max_wait=120, tokens=100)[1] == 0


def test_the_days_margin_does_not_count_against_the_callers_patience():
    now = [0.0]
    limiter = Limiter(RateLimits(requests_per_day=1), lambda: now[0])
    limiter.book(max_wait=60)
    now[0] = 86_400 + 60 - 100  # the day (and its margin of 60 s) ends in 100 s
    assert limiter.book(max_wait=50)[1] == 100  # 100 - 60 s of margin is within 50 s


def test_a_short_pause_is_waited_out_and_one_as_long_as_the_patience_too():
    now = [0.0]
    limiter = Limiter(RateLimits(), lambda: now[0])
    limiter.pause(0.5)
    assert limiter.paused_for(60) == 0.5
    limiter.pause(60)
    assert limiter.paused_for(60) == 60


def test_a_pause_over_the_patience_is_a_client_side_429_naming_what_to_raise():
    limiter = Limiter(RateLimits(), lambda: 0.0)
    limiter.pause(90, "UserByModelByMinute")
    with pytest.raises(RateLimitError) as caught:
        limiter.paused_for(60)
    error = caught.value
    assert (error.status_code, error.client_side, error.retry_after) == (429, True, 90)
    assert "max_retry_wait" in str(error)


def test_a_pause_that_ends_no_later_keeps_the_first_ones_limit_type():
    limiter = Limiter(RateLimits(), lambda: 0.0)
    limiter.pause(90, "UserByModelByMinute")
    limiter.pause(90, "UserByModelByDay")
    with pytest.raises(RateLimitError) as caught:
        limiter.paused_for(60)
    assert caught.value.limit_type == "UserByModelByMinute"


def test_a_conflict_names_the_provider_defaults_only_when_the_budget_has_only_those():
    def clock() -> float:
        return 0.0

    def conflict(token: str) -> str:
        with pytest.raises(ConfigurationError) as caught:
            limiter_for("https://e", "m", token, RateLimits(concurrent_requests=3), clock)
        return str(caught.value)

    configured = limiter_for("https://e", "m", "set", RateLimits(concurrent_requests=2), clock)
    assert "provider's defaults" not in conflict("set")
    defaults = [
        limiter_for("https://e", "m", "dflt2", RateLimits(), clock, explicit=False)
        for _ in range(2)  # a second client on the defaults leaves them the defaults
    ]
    assert "provider's defaults" in conflict("dflt2")
    on_defaults = limiter_for("https://e", "m", "dflt3", RateLimits(), clock, explicit=False)
    joined = limiter_for("https://e", "m", "dflt3", RateLimits(), clock)  # now stated
    assert joined is on_defaults
    assert "provider's defaults" not in conflict("dflt3")
    del configured, defaults


def test_when_the_minute_and_the_day_end_together_the_minute_decides():
    """Its margin (1 s, not the day's 60 s) and the caller's patience apply."""
    now = [0.0]
    limiter = Limiter(RateLimits(requests_per_minute=1, requests_per_day=2), lambda: now[0])
    limiter.book(max_wait=60)
    now[0] = 86_399.0
    limiter.book(max_wait=60)  # both windows now end at 86_460
    with pytest.raises(RateLimitError) as caught:
        limiter.book(max_wait=30)
    assert caught.value.limit_type == "sigla requests per minute"
    assert limiter.book(max_wait=30, patient=True)[1] == 61


def test_queue_timeout_bounds_the_wait_for_a_slot_apart_from_max_retry_wait():
    """A server waits long for an upstream slot (queue_timeout) but honours only short
    429 waits (max_retry_wait): the two bounds are separate."""
    with FakeGitHubModels(latency=0.4) as fake:
        common = {
            "endpoint": fake.url,
            "token": TOKEN,
            "limits": RateLimits(concurrent_requests=1),
            "max_retry_wait": 0.05,
        }
        patient = GitHubLLM(**common, queue_timeout=5)
        results: list[object] = []

        def call() -> None:
            try:
                results.append(patient.chat("hi"))
            except RateLimitError as error:
                results.append(error)

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == ["Echo: hi", "Echo: hi"]  # the second waited ~0.4 s > max_retry_wait

        impatient = GitHubLLM(**common)  # no queue_timeout: max_retry_wait bounds the wait
        threads = [
            threading.Thread(target=lambda: results.append(_chat_or_error(impatient)))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        refused = [r for r in results[2:] if isinstance(r, RateLimitError)]
        assert len(refused) == 1 and refused[0].client_side


def _chat_or_error(llm: GitHubLLM) -> object:
    try:
        return llm.chat("hi")
    except RateLimitError as error:
        return error


@pytest.mark.parametrize("value", [0, -1, "5", True, float("nan")])
def test_queue_timeout_must_be_positive_seconds(value):
    with pytest.raises(ConfigurationError, match="queue_timeout"):
        GitHubLLM(token=TOKEN, queue_timeout=value)


def test_usage_counts_the_services_429s_retried_or_not():
    with FakeGitHubModels() as fake:
        llm = GitHubLLM(endpoint=fake.url, token=TOKEN, limits=RateLimits(), sleep=lambda s: None)
        fake.fail("rate_limit_minute", retry_after=1)
        fake.fail("rate_limit_concurrency")
        assert llm.chat("hi") == "Echo: hi"
        assert (llm.usage.rate_limited, llm.usage.retries, llm.usage.requests) == (2, 2, 3)
