"""The core against hostile or broken servers: bounded memory, bounded time, a typed error.

Each case is a real server on 127.0.0.1 (``tests/hostile.py``) sending real bytes with real
timing; timeouts are sub-second and waits between retries go to the fake clock.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import hostile
import pytest
from conftest import TOKEN, FakeClock, run_chat, run_complete, run_stream

import sigla
from sigla._core import Wire
from sigla.llm import (
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    ContentFilteredError,
    GitHubLLM,
    InputTooLargeError,
    InvalidResponseError,
    LLMError,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
    StreamError,
)
from sigla.testing import FakeGitHubModels

MiB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[hostile.HostileServer]:
    with hostile.HostileServer() as running:
        yield running


@pytest.fixture
def client(server: hostile.HostileServer, clock: FakeClock):
    """A GitHubLLM on the hostile server's OpenAI-compatible route, retrying on the fake clock."""

    def build(**kwargs: Any) -> GitHubLLM:
        kwargs.setdefault("provider", "openai")
        kwargs.setdefault("endpoint", f"{server.url}/v1")
        kwargs.setdefault("model", "m")
        kwargs.setdefault("token", TOKEN)
        kwargs.setdefault("sleep", clock.sleep)
        kwargs.setdefault("async_sleep", clock.async_sleep)
        return GitHubLLM(**kwargs)

    return build


def _peak_while(call: Any) -> tuple[BaseException | None, int]:
    """Run ``call``; the exception it raised and the peak of Python memory while it ran."""
    tracemalloc.start()
    try:
        call()
    except BaseException as error:
        raised: BaseException | None = error
    else:
        raised = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return raised, peak


# ---------------------------------------------------------------- bounded memory


def test_a_gzip_bomb_answer_is_refused_with_bounded_memory(server, client):
    server.script(hostile.gzip_bomb(1 << 30))  # ~1 MB on the wire, 1 GiB inflated
    llm = client(max_response_bytes=1 * MiB, max_retries=0)
    error, peak = _peak_while(lambda: llm.chat("hi"))
    assert isinstance(error, InvalidResponseError)
    assert "max_response_bytes" in str(error)
    assert peak < 48 * MiB, f"peak {peak / MiB:.1f} MiB while refusing a 1 GiB bomb"


def test_the_default_cap_also_stops_a_bomb(server, client):
    server.script(hostile.gzip_bomb(1 << 30))
    error, peak = _peak_while(lambda: client(max_retries=0).chat("hi"))
    assert isinstance(error, InvalidResponseError)
    assert peak < 160 * MiB  # 32 MiB read, joined once: far from the 1 GiB it inflates to


def test_a_gzip_bomb_stream_line_is_refused_with_bounded_memory(server, client, mode):
    server.script(hostile.gzip_bomb(1 << 30, stream=True))
    llm = client(max_response_bytes=1 * MiB)

    def consume() -> None:
        _pieces, failure = run_stream(llm, mode, "hi")
        if failure is not None:
            raise failure

    error, peak = _peak_while(consume)
    assert isinstance(error, InvalidResponseError)
    assert peak < 48 * MiB
    assert len(server.requests) == 1  # a server sending that is not asked again


def test_an_endless_stream_line_is_refused(server, client, mode):
    server.script(hostile.huge_line(8 * MiB))
    pieces, error = run_stream(client(max_response_bytes=1 * MiB), mode, "hi")
    assert isinstance(error, InvalidResponseError) and pieces == []
    # it stopped reading soon after the cap (loopback socket buffers hold a few MiB more)
    assert not server.sent[0].complete and server.sent[0].bytes_sent < 8 * MiB


def test_an_answer_of_exactly_max_response_bytes_is_taken_and_one_more_byte_refused(
    server, client, mode
):
    size = 64 * 1024
    server.script(hostile.huge_line(size, stream=False), hostile.huge_line(size + 1, stream=False))
    llm = client(max_response_bytes=size, max_retries=0)
    assert set(run_chat(llm, mode, "hi")) == {"a"}
    with pytest.raises(InvalidResponseError, match="max_response_bytes"):
        run_chat(llm, mode, "hi")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_answer_is_decoded_once(server, client, mode, encoding):
    server.script(hostile.compressed("squeezed " * 1000, encoding))
    assert run_chat(client(), mode, "hi") == "squeezed " * 1000


