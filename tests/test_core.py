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


# -- the I/O-free pieces, one by one


def test_each_providers_wire_profile():
    from sigla._core import Wire, wire_for

    github = wire_for(SETTINGS)
    assert github == Wire(seed_field="seed", stream_usage=True, query=(), userinfo=None)
    mistral = wire_for(resolve_settings(provider="mistral", token="k" * 10, env={}))
    assert (mistral.seed_field, mistral.stream_usage) == ("random_seed", False)
    azure = wire_for(
        resolve_settings(
            provider="azure",
            endpoint="https://u:pw@r.x/models?key=k1",
            model="m",
            token="k" * 10,
            api_version="2025-01-01",
            max_response_bytes=4096,
            env={},
        )
    )
    assert (azure.seed_field, azure.stream_usage, azure.max_response_bytes) == ("seed", True, 4096)
    assert [(k, v.reveal()) for k, v in azure.query] == [
        ("key", "k1"),
        ("api-version", "2025-01-01"),
    ]
    assert azure.userinfo is not None and azure.userinfo.reveal() == "u:pw"


def test_fill_completion_body_fills_only_what_is_missing():
    from sigla._core import fill_completion_body

    bare = json.dumps({"choices": [], "id": "c7", "model": "m", "created": 5}).encode()
    filled = json.loads(fill_completion_body(bare))
    assert filled == {
        "choices": [],
        "id": "c7",
        "model": "m",
        "created": 5,
        "object": "chat.completion",
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
    assert b" " not in fill_completion_body(bare)  # compact, as the SDK's own bodies are
    minimal = json.loads(fill_completion_body(b'{"choices":[],"usage":null}'))
    assert (minimal["id"], minimal["model"], minimal["created"]) == ("", "", 0)
    assert minimal["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    real = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    kept = json.loads(fill_completion_body(json.dumps({"choices": [], "usage": real}).encode()))
    assert kept["usage"] == real and kept["object"] == "chat.completion"
    spaced = b'{"choices": [], "usage" : {"total_tokens": 1}, "object" :"x", "created": 1}'
    assert fill_completion_body(spaced) is None  # every field there, however spaced
    for broken in (b"not json", b"[1]", b'{"choices": null}', b'{"choices": {}}', b"{}"):
        assert fill_completion_body(broken) is None


def test_message_content_of_every_shape_becomes_text():
    from sigla._core import completion_from_sdk

    chunks = [{"type": "text", "text": "a"}, _Obj(text="b"), {"text": 3}, _Obj(image="x"), "c"]
    assert completion_from_sdk(_Obj(choices=[_choice(0, chunks)])).text == "ab"
    for nothing in (None, 7, {"text": "x"}):
        response = _Obj(choices=[_Obj(message=_Obj(content=nothing), finish_reason=None)])
        done = completion_from_sdk(response)
        assert (done.text, done.finish_reason) == ("", None)
    assert completion_from_sdk(_Obj(choices=[_Obj(finish_reason="stop")])).text == ""


def test_an_answer_without_choices_or_fields_is_empty_not_an_error():
    from sigla._core import Completion, completion_from_sdk

    assert completion_from_sdk(_Obj()) == Completion("", None, None, None, None)
    assert completion_from_sdk(_Obj(choices=None, model="", id="")) == Completion(
        "", None, None, None, None
    )
    done = completion_from_sdk(
        _Obj(choices=[_choice(0, "x", "length")], model="m1", id="id1", usage=None)
    )
    assert done == Completion("x", "length", None, "m1", "id1")
    assert str(done) == "x"


def test_usage_is_read_from_attributes_or_keys_and_only_ints_count():
    from sigla._core import Usage, completion_from_sdk

    def usage(raw: object) -> Usage | None:
        return completion_from_sdk(_Obj(choices=[_choice(0, "x")], usage=raw)).usage

    assert usage(_Obj(prompt_tokens=2, completion_tokens=3, total_tokens=9)) == Usage(2, 3, 9)
    assert usage({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 9}) == Usage(2, 3, 9)
    assert usage({"prompt_tokens": "2", "completion_tokens": 3.0}) is None
    assert usage({"prompt_tokens": "2", "completion_tokens": 3}) == Usage(0, 3, 3)
    assert usage({"total_tokens": 4}) == Usage(0, 0, 4)
    assert usage(_Obj()) is None


def test_the_assembler_keeps_what_earlier_chunks_said():
    from sigla._core import Completion, Usage

    assembler = StreamAssembler()
    feeds = [
        {"id": "c1", "model": "m1", "usage": {"prompt_tokens": 1, "total_tokens": 1}},
        {"choices": ["junk", {"delta": {"content": "a"}}, {"index": 0, "delta": "junk"}]},
        {"id": "", "model": None, "choices": [{"delta": None, "finish_reason": "length"}]},
        {"usage": {"prompt_tokens": 0}, "choices": None},
    ]
    assert [assembler.feed(chunk) for chunk in feeds] == [None, "a", None, None]
    assert assembler.events == 4
    assert assembler.finish() == Completion("a", "length", Usage(1, 0, 1), "m1", "c1")


def test_the_assembler_refuses_what_is_not_an_answer_and_keeps_the_text():
    from sigla.errors import InvalidResponseError

    assembler = StreamAssembler()
    assembler.feed({"choices": [{"index": 0, "delta": {"content": "par"}}]})
    with pytest.raises(StreamError, match="object") as caught:
        assembler.feed(["not", "an", "object"])
    assert caught.value.text == "par"
    with pytest.raises(StreamError, match="overloaded") as caught:
        assembler.feed({"error": "overloaded"})
    assert caught.value.text == "par"
    with pytest.raises(StreamError, match="busy") as caught:
        assembler.feed({"error": {"code": "c9", "message": "busy"}})
    assert "c9" not in str(caught.value)  # the service's message, not the raw object
    assert caught.value.text == "par"
    with pytest.raises(InvalidResponseError):
        StreamAssembler().finish()
    with pytest.raises(StreamError) as unfinished:
        assembler.finish()
    assert "3 characters" in str(unfinished.value)


def test_each_kind_of_sse_event():
    from sigla._core import SSE_DONE, parse_sse_event

    assert parse_sse_event(_Obj(data="")) == {}
    assert parse_sse_event(_Obj(data=None)) == {}
    assert parse_sse_event(_Obj(data=" [DONE]\n")) is SSE_DONE
    assert parse_sse_event(_Obj(data='{"a": [1]}')) == {"a": [1]}
    with pytest.raises(StreamError, match="not JSON") as caught:
        parse_sse_event(_Obj(data="{oops" + "x" * 500))
    assert "x" * 195 in str(caught.value) and "x" * 196 not in str(caught.value)  # 200 shown


def test_only_a_content_filter_finish_is_refused():
    from sigla._core import Completion, check_filtered

    fine = Completion("t", "stop", None, None, None)
    assert check_filtered(fine) is fine
    with pytest.raises(ContentFilteredError) as caught:
        check_filtered(Completion("partial", "content_filter", None, None, None))
    assert caught.value.text == "partial" and "content_filter" in str(caught.value)
