"""Odd input fails with a typed sigla error before anything is sent.

Call arguments (prompt, system, messages, sampling options, stop, seed) raise
``InvalidRequestError``; settings given to ``GitHubLLM(...)`` raise ``ConfigurationError``.
Each message names the argument; the whole prose is not pinned.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from conftest import TOKEN

from sigla._config import resolve_settings
from sigla._translate import translate
from sigla.llm import (
    ConfigurationError,
    GitHubLLM,
    InvalidRequestError,
    LLMError,
    RateLimits,
)

pytestmark = pytest.mark.e2e

SURROGATE = "\ud800"


def refusals(llm: GitHubLLM, **kwargs: Any) -> list[LLMError]:
    """The error each entry point (sync and async, plain and streaming) raises for kwargs."""

    async def acomplete() -> None:
        await llm.acomplete(**kwargs)

    async def achat() -> None:
        await llm.achat(**kwargs)

    async def astream() -> None:
        async for _ in llm.astream(**kwargs):
            pass

    calls = [
        lambda: llm.complete(**kwargs),
        lambda: llm.chat(**kwargs),
        lambda: list(llm.stream(**kwargs)),
        lambda: asyncio.run(acomplete()),
        lambda: asyncio.run(achat()),
        lambda: asyncio.run(astream()),
    ]
    errors = []
    for call in calls:
        with pytest.raises(LLMError) as caught:
            call()
        errors.append(caught.value)
    return errors


# ---------------------------------------------------------------- call arguments

HUGE = 10**5000  # has no repr on Python >= 3.10.7: the message must still be built


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"prompt": "hi", "stop": 123}, "stop"),
        ({"prompt": "hi", "stop": b"END"}, "stop"),
        ({"prompt": "hi", "stop": ["a", 1]}, "stop[1]"),
        ({"prompt": "hi", "stop": ["ok", SURROGATE]}, "stop[1]"),
        ({"prompt": "hi", "stop": SURROGATE}, "stop"),
        ({"messages": 1.5}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": {"role": "user", "content": "hi"}}, "messages"),
        ({"messages": [{"role": "user"}]}, "content"),
        ({"messages": [{"role": "user", "content": None}]}, "content"),
        ({"messages": [{"role": "user", "content": 1}]}, "messages[0]['content']"),
        ({"messages": [{"role": "user", "content": ["text"]}]}, "messages[0]['content']"),
        ({"messages": [{"role": "system", "content": b"x"}]}, "messages[0]['content']"),
        ({"messages": [{"role": "assistant"}]}, "content"),
        ({"messages": [{"role": 1, "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": "a" + SURROGATE}]}, "messages[0]['content']"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": SURROGATE}]}]},
            "messages[0]['content'][0]['text']",
        ),
        ({"prompt": SURROGATE}, "prompt"),
        ({"prompt": b"hi"}, "prompt"),
        ({"prompt": "hi", "system": SURROGATE}, "system"),
        ({"prompt": "hi", "system": 123}, "system"),
        ({"prompt": "hi", "seed": "1"}, "seed"),
        ({"prompt": "hi", "seed": True}, "seed"),
        ({"prompt": "hi", "seed": 1.0}, "seed"),
        ({"prompt": "hi", "seed": 2**63}, "seed"),
        ({"prompt": "hi", "max_tokens": 10**100}, "max_tokens"),
        ({"prompt": "hi", "max_tokens": 2**31}, "max_tokens"),
        pytest.param({"prompt": "hi", "max_tokens": HUGE}, "max_tokens", id="max_tokens-huge"),
        ({"prompt": "hi", "max_tokens": True}, "max_tokens"),
        ({"prompt": "hi", "max_tokens": 5.0}, "max_tokens"),
        ({"prompt": "hi", "temperature": math.nan}, "temperature"),
        ({"prompt": "hi", "temperature": -0.1}, "temperature"),
        ({"prompt": "hi", "top_p": math.inf}, "top_p"),
        ({"prompt": "hi", "top_p": math.nan}, "top_p"),
        ({"prompt": "hi", "top_p": "0.5"}, "top_p"),
    ],
)
def test_an_odd_call_argument_is_an_invalid_request_naming_it(fake, llm, kwargs, named):
    errors = refusals(llm, **kwargs)
    assert all(type(error) is InvalidRequestError for error in errors)
    assert named in str(errors[0])
    assert len({str(error) for error in errors}) == 1  # one core: every path says the same
    assert fake.requests == []


def test_the_allowed_values_are_said_with_the_refusal(llm):
    said = str(refusals(llm, prompt="hi", max_tokens=10**100)[0])
    assert "2147483647" in said
    assert "0 and 2" in str(refusals(llm, prompt="hi", temperature=math.nan)[0])
    assert "list of str" in str(refusals(llm, prompt="hi", stop=123)[0])
    assert "surrogate" in str(refusals(llm, prompt=SURROGATE)[0])


def test_the_bounds_themselves_are_sent(fake, llm):
    llm.chat("hi", max_tokens=2**31 - 1, seed=2**63 - 1, temperature=0, top_p=1)
    llm.chat("hi", seed=-(2**63), temperature=2, top_p=0, max_tokens=1)
    first, second = (request.body for request in fake.requests)
    assert (first["max_tokens"], first["seed"]) == (2**31 - 1, 2**63 - 1)
    assert second["seed"] == -(2**63)


@pytest.mark.parametrize("role", ["User", "USER", "uSeR"])
def test_a_role_in_any_case_is_sent_lower_case(fake, llm, role):
    llm.chat(
        messages=[
            {"role": "SYSTEM", "content": "You count."},
            {"role": role, "content": "one"},
            {"role": "Assistant", "content": "two"},
            {"role": role, "content": "three?"},
        ]
    )
    roles = [m["role"] for m in fake.last_request.body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_system_with_messages_is_prepended_not_dropped(fake, llm):
    llm.chat(system="You are terse.", messages=[{"role": "user", "content": "hi"}])
    assert fake.last_request.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
    ]


def test_content_parts_and_a_tool_call_turn_without_text_are_accepted(fake, llm):
    llm.chat(
        messages=(  # any sequence, not only a list
            {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "content": "4", "tool_call_id": "c1"},
        )
    )
    sent = fake.last_request.body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[0]["content"] == [{"type": "text", "text": "What is 2+2?"}]


def test_a_request_the_sdk_refuses_names_the_field(fake, llm):
    """What sigla lets through and the SDK refuses names the field, not 'Unmarshaller'."""
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "tool", "content": "4", "tool_call_id": 5},
    ]
    for error in refusals(llm, messages=messages):
        assert type(error) is InvalidRequestError
        assert "tool_call_id" in str(error)
        assert "[1]" in str(error)
        assert "Unmarshaller" not in str(error)
    assert fake.requests == []


# ---------------------------------------------------------------- the SDK's validation errors

SETTINGS = resolve_settings(token="t" * 12, env={})


def test_a_pydantic_validation_error_becomes_its_field_path_and_reason():
    pydantic = pytest.importorskip("pydantic")

    class Message(pydantic.BaseModel):
        role: str
        content: str

    unmarshaller = pydantic.create_model("Unmarshaller", body=(list[Message], ...))
    with pytest.raises(pydantic.ValidationError) as raised:
        unmarshaller(body=[{"role": "user", "content": "ok"}, {"role": "user", "content": 1}])
    error = translate(raised.value, SETTINGS)
    assert type(error) is InvalidRequestError
    assert "[1].content" in str(error)
    assert "valid string" in str(error)
    assert "Unmarshaller" not in str(error) and "body" not in str(error)


def test_a_validation_error_is_read_by_duck_typing():
    class ValidationError(ValueError):  # named like pydantic's, as translate matches
        def errors(self) -> list[dict[str, Any]]:
            return [
                {"loc": ("messages", 2, "UserMessage", "content", "str"), "msg": "Bad text"},
                {"loc": ("messages", 2, "content", "list[str]"), "msg": "Bad list"},
                {"loc": ("temperature",), "msg": "Too hot", "input": TOKEN},
            ]

    said = str(translate(ValidationError("1 validation error for Unmarshaller"), SETTINGS))
    assert "messages[2].content: Bad text" in said
    assert "temperature: Too hot" in said
    assert "Bad list" not in said  # one reason per field
    assert TOKEN not in said  # the offending value is never shown


def test_a_validation_error_without_errors_keeps_its_first_line():
    class ValidationError(ValueError):
        def errors(self) -> list[Any]:
            raise TypeError("no")

    said = str(translate(ValidationError("1 validation error for X\nmore"), SETTINGS))
    assert "1 validation error for X" in said and "more" not in said


# ---------------------------------------------------------------- settings of GitHubLLM(...)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"timeout": math.inf}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0.0009}, "timeout"),
        ({"timeout": 1e308}, "timeout"),
        ({"timeout": 86_400.5}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"timeout": True}, "timeout"),
        pytest.param({"timeout": HUGE}, "timeout", id="timeout-huge"),
        ({"max_retries": math.inf}, "max_retries"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 2.5}, "max_retries"),
        ({"max_retries": 2.0}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"max_retries": 101}, "max_retries"),
        ({"max_retries": "3"}, "max_retries"),
        ({"max_retry_wait": math.inf}, "max_retry_wait"),
        ({"max_retry_wait": math.nan}, "max_retry_wait"),
        ({"max_retry_wait": -1}, "max_retry_wait"),
        ({"max_retry_wait": 86_401}, "max_retry_wait"),
        ({"endpoint": "http://[::1"}, "endpoint"),
        ({"endpoint": "http://127.0.0.1:99999"}, "endpoint"),
        ({"endpoint": "http://127.0.0.1:port"}, "endpoint"),
        ({"endpoint": "http://127.0.0.1:0"}, "endpoint"),
        ({"endpoint": "http://exa mple.com"}, "endpoint"),
        ({"endpoint": "http://host\x00/x"}, "endpoint"),
        ({"endpoint": "http://host" + SURROGATE}, "endpoint"),
        ({"endpoint": "http://"}, "endpoint"),
        ({"endpoint": "http://:8080/inference"}, "endpoint"),
        ({"limits": "x"}, "limits"),
        ({"limits": {"requests_per_minute": 1}}, "limits"),
        ({"sleep": None}, "sleep"),
        ({"async_sleep": 1}, "async_sleep"),
        ({"clock": "now"}, "clock"),
    ],
)
def test_an_odd_setting_is_a_configuration_error_naming_it(fake, make_llm, kwargs, named):
    with pytest.raises(ConfigurationError) as caught:
        make_llm(**kwargs)
    assert type(caught.value) is ConfigurationError
    assert named in str(caught.value)
    assert fake.requests == []


def test_the_timeout_bounds_are_said_and_accepted(make_llm):
    with pytest.raises(ConfigurationError, match="86400"):
        make_llm(timeout=math.inf)
    assert make_llm(timeout=0.001).settings.timeout == 0.001
    assert make_llm(timeout=86_400).settings.timeout == 86_400
    assert make_llm(max_retries=0, max_retry_wait=0).settings.max_retries == 0
    assert make_llm(max_retries=100, max_retry_wait=86_400).settings.max_retries == 100


@pytest.mark.parametrize("raw", ["inf", "nan", "0", "-5", "1e308", "soon"])
def test_an_odd_timeout_from_the_environment_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("SIGLA_LLM_TIMEOUT", raw)
    with pytest.raises(ConfigurationError, match="SIGLA_LLM_TIMEOUT"):
        GitHubLLM(token=TOKEN)


def test_an_odd_endpoint_from_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("SIGLA_LLM_ENDPOINT", "http://[::1/inference")
    with pytest.raises(ConfigurationError, match="SIGLA_LLM_ENDPOINT"):
        GitHubLLM(token=TOKEN)


def test_a_password_in_a_malformed_endpoint_is_not_echoed():
    with pytest.raises(ConfigurationError) as caught:
        GitHubLLM(token=TOKEN, endpoint="http://user:hunter2secret@[::1/inference")
    assert "hunter2secret" not in str(caught.value)
    assert "endpoint" in str(caught.value)


@pytest.mark.parametrize("value", [True, 0, -1, 1.5, "10", pytest.param(-HUGE, id="-huge")])
def test_rate_limits_refuse_anything_but_a_positive_int(value):
    with pytest.raises(InvalidRequestError, match="requests_per_minute"):
        RateLimits(requests_per_minute=value)
