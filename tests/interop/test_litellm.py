"""sigla against LiteLLM's proxy (``litellm --config``) answering from ``mock_response``.

The proxy is a real OpenAI-compatible server nobody here wrote: its routes, its SSE framing
and its error envelopes are LiteLLM's own. Each test asserts what sigla should do.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from sigla.llm import (
    ContentFilteredError,
    InputTooLargeError,
    ModelNotFoundError,
    RateLimitError,
    StreamError,
)
from sigla.testing import FakeGitHubModels

from .servers import (
    BACKEND_KEY,
    LITELLM_LONG_TEXT,
    LITELLM_MODELS,
    LITELLM_TEXT,
    TOKEN,
    Server,
    SleepRecorder,
    assert_no_secret,
    catch,
    describe,
    make_llm,
    raw_chat,
    run_chat,
    run_stream,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]  # servers start in-test


def test_chat_returns_the_mock_answer(litellm_proxy: Server, mode: str) -> None:
    llm = make_llm(litellm_proxy, "mock-chat")
    assert run_chat(llm, mode, "Hello?") == LITELLM_TEXT


def test_complete_reports_stop_and_usage(litellm_proxy: Server) -> None:
    result = make_llm(litellm_proxy, "mock-chat").complete("Hello?")
    assert result.text == LITELLM_TEXT
    assert result.finish_reason == "stop"
    assert result.usage is not None and result.usage.total_tokens > 0
    assert result.id


def test_stream_yields_the_mock_answer_in_pieces(litellm_proxy: Server, mode: str) -> None:
    pieces, error = run_stream(make_llm(litellm_proxy, "mock-chat"), mode, "Hello?")
    assert error is None, describe(error)
    assert "".join(pieces) == LITELLM_TEXT
    assert len(pieces) > 1  # LiteLLM's mock streams three characters an event


def test_finished_stream_has_a_completion(litellm_proxy: Server) -> None:
    with make_llm(litellm_proxy, "mock-chat").stream("Hello?") as stream:
        text = "".join(stream)
    assert text == LITELLM_TEXT
    assert stream.completion is not None
    assert stream.completion.finish_reason == "stop"


def test_models_lists_the_proxy_deployments(litellm_proxy: Server) -> None:
    ids = {model.id for model in make_llm(litellm_proxy, "mock-chat").models()}
    assert set(LITELLM_MODELS) <= ids


def test_unknown_model_raises_model_not_found_error(litellm_proxy: Server, mode: str) -> None:
    llm = make_llm(litellm_proxy, "no-such-model")
    error = catch(lambda: run_chat(llm, mode, "Hello?"))
    raw = raw_chat(litellm_proxy, "no-such-model", "Hello?")
    assert isinstance(error, ModelNotFoundError), f"{describe(error)}\nserver: {raw}"
    assert error.model == "no-such-model"
    assert_no_secret(error)


def test_rate_limit_raises_rate_limit_error(litellm_proxy: Server, mode: str) -> None:
    recorder = SleepRecorder()
    llm = make_llm(
        litellm_proxy,
        "mock-rate-limit",
        max_retries=2,
        sleep=recorder,
        async_sleep=recorder.async_sleep,
    )
    error = catch(lambda: run_chat(llm, mode, "Hello?"))
    raw = raw_chat(litellm_proxy, "mock-rate-limit", "Hello?")
    assert isinstance(error, RateLimitError), f"{describe(error)}\nserver: {raw}"
    assert error.status_code == 429
    assert len(recorder.sleeps) == 2, "a 429 is retried max_retries times"
    asked = raw.headers.get("retry-after") or raw.headers.get("llm_provider-retry-after")
    if asked is not None:  # whatever wait the proxy asks for, sigla reads it
        assert error.retry_after == pytest.approx(float(asked)), str(raw)
    assert_no_secret(error)


def test_context_window_exceeded_raises_input_too_large_error(
    litellm_proxy: Server, mode: str
) -> None:
    llm = make_llm(litellm_proxy, "mock-context-window")
    error = catch(lambda: run_chat(llm, mode, "Hello?"))
    raw = raw_chat(litellm_proxy, "mock-context-window", "Hello?")
    assert isinstance(error, InputTooLargeError), f"{describe(error)}\nserver: {raw}"
    assert_no_secret(error)


def test_content_policy_violation_raises_content_filtered_error(
    litellm_proxy: Server, mode: str
) -> None:
    llm = make_llm(litellm_proxy, "mock-content-policy")
    error = catch(lambda: run_chat(llm, mode, "Hello?"))
    raw = raw_chat(litellm_proxy, "mock-content-policy", "Hello?")
    assert isinstance(error, ContentFilteredError), f"{describe(error)}\nserver: {raw}"
    assert error.status_code == 400
    assert_no_secret(error)


def test_backend_retry_after_passed_on_by_the_proxy_is_honoured(
    litellm_proxy: Server, backend: FakeGitHubModels, mode: str
) -> None:
    """A real backend's 429 asks for 7 s; LiteLLM passes it on as ``llm_provider-retry-after``."""
    backend.fail("rate_limit_minute", times=None, retry_after=7)
    recorder = SleepRecorder()
    llm = make_llm(
        litellm_proxy, "backend", max_retries=1, sleep=recorder, async_sleep=recorder.async_sleep
    )
    error = catch(lambda: run_chat(llm, mode, "Hello?"))
    raw = raw_chat(litellm_proxy, "backend", "Hello?")
    assert isinstance(error, RateLimitError), f"{describe(error)}\nserver: {raw}"
    assert error.retry_after == pytest.approx(7), f"{describe(error)}\nserver: {raw}"
    assert len(recorder.sleeps) == 1 and recorder.sleeps[0] >= 7, recorder.sleeps
    assert_no_secret(error, TOKEN, BACKEND_KEY)