def test_a_compressed_error_answer_keeps_its_class_and_its_words(server, client, mode):
    server.script(hostile.compressed("the backend fell over", "gzip", status=500))
    with pytest.raises(ServerError) as caught:
        run_chat(client(max_retries=0), mode, "hi")
    assert "the backend fell over" in str(caught.value)


def test_an_encoding_sigla_did_not_ask_for_is_refused_naming_the_endpoint(server, client, mode):
    server.script(hostile.compressed("hi", "br"))
    with pytest.raises(InvalidResponseError) as caught:
        run_chat(client(), mode, "hi")
    assert f"{server.url}/v1/chat/completions" in str(caught.value) and "br" in str(caught.value)
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_a_huge_whole_answer_to_a_stream_request_is_refused_without_downloading_it(
    server, client, mode
):
    server.script(hostile.huge_line(100 * MiB, stream=False))  # JSON, not an event stream
    _pieces, error = run_stream(client(), mode, "hi")
    assert isinstance(error, InvalidResponseError) and "max_response_bytes" not in str(error)
    assert server.sent[0].bytes_sent < 8 * MiB and not server.sent[0].complete
    assert len(server.requests) == 1


@pytest.mark.parametrize(("status", "expected"), [(400, APIStatusError), (500, ServerError)])
def test_a_huge_error_body_gives_a_short_message_and_is_not_downloaded(
    server, client, mode, status, expected
):
    server.script(hostile.error(status, size=100 * MiB))
    with pytest.raises(expected) as caught:
        run_chat(client(max_retries=0), mode, "hi")
    error = caught.value
    assert len(str(error)) < 600 and not isinstance(error, InvalidResponseError)
    assert error.body is not None and len(error.body) <= 64 * 1024
    assert server.sent[0].bytes_sent < 8 * MiB and not server.sent[0].complete


def test_an_html_error_page_becomes_its_text(server, client, mode):
    server.script(hostile.html_error(502))
    with pytest.raises(ServerError) as caught:
        run_chat(client(max_retries=0), mode, "hi")
    message = str(caught.value)
    assert "502 Bad Gateway" in message and "<" not in message
    assert message.count("502 Bad Gateway") == 1  # <title> and <h1> say it once


# ---------------------------------------------------------------- bounded time


def test_timeout_bounds_a_whole_answer_against_a_drip(server, client, mode):
    body = b'{"choices": [{"index": 0, "message": {"content": "' + b"x" * 400 + b'"}}]}'
    server.script(hostile.drip(body, interval=0.02))  # ~9 s in all, a byte every 20 ms
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as caught:
        run_chat(client(timeout=0.5), mode, "hi")
    assert time.monotonic() - started < 2.5
    assert caught.value.request_sent
    assert len(server.requests) == 1  # a read timeout is not retried by default


