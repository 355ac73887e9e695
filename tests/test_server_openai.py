"""The server's OpenAI-compatible /v1 as the real ``openai`` package sees it.

The client is the ``openai`` SDK itself (and sigla's own ``provider="openai"``), talking
HTTP to a real uvicorn on 127.0.0.1 (tests/live_server.py) in front of the loopback double.
Every ``openai`` client here has ``max_retries=0``: a 429 must reach the test as a 429, not
as a retry after a real ``Retry-After`` wait. Each client reads through :class:`Wiretap`, a
transport that keeps every byte of every answer, so a test can show that the server's
upstream credential never travels back to a caller.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from conftest import TOKEN
from live_server import no_async_sleep, no_sleep, server_config, serving

from sigla.llm import GitHubLLM
from sigla.server import ApiKeys, ServerConfig, create_app
from sigla.testing import FakeGitHubModels

MODEL = "openai/gpt-4o-mini"
OTHER = "meta/Llama-3.3-70B-Instruct"
KEY = "team-key-0123456789abcdef"
HELLO = [{"role": "user", "content": "one two three four five six"}]
ANSWER = "Echo: one two three four five six"  # the double's echo of HELLO


def config(fake: FakeGitHubModels, **given: Any) -> ServerConfig:
    """A server in front of ``fake`` serving MODEL unless ``models`` are given."""
    given.setdefault("models", (MODEL,))
    return server_config(fake.url, **given)


# The HTTP library of the installed openai: httpx2 from openai 3.x on, httpx before.
http = importlib.import_module(openai.DefaultHttpxClient.__mro__[1].__module__.split(".")[0])


class Wiretap(http.BaseTransport):
    """A real HTTP transport that also keeps what came back: each answer's status line and
    headers, and every body byte as the caller read it (streams included)."""

    def __init__(self) -> None:
        self._inner = http.HTTPTransport()
        self.heard: list[bytes] = []

    def handle_request(self, request: http.Request) -> http.Response:
        response = self._inner.handle_request(request)
        head = [f"{response.status_code}".encode()]
        head += [name + b": " + value for name, value in response.headers.raw]
        self.heard.append(b"\r\n".join(head))
        return http.Response(
            response.status_code,
            headers=response.headers,
            stream=_Tee(response.stream, self.heard),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self._inner.close()

    def everything(self) -> bytes:
        return b"\n".join(self.heard)


class _Tee(http.SyncByteStream):
    def __init__(self, stream: Any, into: list[bytes]) -> None:
        self._stream, self._into = stream, into

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._into.append(chunk)
            yield chunk

    def close(self) -> None:
        self._stream.close()


@pytest.fixture
def fake() -> Iterator[FakeGitHubModels]:
    with FakeGitHubModels(tokens=[TOKEN]) as double:
        yield double


@pytest.fixture
def url(fake: FakeGitHubModels) -> Iterator[str]:
    """A server without API keys, serving MODEL and OTHER (MODEL the default)."""
    with serving(create_app(config(fake, models=(MODEL, OTHER)))) as base:
        yield base


@pytest.fixture
def keyed_url(fake: FakeGitHubModels) -> Iterator[str]:
    """A server that asks for ``Authorization: Bearer KEY``."""
    with serving(create_app(config(fake, api_keys=ApiKeys((KEY,))))) as base:
        yield base


@pytest.fixture
def wiretap() -> Iterator[Wiretap]:
    tap = Wiretap()
    yield tap
    tap.close()


def client_of(base: str, wiretap: Wiretap, *, api_key: str = "any", **kwargs: Any) -> openai.OpenAI:
    """The real SDK aimed at ``base``/v1, never retrying, reading through ``wiretap``."""
    return openai.OpenAI(
        base_url=f"{base}/v1",
        api_key=api_key,
        max_retries=0,
        timeout=20,
        http_client=openai.DefaultHttpxClient(transport=wiretap),
        **kwargs,
    )


@pytest.fixture
def client(url: str, wiretap: Wiretap) -> Iterator[openai.OpenAI]:
    with client_of(url, wiretap) as sdk:
        yield sdk


def chat_requests(fake: FakeGitHubModels) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/chat/completions")]


# ---------------------------------------------------------------- answers


def test_a_chat_completion_has_openais_shape(client: openai.OpenAI, fake: FakeGitHubModels) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=HELLO, temperature=0.3, max_tokens=50
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == ANSWER
    assert choice.finish_reason == "stop"
    assert completion.model == "gpt-4o-mini-2024-07-18"  # the name the service answered with
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    sent = chat_requests(fake)[-1].body
    assert sent["model"] == MODEL
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 50
    assert sent["messages"][-1] == HELLO[0]


def test_a_stream_arrives_piece_by_piece_while_the_service_still_writes(
    client: openai.OpenAI, fake: FakeGitHubModels
) -> None:
    fake.chunk_delay = 0.1  # six pieces: the upstream stream lasts ~0.6 s
    pieces: list[str] = []
    upstream_open_at_first_piece = None
    finishes: list[str | None] = []
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.usage is None  # not asked for
        (choice,) = chunk.choices
        finishes.append(choice.finish_reason)
        if choice.delta.content:
            if not pieces:
                upstream_open_at_first_piece = fake.in_flight
            pieces.append(choice.delta.content)
    assert "".join(pieces) == ANSWER
    assert len(pieces) > 2  # several chunks, not one buffered answer
    assert upstream_open_at_first_piece == 1  # relayed before the upstream had finished
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chat_requests(fake)[-1].body["stream"] is True


def test_include_usage_adds_a_last_chunk_with_usage_and_no_choices(
    client: openai.OpenAI,
) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert text == ANSWER


def test_models_list_names_the_served_models(client: openai.OpenAI) -> None:
    models = list(client.models.list())
    assert [m.id for m in models] == [MODEL, OTHER]
    assert {m.object for m in models} == {"model"}


def test_the_second_served_model_is_asked_for_by_name(
    client: openai.OpenAI, fake: FakeGitHubModels
) -> None:
    completion = client.chat.completions.create(model=OTHER, messages=HELLO)
    assert completion.choices[0].message.content == ANSWER
    assert chat_requests(fake)[-1].body["model"] == OTHER


# ---------------------------------------------------------------- errors


def test_an_upstream_429_is_a_rate_limit_error_with_retry_after(
    client: openai.OpenAI, fake: FakeGitHubModels
) -> None:
    fake.fail("rate_limit_minute", retry_after=42)  # beyond the server's max_retry_wait
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO)
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "42"
    assert isinstance(error.body, dict) and error.body["code"] == "rate_limited"
    assert len(chat_requests(fake)) == 1  # the server did not sit on it either
    # The shared client keeps the service's pause: the next caller is told at once, and
    # nothing is sent upstream until it is over.
    with pytest.raises(openai.RateLimitError) as again:
        client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    assert 0 < int(again.value.response.headers["retry-after"]) <= 42
    assert len(chat_requests(fake)) == 1


def test_a_model_not_served_is_not_found_and_costs_no_upstream_call(
    client: openai.OpenAI, fake: FakeGitHubModels
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="openai/gpt-5", messages=HELLO)
    assert "openai/gpt-5" in caught.value.message
    assert MODEL in caught.value.message and OTHER in caught.value.message
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):  # the stream form is refused the same way
        client.chat.completions.create(model="openai/gpt-5", messages=HELLO, stream=True)
    assert chat_requests(fake) == []


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "now", "parameters": {"type": "object"}},
                    }
                ]
            },
            "tools",
        ),
        ({"n": 2}, "n=2"),
        ({"logprobs": True}, "logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),  # without stream
    ],
)
def test_what_sigla_cannot_honour_is_a_bad_request_naming_the_field(
    client: openai.OpenAI, fake: FakeGitHubModels, extra: dict[str, Any], named: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO, **extra)
    assert caught.value.status_code == 400
    assert named in caught.value.message
    assert chat_requests(fake) == []


def test_with_keys_a_missing_or_wrong_key_is_an_authentication_error(
    keyed_url: str, wiretap: Wiretap, fake: FakeGitHubModels
) -> None:
    no_key = {"Authorization": openai.omit}  # the SDK then sends no Authorization at all
    for api_key, headers in (("wrong-key", {}), (KEY, no_key)):
        with client_of(keyed_url, wiretap, api_key=api_key) as sdk:
            with pytest.raises(openai.AuthenticationError) as caught:
                sdk.chat.completions.create(model=MODEL, messages=HELLO, extra_headers=headers)
            assert caught.value.response.headers["www-authenticate"] == "Bearer"
            assert caught.value.request.headers.get("authorization") == (
                None if headers else "Bearer wrong-key"
            )
            with pytest.raises(openai.AuthenticationError):
                sdk.models.list(extra_headers=headers)
    assert chat_requests(fake) == []
    with client_of(keyed_url, wiretap, api_key=KEY) as sdk:
        completion = sdk.chat.completions.create(model=MODEL, messages=HELLO)
        assert completion.choices[0].message.content == ANSWER
        assert [m.id for m in sdk.models.list()] == [MODEL]


@pytest.mark.parametrize("fault", ["stream_cut", "stream_error_event"])
def test_an_upstream_failure_midway_raises_api_error_while_iterating(
    client: openai.OpenAI, fake: FakeGitHubModels, fault: str
) -> None:
    fake.fail(fault, after=2)  # two pieces, then the upstream stream breaks
    pieces: list[str] = []
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            pieces.append(chunk.choices[0].delta.content or "")
    error = caught.value
    # The server's `data: {"error": ...}` event, not a dropped connection:
    assert not isinstance(error, openai.APIConnectionError)
    assert isinstance(error.body, dict) and error.body["code"] == "upstream_error"
    assert error.body["type"] == "server_error"
    text = "".join(pieces)
    assert text and ANSWER.startswith(text) and text != ANSWER  # delivered what came


# ---------------------------------------------------------------- sigla as the client


def test_siglas_openai_provider_works_against_the_server(
    keyed_url: str, fake: FakeGitHubModels
) -> None:
    # sigla's openai provider takes the OpenAI-convention base URL (".../v1", as for
    # Ollama) and strips /v1 before its SDK appends /v1/chat/completions.
    llm = GitHubLLM(
        provider="openai",
        endpoint=f"{keyed_url}/v1",
        token=KEY,
        model=MODEL,
        max_retries=0,
        sleep=no_sleep,
        async_sleep=no_async_sleep,
    )
    assert llm.chat("one two three four five six") == ANSWER
    pieces = list(llm.stream("one two three four five six"))
    assert "".join(pieces) == ANSWER
    assert len(pieces) > 2
    sent = chat_requests(fake)
    assert [r.body["model"] for r in sent] == [MODEL, MODEL]
    assert [r.body.get("stream", False) for r in sent] == [False, True]
    assert llm.usage.requests == 2


# ---------------------------------------------------------------- the credential


def test_the_upstream_token_never_reaches_a_client(
    client: openai.OpenAI, fake: FakeGitHubModels, wiretap: Wiretap
) -> None:
    client.chat.completions.create(model=MODEL, messages=HELLO)
    list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True))
    list(client.models.list())
    fake.fail("unauthorized")  # the service rejects the server's credential
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO)
    assert caught.value.status_code == 502
    fake.fail("stream_error_event", after=1)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True))
    fake.fail("rate_limit_minute", retry_after=42)  # last: the server then pauses 42 s
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=HELLO)
    heard = wiretap.everything()
    assert ANSWER.encode() in heard and b"retry-after: 42" in heard.lower()  # it listened
    assert len(wiretap.heard) > 6
    # The server did send the token upstream, on every call; none of it came back.
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    assert {r.token_sha256 for r in chat_requests(fake)} == {digest}
    for secret in (TOKEN, TOKEN[4:], digest):
        assert secret.encode() not in heard
