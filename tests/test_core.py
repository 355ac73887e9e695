"""The I/O-free core: wire fixes, answer parsing, and the status → error mapping."""

from __future__ import annotations

import json

import pytest

from sigla._config import resolve_settings
from sigla._core import StreamAssembler, fill_completion_body
from sigla._translate import error_from_status
from sigla.errors import (
    APIStatusError,
    AuthenticationError,
    ContentFilteredError,
    GitHubModelsRetiredError,
    InputTooLargeError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamError,
)

SETTINGS = resolve_settings(token="t" * 12, env={})


def envelope(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message, "details": message}})


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls"),
    [
        (401, envelope("unauthorized", "Bad credentials"), {}, AuthenticationError),
        (403, envelope("no_access", "No access to model: openai/gpt-5"), {}, PermissionDeniedError),
        (404, envelope("unknown_model", "Unknown model: x/y"), {}, ModelNotFoundError),
        (
            400,
            "Model not found; expected format: {publisher}/{model_name}.",
            {},
            ModelNotFoundError,
        ),
        (413, envelope("tokens_limit_reached", "Max size: 8000 tokens."), {}, InputTooLargeError),
        (429, envelope("RateLimitReached", "Rate limit"), {"retry-after": "9"}, RateLimitError),
        (400, envelope("content_filter", "filtered"), {}, ContentFilteredError),
        (408, "", {}, ServerError),
        (502, "<html>Bad Gateway</html>", {}, ServerError),
        (410, "", {}, GitHubModelsRetiredError),
        (403, "", {"Sunset": "Thu, 30 Jul 2026 00:00:00 GMT"}, GitHubModelsRetiredError),
        (404, "", {"deprecation": "@1777939200"}, GitHubModelsRetiredError),
        (409, envelope("conflict", "Conflict"), {}, APIStatusError),
    ],
)
def test_each_status_maps_to_one_meaning(status, body, headers, cls):
    error = error_from_status(status, body, headers, SETTINGS)
    assert type(error) is cls


def test_azure_deployment_not_found_is_model_not_found():
    settings = resolve_settings(
        provider="azure", endpoint="https://r.x", model="m", token="k" * 10, env={}
    )
    error = error_from_status(404, envelope("DeploymentNotFound", "no such"), {}, settings)
    assert isinstance(error, ModelNotFoundError)


def test_retirement_headers_mean_nothing_for_other_providers():
    settings = resolve_settings(provider="openai", endpoint="http://h", model="m", env={})
    assert not isinstance(error_from_status(410, "", {}, settings), GitHubModelsRetiredError)


def test_fill_completion_body_leaves_a_complete_answer_alone():
    body = json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()
    assert fill_completion_body(body) is None


def test_fill_completion_body_adds_what_a_minimal_server_omits():
    body = json.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
    ).encode()
    filled = json.loads(fill_completion_body(body))
    assert filled["object"] == "chat.completion"
    assert filled["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert filled["choices"][0]["message"]["content"] == "hi"


def test_stream_assembler_reads_githubs_sequence():
    assembler = StreamAssembler()
    events = [
        {"choices": [], "created": 0, "id": "", "object": "", "prompt_filter_results": []},
        {
            "id": "c1",
            "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        },
        {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {
            "id": "c1",
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": None}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        },
    ]
    assert [assembler.feed(e) for e in events] == [None, None, "Hel", "lo", None]
    done = assembler.finish()
    assert (done.text, done.finish_reason, done.usage.total_tokens) == ("Hello", "stop", 5)
    assert (done.model, done.id) == ("m", "c1")


def test_stream_assembler_refuses_an_unfinished_stream():
    assembler = StreamAssembler()
    assembler.feed({"choices": [{"index": 0, "delta": {"content": "par"}}]})
    with pytest.raises(StreamError) as caught:
        assembler.finish()
    assert caught.value.text == "par"


def test_stream_assembler_refuses_an_error_event():
    with pytest.raises(StreamError, match="overloaded"):
        StreamAssembler().feed({"error": {"message": "overloaded"}})


def test_an_unparseable_answer_is_an_invalid_response_and_not_retried():
    from sigla._retry import next_delay
    from sigla._translate import translate
    from sigla.errors import InvalidResponseError

    class ResponseValidationError(Exception):  # named like mistralai's, as translate matches
        pass

    error = translate(ResponseValidationError("body.usage Field required"), SETTINGS)
    assert isinstance(error, InvalidResponseError)
    assert "sigla doctor" in str(error)
    assert next_delay(error, 0, max_retries=3, max_retry_wait=60) is None
    streamed = translate(ResponseValidationError("x"), SETTINGS, streaming=True)
    assert isinstance(streamed, StreamError)


def test_a_404_without_a_model_code_points_at_the_endpoint():
    error = error_from_status(404, envelope("NotFound", "Not Found"), {}, SETTINGS)
    assert type(error) is APIStatusError
    assert "endpoint" in str(error) and "sigla doctor" in str(error)


# -- pins: what the answer parsing must never do


class _Obj:
    """An SDK-like object: attributes from keywords."""

    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)


def _choice(index: int, text: str, finish: str = "stop") -> _Obj:
    return _Obj(index=index, message=_Obj(content=text), finish_reason=finish)


def test_only_the_first_choice_is_the_answer():
    from sigla._core import completion_from_sdk

    response = _Obj(choices=[_choice(0, "first"), _choice(1, "second", "length")], usage=None)
    done = completion_from_sdk(response)
    assert (done.text, done.finish_reason) == ("first", "stop")
    assembler = StreamAssembler()
    assembler.feed({"choices": [{"index": 1, "delta": {"content": "other"}}]})
    assembler.feed(
        {"choices": [{"index": 0, "delta": {"content": "mine"}, "finish_reason": "stop"}]}
    )
    assert assembler.finish().text == "mine"


def test_all_zero_usage_is_unknown_not_real():
    from sigla._core import completion_from_sdk

    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert completion_from_sdk(_Obj(choices=[_choice(0, "x")], usage=zero)).usage is None


def test_a_missing_total_is_the_sum_of_its_parts():
    from sigla._core import completion_from_sdk

    usage = completion_from_sdk(
        _Obj(choices=[_choice(0, "x")], usage={"prompt_tokens": 3, "completion_tokens": 4})
    ).usage
    assert usage is not None and (usage.prompt_tokens, usage.total_tokens) == (3, 7)


@pytest.mark.parametrize("temperature", [0, 0.5, 1.0, 1.5, 2.0])
def test_temperatures_up_to_two_are_accepted(temperature):
    from sigla._core import check_sampling

    check_sampling(temperature=temperature)


@pytest.mark.parametrize("temperature", [-0.01, 2.01, 7])
def test_temperatures_past_two_are_refused(temperature):
    from sigla._core import check_sampling
    from sigla.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="temperature"):
        check_sampling(temperature=temperature)