def test_timeout_bounds_a_whole_answer_from_the_request_not_from_its_headers(server, client, mode):
    client().chat("warm up")  # imports the SDK once: not part of the timing below
    message = {"role": "assistant", "content": "late"}
    answer = {"id": "c", "object": "chat.completion", "created": 1, "model": "m"}
    answer["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
    body = hostile.json.dumps(answer).encode()
    # headers after 0.6 s, then the body over ~0.7 s: done 0.3 s after the 1 s timeout
    server.script(hostile.drip(body, interval=0.7 / len(body), head_after=0.6))
    with pytest.raises(APITimeoutError):
        run_chat(client(timeout=1.0), mode, "hi")
    assert len(server.requests) == 2


def test_timeout_bounds_dripped_headers_too(server, client, mode):
    # ~3.5 s of headers, a byte every 50 ms: only the attempt's deadline, not the read
    # timeout, can stop them before they end
    client().chat("warm up")  # imports the SDK once: not part of the time below
    server.script(hostile.drip(b"{}", interval=0.05, headers_too=True))
    started = time.monotonic()
    with pytest.raises(APITimeoutError):
        run_chat(client(timeout=0.5), mode, "hi")
    assert time.monotonic() - started < 2.5


def test_a_dripped_stream_times_out_per_event(server, client, mode):
    events = b"".join(
        b"data: %s\n\n" % hostile.json.dumps(hostile.chunk("word ")).encode() for _ in range(5)
    )
    server.script(hostile.drip(events, interval=0.02, content_type="text/event-stream"))
    started = time.monotonic()
    pieces, error = run_stream(client(timeout=0.5), mode, "hi")
    assert isinstance(error, APITimeoutError) and pieces == []
    assert time.monotonic() - started < 2.5


def test_a_streams_first_event_has_a_whole_timeout_after_late_headers(server, client, mode):
    """The wait for the first event starts when the headers are in, not with the request."""
    client().chat("warm up")  # imports the SDK once: not part of the timing below
    late = [hostile.chunk("late", finish_reason="stop")]
    server.script(hostile.sse(late, head_after=0.6, first_after=0.7))  # 1.3 s in all
    pieces, error = run_stream(client(timeout=1.0), mode, "hi")
    assert error is None and pieces == ["late"]


def test_total_timeout_bounds_a_streams_first_event_after_late_headers(server, client, mode):
    client().chat("warm up")
    late = [hostile.chunk("late", finish_reason="stop")]
    server.script(hostile.sse(late, head_after=0.8, first_after=0.6))  # 1.4 s in all
    pieces, error = run_stream(client(timeout=10, total_timeout=1.0), mode, "hi")
    assert isinstance(error, LLMError) and pieces == [], "read past total_timeout"
    assert len(server.requests) == 2


def test_a_slow_but_steady_stream_is_not_cut_by_the_timeout(make_llm, mode):
    """``timeout`` is per event for streams: a long answer arriving steadily is fine."""
    with FakeGitHubModels(chunk_delay=0.15) as slow:
        slow.reply("a b c d e f g h", chunks=list("abcdefgh"))
        llm = make_llm(endpoint=slow.url, timeout=0.5)
        started = time.monotonic()
        pieces, error = run_stream(llm, mode, "hi")
    assert error is None and "".join(pieces) == "abcdefgh"
    assert time.monotonic() - started > 0.5  # longer than timeout, in all


def test_total_timeout_bounds_a_steady_stream(make_llm, mode):
    words = [f"w{i} " for i in range(30)]
    with FakeGitHubModels(chunk_delay=0.1) as slow:  # 3 s in all, an event every 0.1 s
        llm = make_llm(endpoint=slow.url, timeout=5, total_timeout=1.0)
        GitHubLLM(endpoint=slow.url, token=TOKEN).chat("warm up")  # imports the SDK once
        slow.reply("".join(words), chunks=words)
        started = time.monotonic()
        pieces, error = run_stream(llm, mode, "hi")
    assert isinstance(error, StreamError) and 0 < len(pieces) < 30
    assert "total_timeout=1 s" in str(error)
    assert time.monotonic() - started < 2.5


def test_total_timeout_bounds_retries_and_their_waits(fake, make_llm, clock, mode):
    fake.fail("server_error", times=None)
    llm = make_llm(max_retries=10, total_timeout=2.0, clock=clock)
    with pytest.raises(ServerError) as caught:
        run_chat(llm, mode, "hi")
    assert "total_timeout=2 s" in str(caught.value)
    assert sum(clock.sleeps) < 2.0 and len(fake.requests) < 11


def test_total_timeout_must_be_positive():
    for bad in (0, -1, float("nan"), float("inf"), "5", True):
        with pytest.raises(ConfigurationError, match="total_timeout"):
            GitHubLLM(token=TOKEN, total_timeout=bad)


def test_a_read_timeout_is_retried_only_when_asked(server, client, mode):
    server.script(hostile.drip(b"{}" * 50, interval=0.05), hostile.completion("late but ok"))
    llm = client(timeout=0.3, retry_read_timeouts=True)
    assert run_chat(llm, mode, "hi") == "late but ok"
    assert len(server.requests) == 2


def test_a_connection_refused_is_still_retried(client, clock, mode):
    llm = client(endpoint="http://127.0.0.1:9/v1", max_retries=2)
    with pytest.raises(LLMError) as caught:
        run_chat(llm, mode, "hi")
    assert len(clock.sleeps) == 2
    assert "Gave up after 3 attempts" in str(caught.value)


# ---------------------------------------------------------------- redirects


def test_a_redirect_is_refused_naming_where_it_pointed(server, client, mode):
    server.script(hostile.redirect(307, "http://127.0.0.2:1/elsewhere/v1/chat/completions"))
    with pytest.raises(ConfigurationError) as caught:
        run_chat(client(), mode, "hi")
    message = str(caught.value)
    assert "http://127.0.0.2:1/elsewhere/v1/chat/completions" in message
    assert "endpoint" in message and "redirect" in message
    assert len(server.requests) == 1  # not followed: the credential went nowhere else


def test_a_relative_redirect_is_refused_too(server, client):
    server.script(hostile.redirect(301))
    with pytest.raises(ConfigurationError) as caught:
        client().chat("hi")
    assert f"{server.url}/redirected/v1/chat/completions" in str(caught.value), "made absolute"
    assert [r.path for r in server.requests] == ["/v1/chat/completions"]


@pytest.mark.parametrize("status", [300, 308])
def test_every_3xx_is_a_redirect_refused(server, client, status):
    server.script(hostile.redirect(status, "https://127.0.0.2/v1/chat/completions"))
    with pytest.raises(ConfigurationError) as caught:
        client().chat("hi")
    assert "https://127.0.0.2/v1/chat/completions" in str(caught.value), "no port: none shown"
    assert str(status) in str(caught.value)
    assert len(server.requests) == 1


def test_a_redirect_without_a_location_is_refused_too(server, client, mode):
    server.script(hostile.redirect(302, ""))
    with pytest.raises(ConfigurationError) as caught:
        run_chat(client(), mode, "hi")
    assert str(caught.value).count(server.url) == 1, "the endpoint is not named as the target"
    assert len(server.requests) == 1


def test_a_large_answer_read_in_many_pieces_arrives_whole(make_llm, fake, mode):
    text = "word " * 100_000  # 500 KB: many reads off the socket, joined as they came
    fake.reply(text)
    assert run_chat(make_llm(), mode, "hi") == text


# ---------------------------------------------------------------- connections


def test_more_than_ten_calls_to_one_endpoint_go_out_at_once(server, client, mode):
    """httpcore's own pool would hold the 11th concurrent call back until one ended."""
    server.script(*hostile.gathered(12))  # answered only once all 12 are in
    llm = client(max_retries=0)
    if mode == "sync":
        answers: list[object] = []

        def call(i: int) -> None:
            try:
                answers.append(llm.chat(f"q{i}"))
            except LLMError as error:
                answers.append(error)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:

        async def together() -> list[object]:
            calls = (llm.achat(f"q{i}") for i in range(12))
            return list(await asyncio.gather(*calls, return_exceptions=True))

        answers = asyncio.run(together())
    assert sorted(map(str, answers)) == sorted(f"Echo: q{i}" for i in range(12))


def test_clients_of_one_endpoint_share_a_connection_per_event_loop(server, client, mode):
    clients = [client(), client(), client()]
    if mode == "sync":
        assert [c.chat(f"q{i}") for i, c in enumerate(clients)] == [
            "Echo: q0",
            "Echo: q1",
            "Echo: q2",
        ]
        assert server.accepted == 1
        return

    async def one_after_another() -> None:
        for i, llm in enumerate(clients):
            assert await llm.achat(f"q{i}") == f"Echo: q{i}"

    asyncio.run(one_after_another())
    assert server.accepted == 1
    assert server.wait_connections(0), "closed with its event loop"


def test_the_request_on_the_wire_carries_sigla_and_the_endpoints_credentials(server, client):
    port = server.url.rsplit(":", 1)[1]
    llm = client(endpoint=f"http://us%40r:p%3Ass@127.0.0.1:{port}/v1?key=k1")
    assert llm.chat("hi") == "Echo: hi"
    request = server.requests[0]
    assert request.path == "/v1/chat/completions?key=k1"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"us@r:p:ss").decode()
    ours, _, the_sdks = request.headers["user-agent"].partition(" ")
    assert ours == f"sigla/{sigla.__version__}" and the_sdks.startswith("mistral")
    assert request.headers["accept-encoding"] == "gzip, deflate"
    assert int(request.headers["content-length"]) == len(request.body)


