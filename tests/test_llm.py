"""GitHubLLM end to end against the GitHub Models double, sync and async through one case each."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import pytest
from conftest import TOKEN, run_chat, run_complete, run_stream

from sigla.llm import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    Completion,
    ContentFilteredError,
    GitHubModelsRetiredError,
    InputTooLargeError,
    InvalidRequestError,
    LLMError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamError,
)

pytestmark = pytest.mark.e2e


# ---------------------------------------------------------------- the happy paths


def test_chat_sends_the_seed_defaults_and_returns_the_text(fake, llm, mode):
    fake.reply("Paris.")
    assert run_chat(llm, mode, "What is the capital of France?") == "Paris."
    request = fake.last_request
    assert request.path == "/inference/v1/chat/completions"
    assert request.body["model"] == "mistral-ai/Codestral-2501"
    assert request.body["temperature"] == 0.7
    assert request.body["messages"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert request.headers["authorization"] == "Bearer ***"
    assert fake.saw_token(TOKEN)
    assert request.headers["user-agent"].startswith("sigla/")


def test_chat_with_system_prompt_and_model_and_temp(fake, make_llm, mode):
    llm = make_llm(model="openai/gpt-4o-mini", temp=0.2)
    run_chat(llm, mode, "hi", system="You are terse.")
    body = fake.last_request.body
    assert body["model"] == "openai/gpt-4o-mini"
    assert body["temperature"] == 0.2
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}


def test_temperature_keyword_is_accepted_like_temp(make_llm):
    assert make_llm(temperature=0.3).temperature == 0.3
    with pytest.raises(InvalidRequestError):
        make_llm(temp=0.1, temperature=0.3)


def test_per_call_overrides_reach_the_wire_under_the_services_names(fake, llm, mode):
    run_chat(llm, mode, "hi", temperature=0.1, max_tokens=50, top_p=0.9, stop=["END"], seed=42)
    body = fake.last_request.body
    assert body["temperature"] == 0.1
    assert body["max_tokens"] == 50
    assert body["top_p"] == 0.9
    assert body["stop"] == ["END"]
    assert body["seed"] == 42
    assert "random_seed" not in body


def test_unset_options_are_not_sent_as_null(fake, llm, mode):
    run_chat(llm, mode, "hi")
    body = fake.last_request.body
    for key in ("max_tokens", "top_p", "stop", "seed", "random_seed", "tools"):
        assert key not in body or body[key] is not None, key
    assert all("prefix" not in m for m in body["messages"])


def test_multi_turn_messages_are_sent_as_given(fake, llm, mode):
    messages = [
        {"role": "system", "content": "You count."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three?"},
    ]
    assert run_chat(llm, mode, messages=messages) == "Echo: three?"
    assert fake.last_request.body["messages"] == messages


def test_complete_returns_a_typed_result_with_usage(fake, llm, mode):
    fake.reply("Hello!", usage={"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13})
    result = run_complete(llm, mode, "hi")
    assert isinstance(result, Completion)
    assert result.text == "Hello!"
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (8, 5)
    assert result.usage.total_tokens == 13
    assert result.model and result.id


def test_stream_yields_the_pieces_of_githubs_stream(fake, llm, mode):
    fake.reply("Roses are red, SIGLA is neat", chunks=["Roses ", "are red, ", "SIGLA is neat"])
    pieces, error = run_stream(llm, mode, "Write a limerick about SIGLA")
    assert error is None
    assert pieces == ["Roses ", "are red, ", "SIGLA is neat"]
    assert fake.last_request.body["stream"] is True


@pytest.mark.parametrize("style", ["azure", "openai"])
def test_stream_accepts_azure_and_openai_shaped_streams(make_llm, clock, style, mode):
    from sigla.testing import FakeGitHubModels

    with FakeGitHubModels(stream_style=style, clock=clock) as other:
        llm = make_llm(endpoint=other.url)
        pieces, error = run_stream(llm, mode, "hello there")
    assert error is None
    assert "".join(pieces) == "Echo: hello there"


def test_stream_yields_each_piece_as_it_arrives(fake, llm, mode):
    fake.reply("a b c d", chunks=["a ", "b ", "c ", "d"])
    fake.chunk_delay = 0.1  # wide margin: the check must hold on a busy machine
    if mode == "sync":
        stream = llm.stream("hi")
        assert next(stream) == "a "
        # When the first piece reached us, the double had not sent the rest yet.
        assert len(fake.last_request.chunk_times) < 4
        assert list(stream) == ["b ", "c ", "d"]
        return

    async def consume() -> None:
        stream = llm.astream("hi")
        assert await stream.__anext__() == "a "
        assert len(fake.last_request.chunk_times) < 4
        assert [piece async for piece in stream] == ["b ", "c ", "d"]

    asyncio.run(consume())


def _wait_until_idle(fake, seconds: float = 5) -> None:
    """Wait (up to ``seconds``) for the double to have no request in flight."""
    deadline = time.monotonic() + seconds
    while fake.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)


def test_stopping_a_stream_early_closes_it(fake, llm):
    fake.reply("a b c", chunks=["a ", "b ", "c"])
    fake.chunk_delay = 0.02
    stream = llm.stream("hi")
    assert next(stream) == "a "
    stream.close()
    _wait_until_idle(fake, seconds=2)
    assert fake.in_flight == 0
    assert llm.chat("again") == "Echo: again"


# ---------------------------------------------------------------- streams that break


def test_stream_cut_mid_way_raises_with_the_partial_text(fake, llm, mode):
    fake.reply("one two three four", chunks=["one ", "two ", "three ", "four"])
    fake.fail("stream_cut", after=2)
    pieces, error = run_stream(llm, mode, "count")
    assert pieces == ["one ", "two "]
    assert isinstance(error, StreamError)
    assert error.text == "one two "
    assert len(fake.requests) == 1, "a stream that already yielded must not be retried"


def test_stream_cut_before_the_first_piece_is_retried(fake, llm, clock, mode):
    fake.fail("stream_cut", after=0)
    pieces, error = run_stream(llm, mode, "count")
    assert error is None
    assert "".join(pieces) == "Echo: count"
    assert len(fake.requests) == 2
    assert len(clock.sleeps) == 1


def test_stream_without_finish_reason_is_an_error_not_an_answer(fake, llm, mode):
    fake.fail("stream_no_finish", times=None)
    pieces, error = run_stream(llm, mode, "hello")
    assert isinstance(error, StreamError)
    assert "finish_reason" in str(error)
    assert error.text == "".join(pieces)


def test_stream_error_event_is_a_stream_error(fake, llm, mode):
    fake.fail("stream_error_event", times=None)
    _, error = run_stream(llm, mode, "hello")
    assert isinstance(error, StreamError)


# ---------------------------------------------------------------- content filter


def test_filtered_answer_raises_in_chat_and_stream_but_not_in_complete(fake, llm, mode):
    fake.fail("content_filter")
    with pytest.raises(ContentFilteredError):
        run_chat(llm, mode, "something")
    fake.fail("content_filter")
    assert run_complete(llm, mode, "something").finish_reason == "content_filter"
    fake.fail("content_filter")
    _, error = run_stream(llm, mode, "something")
    assert isinstance(error, ContentFilteredError)


def test_filtered_prompt_raises_content_filtered(fake, llm, mode):
    fake.fail("prompt_filter")
    with pytest.raises(ContentFilteredError, match="content"):
        run_chat(llm, mode, "something")
    assert len(fake.requests) == 1


# ---------------------------------------------------------------- status errors


@pytest.mark.parametrize("fault", ["unauthorized", "bad_credentials", "integration"])
def test_401_is_an_authentication_error_naming_models_read(fake, llm, fault, mode):
    fake.fail(fault)
    with pytest.raises(AuthenticationError) as caught:
        run_chat(llm, mode, "hi")
    assert caught.value.status_code == 401
    assert "models:read" in str(caught.value)
    assert len(fake.requests) == 1, "authentication errors are not retried"


def test_401_from_the_double_when_the_token_is_not_accepted(clock, make_llm, mode):
    from sigla.testing import FakeGitHubModels

    with (
        FakeGitHubModels(tokens={"the-right-one"}, clock=clock) as strict,
        pytest.raises(AuthenticationError, match="Bad credentials"),
    ):
        run_chat(make_llm(endpoint=strict.url), mode, "hi")


def test_403_no_access_keeps_the_service_text(fake, make_llm, mode):
    fake.fail("no_access")
    with pytest.raises(PermissionDeniedError) as caught:
        run_chat(make_llm(model="openai/gpt-5"), mode, "hi")
    assert "No access to model: openai/gpt-5" in str(caught.value)
    assert caught.value.code == "no_access"


def test_unknown_model_names_the_model_and_sigla_models(make_llm, mode):
    llm = make_llm(model="deepseek/deepseek-v3")
    with pytest.raises(ModelNotFoundError) as caught:
        run_chat(llm, mode, "hi")
    assert caught.value.model == "deepseek/deepseek-v3"
    assert "Unknown model: deepseek/deepseek-v3" in str(caught.value)
    assert "sigla models" in str(caught.value)


def test_bare_model_name_gets_the_expected_format_answer(make_llm, mode):
    with pytest.raises(ModelNotFoundError) as caught:
        run_chat(make_llm(model="Codestral-2501"), mode, "hi")
    assert "expected format" in str(caught.value)
    assert caught.value.status_code == 400


def test_input_over_the_tier_limit_is_input_too_large(llm, mode):
    with pytest.raises(InputTooLargeError) as caught:
        run_chat(llm, mode, "word " * 10_000)
    assert caught.value.limit == 8000
    assert "8000" in str(caught.value)
    assert "token limit" in str(caught.value)


# ---------------------------------------------------------------- retries


def test_rate_limit_per_minute_is_retried_after_the_asked_wait(fake, llm, clock, mode, caplog):
    fake.fail("rate_limit_minute", retry_after=9)
    with caplog.at_level(logging.INFO, logger="sigla"):
        assert run_chat(llm, mode, "hi") == "Echo: hi"
    assert len(fake.requests) == 2
    assert 9 <= clock.sleeps[0] < 10
    assert any("retry 1 of 3" in r.getMessage() for r in caplog.records if r.name == "sigla")


def test_daily_quota_fails_at_once_with_retry_after(fake, llm, clock, mode):
    fake.fail("rate_limit_day")
    with pytest.raises(RateLimitError) as caught:
        run_chat(llm, mode, "hi")
    assert caught.value.retry_after == 5631
    assert caught.value.limit_type == "UserByModelByDay"
    assert clock.sleeps == []
    assert len(fake.requests) == 1


def test_max_retry_wait_decides_what_is_too_long(fake, make_llm, clock, mode):
    fake.fail("rate_limit_minute", retry_after=30)
    with pytest.raises(RateLimitError):
        run_chat(make_llm(max_retry_wait=10), mode, "hi")
    assert clock.sleeps == []


def test_concurrency_cap_retry_after_zero_backs_off_instead_of_spinning(fake, llm, clock, mode):
    fake.fail("rate_limit_concurrency", times=2)
    assert run_chat(llm, mode, "hi") == "Echo: hi"
    assert len(clock.sleeps) == 2
    assert all(s > 0.2 for s in clock.sleeps)
    assert clock.sleeps[1] > clock.sleeps[0] * 0.9


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_then_succeed(fake, llm, status, mode):
    fake.fail("server_error", status=status, times=2)
    assert run_chat(llm, mode, "hi") == "Echo: hi"
    assert len(fake.requests) == 3


def test_persistent_server_error_raises_after_max_retries(fake, make_llm, clock, mode):
    fake.fail("server_error", status=503, times=None)
    with pytest.raises(ServerError) as caught:
        run_chat(make_llm(max_retries=2), mode, "hi")
    assert caught.value.status_code == 503
    assert len(fake.requests) == 3
    assert len(clock.sleeps) == 2


def test_max_retries_zero_means_one_try(fake, make_llm, mode):
    fake.fail("server_error", times=None)
    with pytest.raises(ServerError):
        run_chat(make_llm(max_retries=0), mode, "hi")
    assert len(fake.requests) == 1


def test_limits_enforced_by_the_double_are_waited_out(clock, make_llm, mode):
    from sigla.testing import FakeGitHubModels

    with FakeGitHubModels(rpm=2, clock=clock) as limited:
        llm = make_llm(endpoint=limited.url, clock=clock)  # its pause passes on that clock
        answers = [run_chat(llm, mode, f"q{i}") for i in range(3)]
    assert answers == ["Echo: q0", "Echo: q1", "Echo: q2"]
    assert len(clock.sleeps) == 1 and 0 < clock.sleeps[0] <= 61


def test_concurrency_limit_of_the_double_is_survived(make_llm, clock):
    from sigla.testing import FakeGitHubModels

    with FakeGitHubModels(concurrency=1, latency=0.1, clock=clock) as limited:
        llm = make_llm(endpoint=limited.url, sleep=lambda s: threading.Event().wait(0.15))
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda i=i: results.append(llm.chat(f"q{i}"))) for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = [r.status for r in limited.requests]
    assert sorted(results) == ["Echo: q0", "Echo: q1"]
    assert 429 in statuses


# ---------------------------------------------------------------- retirement


@pytest.mark.parametrize("mode_", ["410", "403", "404"])
def test_retirement_answers_say_what_happened_and_how_to_switch(fake, llm, clock, mode_, mode):
    fake.retire(mode_)
    with pytest.raises(GitHubModelsRetiredError) as caught:
        run_chat(llm, mode, "hi")
    message = str(caught.value)
    assert "retired on 2026-07-30" in message
    assert "SIGLA_LLM_PROVIDER=azure" in message
    assert "SIGLA_LLM_ENDPOINT" in message
    assert len(fake.requests) == 1 and clock.sleeps == []
    _, error = run_stream(llm, mode, "hi")
    assert isinstance(error, GitHubModelsRetiredError)


# ---------------------------------------------------------------- transport faults


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_service_is_a_connection_error_after_retries(make_llm, clock, mode):
    llm = make_llm(endpoint=f"http://127.0.0.1:{_closed_port()}/inference", max_retries=2)
    with pytest.raises(APIConnectionError, match="Could not reach"):
        run_chat(llm, mode, "hi")
    assert len(clock.sleeps) == 2


def test_disconnect_without_answer_is_retried(fake, llm, mode):
    fake.fail("disconnect")
    assert run_chat(llm, mode, "hi") == "Echo: hi"


def test_slow_answer_is_a_timeout_error(fake, make_llm, mode):
    fake.fail("timeout", seconds=1.0, times=None)
    with pytest.raises(APITimeoutError, match="timeout="):
        run_chat(make_llm(timeout=0.2, max_retries=0), mode, "hi")


ALL_FAULTS = [
    ("unauthorized", {}),
    ("no_access", {}),
    ("unknown_model", {}),
    ("model_format", {}),
    ("tokens_limit", {}),
    ("rate_limit_day", {}),
    ("server_error", {"times": None}),
    ("retired_410", {}),
    ("retired_403", {}),
    ("disconnect", {"times": None}),
    ("stream_cut", {"after": 1}),
    ("stream_no_finish", {}),
    ("stream_error_event", {}),
    ("content_filter", {}),
    ("prompt_filter", {}),
]


CASES = [
    (call, fault, params)
    for call in ("chat", "stream")
    for fault, params in ALL_FAULTS
    if call == "stream" or not fault.startswith("stream_")
]


@pytest.mark.parametrize(("call", "fault", "params"), CASES, ids=[f"{c}-{f}" for c, f, _ in CASES])
def test_no_foreign_exception_and_no_token_ever_reaches_the_caller(
    fake, make_llm, fault, params, call, mode, caplog
):
    llm = make_llm(max_retries=1)
    fake.fail(fault, **params)
    with caplog.at_level(logging.DEBUG, logger="sigla"):
        if call == "chat":
            with pytest.raises(LLMError) as caught:
                run_chat(llm, mode, "hi")
            error = caught.value
        else:
            _, error = run_stream(llm, mode, "hi")
    assert isinstance(error, LLMError), error
    assert type(error).__module__ == "sigla.errors"
    import traceback

    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert TOKEN not in text
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(llm)


def test_token_is_scrubbed_even_if_the_service_echoes_it(fake, llm, mode):
    fake.fail("server_error", status=400, message=f"bad token {TOKEN}")
    with pytest.raises(LLMError) as caught:
        run_chat(llm, mode, "hi")
    assert TOKEN not in str(caught.value)
    assert TOKEN not in (caught.value.body or "")


# ---------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "Nothing to send"),
        ({"messages": []}, "non-empty"),
        ({"messages": [{"role": "developer", "content": "x"}]}, "developer"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "unknown role"),
        ({"prompt": "x", "temperature": 3}, "temperature"),
        ({"prompt": "x", "top_p": 1.5}, "top_p"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_input_is_a_clear_invalid_request_error_before_any_request(fake, llm, kwargs, match):
    with pytest.raises(InvalidRequestError, match=match):
        llm.chat(**kwargs)
    with pytest.raises(InvalidRequestError, match=match):
        llm.stream(**kwargs)
    with pytest.raises(InvalidRequestError, match=match):
        asyncio.run(llm.achat(**kwargs))
    with pytest.raises(InvalidRequestError, match=match):
        llm.astream(**kwargs)
    assert fake.requests == []


# ---------------------------------------------------------------- org, catalog, async reuse


def test_org_attributes_usage_to_the_organization(fake, make_llm, mode):
    run_chat(make_llm(org="acme"), mode, "hi")
    assert fake.last_request.path == "/orgs/acme/inference/v1/chat/completions"
    assert fake.last_request.org == "acme"


def test_models_lists_the_catalog(llm):
    models = {m.id: m for m in llm.models()}
    codestral = models["mistral-ai/Codestral-2501"]
    assert codestral.rate_limit_tier == "low"
    assert codestral.max_input_tokens


def test_one_client_serves_several_event_loops(llm):
    assert asyncio.run(llm.achat("one")) == "Echo: one"
    assert asyncio.run(llm.achat("two")) == "Echo: two"


def test_concurrent_async_calls_share_one_client(llm):
    async def many() -> list[str]:
        return await asyncio.gather(*(llm.achat(f"q{i}") for i in range(5)))

    assert asyncio.run(many()) == [f"Echo: q{i}" for i in range(5)]


def test_a_finished_stream_carries_its_completion_with_usage(fake, llm):
    fake.reply(
        "ab",
        chunks=["a", "b"],
        usage={"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
    )
    with llm.stream("hi") as stream:
        assert stream.completion is None
        assert "".join(stream) == "ab"
    assert stream.completion.finish_reason == "stop"
    assert stream.completion.usage.total_tokens == 6
    assert stream.completion.text == "ab"


def test_a_finished_async_stream_carries_its_completion(fake, llm):
    fake.reply("ab", chunks=["a", "b"])

    async def consume():
        async with llm.astream("hi") as stream:
            pieces = [piece async for piece in stream]
        return pieces, stream.completion

    pieces, completion = asyncio.run(consume())
    assert pieces == ["a", "b"]
    assert completion.text == "ab" and completion.finish_reason == "stop"


def test_leaving_an_async_stream_early_closes_its_connection(fake, llm):
    fake.reply("a b c", chunks=["a ", "b ", "c"])
    fake.chunk_delay = 0.02

    async def consume():
        async with llm.astream("hi") as stream:
            async for _piece in stream:
                break

    asyncio.run(consume())
    _wait_until_idle(fake, seconds=2)
    assert fake.in_flight == 0


LONG = [f"w{i} " for i in range(40)]


def test_breaking_out_of_a_for_loop_closes_the_stream(fake, llm, mode):
    """No `with`, no close(): dropping the stream must stop the download."""
    fake.reply("".join(LONG), chunks=LONG)
    fake.chunk_delay = 0.02
    if mode == "sync":
        for _piece in llm.stream("hi"):
            break
    else:

        async def consume() -> None:
            async for _piece in llm.astream("hi"):
                break

        asyncio.run(consume())
    _wait_until_idle(fake)
    assert fake.in_flight == 0
    assert len(fake.last_request.chunk_times) < len(LONG)


def test_a_stall_after_the_first_piece_is_a_stream_error_with_the_text(fake, make_llm, mode):
    fake.reply("one two three", chunks=["one ", "two ", "three"])
    fake.fail("stream_stall", after=2, seconds=2)
    pieces, error = run_stream(make_llm(timeout=0.3), mode, "hi")
    assert pieces == ["one ", "two "]
    assert isinstance(error, StreamError)
    assert "timeout=0.3 s" in str(error)
    assert error.__cause__ is None and error.__context__ is None
    assert error.text == "one two "
    assert len(fake.requests) == 1


def test_a_stall_before_the_first_piece_is_a_timeout_not_retried(fake, make_llm, clock, mode):
    fake.fail("stream_stall", after=0, seconds=2)
    pieces, error = run_stream(make_llm(timeout=0.3), mode, "hi")
    assert isinstance(error, APITimeoutError) and error.request_sent
    assert "raise timeout=" in str(error).lower() and "max_tokens" in str(error)
    assert pieces == [] and clock.sleeps == [] and len(fake.requests) == 1


def test_a_stall_before_the_first_piece_is_retried_when_asked(fake, make_llm, clock, mode):
    fake.fail("stream_stall", after=0, seconds=2)
    llm = make_llm(timeout=0.3, retry_read_timeouts=True)
    pieces, error = run_stream(llm, mode, "hi")
    assert error is None
    assert "".join(pieces) == "Echo: hi"
    assert len(clock.sleeps) == 1


def test_a_request_the_sdk_rejects_is_invalid_and_not_retried(fake, llm, clock, mode):
    messages = [{"role": "tool", "content": "4", "tool_call_id": 5}]  # sigla lets it through
    with pytest.raises(InvalidRequestError, match="tool_call_id"):
        run_chat(llm, mode, messages=messages)
    _, error = run_stream(llm, mode, messages=messages)
    assert isinstance(error, InvalidRequestError)
    assert fake.requests == [] and clock.sleeps == []


def test_many_event_loops_do_not_leak_clients_or_sockets(llm):
    import os

    from sigla import _transport

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    asyncio.run(llm.achat("warm-up"))
    before = open_fds()
    for i in range(20):
        assert asyncio.run(llm.achat(f"q{i}")) == f"Echo: q{i}"
    assert open_fds() - before <= 2
    assert len(_transport._async_clients) <= 1


def test_debug_logging_of_every_library_never_shows_the_token(fake, make_llm, monkeypatch, caplog):
    monkeypatch.setenv("MISTRAL_DEBUG", "1")  # mistralai then logs each request's headers
    with caplog.at_level(logging.DEBUG):
        llm = make_llm()
        llm.chat("hi")
        list(llm.stream("hi"))
        asyncio.run(llm.achat("hi"))
        fake.fail("bad_credentials")
        with pytest.raises(AuthenticationError):
            llm.chat("hi")
    assert "authorization" in caplog.text.lower(), "the SDK's request log was captured"
    assert TOKEN not in caplog.text


def test_models_is_retried_like_any_call(make_llm, clock):
    llm = make_llm(endpoint=f"http://127.0.0.1:{_closed_port()}/inference", max_retries=2)
    with pytest.raises(APIConnectionError):
        llm.models()
    assert len(clock.sleeps) == 2