def test_backend_stream_cut_raises_stream_error_with_partial_text(
    litellm_proxy: Server, backend: FakeGitHubModels, mode: str
) -> None:
    """The backend drops the connection after two pieces; the proxy must not hide it."""
    backend.reply("one two three four", chunks=["one ", "two ", "three ", "four"])
    backend.fail("stream_cut", after=2)
    llm = make_llm(litellm_proxy, "backend", max_retries=0)
    pieces, error = run_stream(llm, mode, "Count.")
    assert isinstance(error, StreamError), (
        f"{describe(error) if error else 'no error'}; pieces: {pieces}"
    )
    assert error.text == "".join(pieces)
    assert "".join(pieces) == "one two "
    assert_no_secret(error, TOKEN, BACKEND_KEY)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("unknown_model", ModelNotFoundError),  # the backend's 404
        ("tokens_limit", InputTooLargeError),  # the backend's 413 tokens_limit_reached
        ("prompt_filter", ContentFilteredError),  # the backend's 400 content_filter
        ("content_filter", ContentFilteredError),  # a 200 with finish_reason content_filter
    ],
)
def test_backend_errors_passed_on_by_the_proxy_keep_their_meaning(
    litellm_proxy: Server, backend: FakeGitHubModels, fault: str, expected: type
) -> None:
    backend.fail(fault, times=None)
    error = catch(lambda: make_llm(litellm_proxy, "backend", max_retries=0).chat("Hello?"))
    backend.reset()
    backend.fail(fault, times=None)
    raw = raw_chat(litellm_proxy, "backend", "Hello?")
    assert isinstance(error, expected), f"{describe(error)}\nserver: {raw}"
    assert_no_secret(error, TOKEN, BACKEND_KEY)


def test_error_answers_raise_the_same_error_when_streaming(litellm_proxy: Server) -> None:
    """An error status before the first event is the same error for stream() as for chat()."""
    expected = {
        "mock-rate-limit": RateLimitError,
        "mock-context-window": InputTooLargeError,
        "mock-content-policy": ContentFilteredError,
    }
    for model, cls in expected.items():
        recorder = SleepRecorder()
        llm = make_llm(litellm_proxy, model, max_retries=1, sleep=recorder)
        pieces, error = run_stream(llm, "sync", "Hello?")
        assert pieces == []
        assert isinstance(error, cls), f"{model}: {describe(error) if error else 'no error'}"
        assert_no_secret(error)


def test_proxy_killed_mid_stream_raises_stream_error_with_partial_text(
    litellm_doomed_proxy: Server, mode: str
) -> None:
    llm = make_llm(litellm_doomed_proxy, "mock-long", timeout=10)
    pieces: list[str] = []

    def kill_soon() -> None:
        while not pieces:
            time.sleep(0.001)
        litellm_doomed_proxy.kill()

    killer = threading.Thread(target=kill_soon, daemon=True)
    killer.start()
    started = time.monotonic()
    if mode == "sync":
        error = catch(lambda: pieces.extend(llm.stream("Go on.")))
    else:

        async def consume() -> None:
            async for piece in llm.astream("Go on."):
                pieces.append(piece)

        error = catch(lambda: asyncio.run(consume()))
    killer.join(timeout=10)
    received = "".join(pieces)
    assert isinstance(error, StreamError), describe(error)
    assert 0 < len(received) < len(LITELLM_LONG_TEXT), "the proxy was killed mid-stream"
    assert LITELLM_LONG_TEXT.startswith(received)
    assert error.text == received
    assert time.monotonic() - started < 10, "the cut is seen at once, not after a timeout"
    assert_no_secret(error)


def test_raw_error_answers_are_openai_envelopes(litellm_proxy: Server) -> None:
    """What LiteLLM itself answers, checked so a change of its envelope shows up here first."""
    for model in ("mock-rate-limit", "mock-context-window", "mock-content-policy"):
        raw = raw_chat(litellm_proxy, model, "Hello?")
        assert raw.status >= 400, str(raw)
        error = httpx.Response(raw.status, content=raw.body).json().get("error")
        assert isinstance(error, dict) and error.get("message"), str(raw)