def test_mistralai_1x_azure_route_is_sent_as_foundrys(server):
    """mistralai 1.x's Azure client posts {endpoint}/v1/chat/completions: Foundry has no /v1."""
    from sigla._transport import sync_client

    chat = {"messages": [{"role": "user", "content": "hi"}]}
    response = sync_client(Wire()).post(f"{server.url}/models/v1/chat/completions", json=chat)
    assert response.status_code == 200
    assert [r.path for r in server.requests] == ["/models/chat/completions"]


# ---------------------------------------------------------------- odd streams


def test_an_empty_200_to_a_stream_request_is_a_typed_error(server, client, mode):
    server.script(hostile.empty(200, content_type=""))
    _pieces, error = run_stream(client(), mode, "hi")
    assert isinstance(error, InvalidResponseError)
    assert "event stream" in str(error)
    assert "''" not in str(error) and str(error).endswith("."), "nothing quoted, nothing added"
    assert re.search(r"\bno Content-Type\b", str(error)), "it says what came: nothing labelled"
    assert len(server.requests) == 1


def test_a_whole_answer_to_a_stream_request_is_refused_quoting_its_start(server, client, mode):
    said = "x" + "é" * 300  # two bytes each: the 200th byte is half of the 100th "é"
    server.script(hostile.error(200, said))
    _pieces, error = run_stream(client(), mode, "hi")
    assert isinstance(error, InvalidResponseError)
    assert "x" + "é" * 99 in str(error) and "é" * 100 not in str(error), "its first 200 bytes"
    assert f"{server.url}/v1/chat/completions" in str(error) and "application/json" in str(error)
    assert len(server.requests) == 1


def test_a_stream_closed_empty_is_not_retried_and_not_blamed_on_luck(server, client, mode):
    server.script(hostile.sse([], done=False))
    _pieces, error = run_stream(client(), mode, "hi")
    assert isinstance(error, InvalidResponseError)
    assert "context" in str(error) and "Retry" not in str(error)
    assert len(server.requests) == 1


def test_a_stream_cut_after_its_finish_reason_is_complete(server, client, mode):
    done = [hostile.chunk("Hello "), hostile.chunk("world", finish_reason="stop")]
    server.script(hostile.cut_after(done))
    pieces, error = run_stream(client(), mode, "hi")
    assert error is None and "".join(pieces) == "Hello world"


def test_a_stream_ending_after_its_finish_reason_without_done_is_complete(server, client, mode):
    server.script(hostile.sse([hostile.chunk("ok", finish_reason="stop")], done=False))
    pieces, error = run_stream(client(), mode, "hi")
    assert error is None and pieces == ["ok"]


def test_a_content_filter_after_some_text_keeps_the_text(server, client, mode):
    chunks = [hostile.chunk("Once upon "), hostile.chunk("a", finish_reason="content_filter")]
    server.script(hostile.sse(chunks))
    _pieces, error = run_stream(client(), mode, "hi")
    assert isinstance(error, ContentFilteredError)
    assert error.text == "Once upon a" and len(server.requests) == 1


def test_a_cut_before_anything_arrived_does_not_say_mid_stream(server, client, clock, mode):
    server.script(*[hostile.cut_after(0)] * 4)
    pieces, error = run_stream(client(), mode, "hi")
    assert isinstance(error, StreamError) and pieces == []
    assert "mid-stream" not in str(error) and "broke after" not in str(error)
    assert "Gave up after 4 attempts" in str(error)


def test_a_cut_after_text_says_how_much_arrived(server, client, mode):
    server.script(hostile.cut_after(2))
    _pieces, error = run_stream(client(), mode, "hi")
    assert isinstance(error, StreamError) and error.text == "piece0 piece1 "
    assert "14 characters" in str(error) and ".text" not in str(error)


# ---------------------------------------------------------------- what real servers say


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (hostile.openai_error("context_length_exceeded"), InputTooLargeError),
        (hostile.llamacpp_context_error(), InputTooLargeError),
        (hostile.openai_error("model_not_found"), ModelNotFoundError),
        (hostile.openai_error("content_policy_violation"), ContentFilteredError),
        (hostile.azure_content_filter(), ContentFilteredError),
    ],
    ids=["openai-context", "llamacpp-context", "model-not-found", "policy", "azure-filter"],
)
def test_error_codes_of_real_servers_map_to_their_classes(server, client, answer, expected, mode):
    server.script(answer)
    with pytest.raises(expected):
        run_complete(client(), mode, "hi")
    assert len(server.requests) == 1


def _litellm(status: int, message: str, kind: str = "invalid_request_error") -> hostile.Response:
    """LiteLLM's proxy error as recorded against litellm 1.108 (tests/interop): the HTTP status
    as the code, the error's class only in the message."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}
    return hostile.error(status, hostile.json.dumps(body).encode())


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            _litellm(400, "/chat/completions: Invalid model name passed in model=no-such-model."),
            ModelNotFoundError,
        ),
        (
            _litellm(404, "litellm.NotFoundError: OpenAIException - Unknown model: gpt-4o-mini"),
            ModelNotFoundError,
        ),
        (
            _litellm(
                400,
                "litellm.BadRequestError: litellm.ContentPolicyViolationError: "
                "litellm.MockException: Exception: content_filter_policy",
            ),
            ContentFilteredError,
        ),
        (
            _litellm(
                400,
                "litellm.BadRequestError: OpenAIException - The response was filtered due to "
                "the prompt triggering Azure OpenAI's content management policy.",
            ),
            ContentFilteredError,
        ),
        (
            _litellm(
                400,
                "litellm.ContextWindowExceededError: litellm.BadRequestError: this is a mock "
                "context window exceeded error",
            ),
            InputTooLargeError,
        ),
    ],
    ids=["invalid-model", "backend-404", "policy", "prompt-filter", "context-window"],
)
def test_litellms_errors_map_by_their_words(server, client, answer, expected):
    server.script(answer)
    with pytest.raises(expected):
        client().chat("hi")


def test_a_status_code_in_the_code_field_is_not_taken_for_a_code(server, client):
    server.script(_litellm(400, "litellm.BadRequestError: something else went wrong"))
    with pytest.raises(LLMError) as caught:
        client().chat("hi")
    assert type(caught.value).__name__ == "APIStatusError"
    assert caught.value.code == "invalid_request_error"  # type: ignore[attr-defined]


def test_the_context_limit_is_read_from_the_answer(server, client):
    server.script(hostile.llamacpp_context_error(n_prompt_tokens=600, n_ctx=512))
    with pytest.raises(InputTooLargeError) as caught:
        client().chat("hi")
    assert caught.value.limit == 512
    server.script(hostile.openai_error("context_length_exceeded"))
    with pytest.raises(InputTooLargeError) as caught:
        client().chat("hi")
    assert caught.value.limit == 128000


def test_a_404_without_a_model_code_is_not_a_missing_model(server, client):
    server.script(hostile.error(404, b'{"error": {"message": "No such route"}}'))
    with pytest.raises(LLMError) as caught:
        client().chat("hi")
    assert not isinstance(caught.value, ModelNotFoundError)
    assert "endpoint" in str(caught.value)


def test_litellms_relayed_retry_after_is_honoured(server, client, clock, mode):
    server.script(hostile.litellm_rate_limit(retry_after=7))
    assert run_chat(client(), mode, "hi") == "Echo: hi"
    assert 7 <= clock.sleeps[0] <= 7.5


def test_a_daily_quota_says_when_it_resets_in_hours(fake, llm, clock, mode):
    fake.fail("rate_limit_day", retry_after=5640)
    with pytest.raises(RateLimitError) as caught:
        run_chat(llm, mode, "hi")
    assert "1 h 34 min" in str(caught.value) and "max_retry_wait=60 s" in str(caught.value)
    assert clock.sleeps == []


def test_async_and_sync_share_the_hostile_rules(server, client):
    """One parity check: the same bomb through both twins gives the same class."""
    server.script(hostile.gzip_bomb(64 * MiB), hostile.gzip_bomb(64 * MiB))
    llm = client(max_response_bytes=1 * MiB, max_retries=0)
    with pytest.raises(InvalidResponseError) as sync_error:
        llm.chat("hi")
    with pytest.raises(InvalidResponseError) as async_error:
        asyncio.run(llm.achat("hi"))
    assert type(sync_error.value) is type(async_error.value)


def test_the_request_id_of_an_error_answer_is_kept(server, client):
    server.script(
        hostile.error(500, b'{"error": {"message": "boom"}}', headers={"x-request-id": "req-42"})
    )
    with pytest.raises(ServerError) as caught:
        client(max_retries=0).chat("hi")
    assert caught.value.request_id == "req-42" and caught.value.status_code == 500
