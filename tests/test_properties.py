"""Properties over every public argument: a value comes back, or a sigla ``LLMError``.

Generated endpoints are only ever given to ``GitHubLLM(...)``, which sends nothing; calls go
to one loopback double per module, with ``max_retries=0`` and a sleep that does not wait.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import TOKEN
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sigla.llm import (
    Completion,
    ConfigurationError,
    GitHubLLM,
    InvalidRequestError,
    LLMError,
    RateLimits,
)
from sigla.testing import FakeGitHubModels


def examples(n: int) -> settings:
    """Hypothesis settings for ``n`` examples: the three properties take ~10 s together."""
    # clean_environment (autouse, function-scoped) only clears variables once; no example
    # changes them, so sharing it between examples is safe.
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture(scope="module")
def double() -> Iterator[FakeGitHubModels]:
    with FakeGitHubModels() as fake:
        yield fake


def no_wait(seconds: float) -> None:
    pass


async def no_wait_async(seconds: float) -> None:
    pass


# ---------------------------------------------------------------- strategies

# Any unicode, lone surrogates included (hypothesis leaves them out unless asked).
texts = st.text(st.characters(exclude_categories=()), max_size=12) | st.sampled_from(
    ["", "\ud800", "a\udfffb", "\x00", "END"]
)
huge = st.sampled_from([10**5000, -(10**5000), 2**31, 2**63, 10**100])
numbers = (
    st.floats()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | huge
    | st.sampled_from([0, 1, 2, 0.5, 1e-300, 1e308, -0.0])
)
oddities = (
    st.none()
    | st.booleans()
    | numbers
    | texts
    | st.binary(max_size=4)
    | st.lists(st.integers() | texts, max_size=2)
    | st.dictionaries(texts, texts, max_size=2)
)


def mostly(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` five times in six, so that most calls reach the double; else ``odd``."""
    return st.integers(0, 5).flatmap(lambda n: odd if n == 0 else valid)


clean = st.text(max_size=12)  # hypothesis's default alphabet: no lone surrogates
roles = mostly(
    st.sampled_from(["system", "user", "assistant", "User", "ASSISTANT"]),
    st.sampled_from(["tool", "developer", "wizard"]) | texts | oddities,
)
parts = st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "text": texts}) | oddities, max_size=2
)
contents = mostly(clean, texts | parts | oddities)
messages = mostly(
    st.lists(
        mostly(
            st.fixed_dictionaries({"role": roles, "content": contents}),
            st.fixed_dictionaries({"role": roles}, optional={"content": contents, "name": texts})
            | oddities,
        ),
        min_size=1,
        max_size=3,
    ),
    oddities,
)
# (prompt, messages): one of the two, mostly
inputs = mostly(
    st.tuples(clean, st.none()) | st.tuples(st.none(), messages),
    st.tuples(st.none() | texts | oddities, st.none() | messages),
)
stops = mostly(
    st.none() | clean | st.lists(clean, max_size=3), st.lists(texts | numbers) | oddities
)
endpoints = (
    st.none()
    | texts
    | st.builds(
        lambda scheme, userinfo, host, port, path: f"{scheme}{userinfo}{host}{port}{path}",
        st.sampled_from(["http://", "https://", "HTTP://", "ftp://", ""]),
        st.sampled_from(["", "user:secret@", "@", ":@"]),
        st.sampled_from(["127.0.0.1", "localhost", "[::1]", "[::1", "[zz]", "", "ex ample"])
        | texts,
        st.sampled_from(["", ":8080", ":0", ":99999", ":x", ":-1", ":"]),
        st.sampled_from(["", "/inference", "/v1", "/?api-version=1", "/#x", "/%zz"]) | texts,
    )
)
rate_limits = st.none() | oddities | st.tuples(oddities, oddities, oddities)
callables = st.sampled_from([no_wait, None, 1, "sleep"])
sampling = st.none() | numbers | oddities


def option(low: float, high: float, *, whole: bool = False) -> st.SearchStrategy[Any]:
    """An option within its range (or None) mostly, anything else sometimes."""
    if whole:
        return mostly(st.none() | st.integers(int(low), int(high)), sampling)
    return mostly(st.none() | st.floats(low, high), sampling)


MODES = ["complete", "chat", "stream", "acomplete", "achat", "astream"]


def call(llm: GitHubLLM, mode: str, **kwargs: Any) -> Any:
    """One call in one of the six ways, its result or stream pieces returned."""

    async def consume() -> list[str]:
        return [piece async for piece in llm.astream(**kwargs)]

    if mode == "stream":
        return list(llm.stream(**kwargs))
    if mode == "astream":
        return asyncio.run(consume())
    if mode.startswith("a"):
        return asyncio.run(getattr(llm, mode)(**kwargs))
    return getattr(llm, mode)(**kwargs)


def build(**kwargs: Any) -> GitHubLLM:
    """``GitHubLLM(...)``, with ``limits`` given as a tuple built into a ``RateLimits`` first."""
    limits = kwargs.get("limits")
    if isinstance(limits, tuple):
        kwargs["limits"] = RateLimits(*limits)
    return GitHubLLM(token=TOKEN, **kwargs)


# ---------------------------------------------------------------- properties


@examples(300)
@given(
    endpoint=endpoints,
    timeout=sampling,
    max_retries=sampling,
    max_retry_wait=sampling,
    limits=rate_limits,
    temperature=sampling,
    sleep=callables,
    total_timeout=sampling,
    max_response_bytes=sampling,
)
def test_building_a_client_gives_a_client_or_a_sigla_error(
    endpoint,
    timeout,
    max_retries,
    max_retry_wait,
    limits,
    temperature,
    sleep,
    total_timeout,
    max_response_bytes,
):
    try:
        llm = build(
            endpoint=endpoint,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            limits=limits,
            temperature=temperature,
            sleep=sleep,
            total_timeout=total_timeout,
            max_response_bytes=max_response_bytes,
        )
    except (ConfigurationError, InvalidRequestError):
        return
    s = llm.settings
    assert 0.001 <= s.timeout <= 86_400 and math.isfinite(s.timeout)
    assert type(s.max_retries) is int and 0 <= s.max_retries <= 100
    assert 0 <= s.max_retry_wait <= 86_400
    assert 0 <= llm.temperature <= 2
    assert llm.total_timeout is None or 0 < llm.total_timeout < 1e7
    assert s.max_response_bytes >= 1024
    assert s.endpoint.startswith(("http://", "https://"))
    assert "secret" not in repr(llm)


@examples(150)
@given(
    mode=st.sampled_from(MODES),
    given_input=inputs,
    system=mostly(st.none() | clean, texts | oddities),
    temperature=option(0, 2),
    top_p=option(0, 1),
    max_tokens=option(1, 64, whole=True),
    stop=stops,
    seed=option(-(2**63), 2**63 - 1, whole=True),
)
def test_a_call_gives_a_value_or_a_sigla_error(
    double, mode, given_input, system, temperature, top_p, max_tokens, stop, seed
):
    prompt, messages = given_input
    llm = GitHubLLM(endpoint=double.url, token=TOKEN, max_retries=0, sleep=no_wait)
    sent = len(double.requests)
    try:
        result = call(
            llm,
            mode,
            prompt=prompt,
            system=system,
            messages=messages,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            stop=stop,
            seed=seed,
        )
    except InvalidRequestError as error:
        event(str(error)[:40])
        assert len(double.requests) == sent  # refused before sending
        return
    except LLMError as error:
        event(type(error).__name__)
        return
    event("value")
    if mode.endswith("complete"):
        assert isinstance(result, Completion)
    elif mode.endswith("chat"):
        assert isinstance(result, str)
    else:
        assert all(isinstance(piece, str) for piece in result)
    body = double.last_request.body
    assert all(m["role"] in ("system", "user", "assistant", "tool") for m in body["messages"])


@examples(100)
@given(
    mode=st.sampled_from(MODES),
    timeout=option(0.001, 86_400),
    max_retry_wait=option(0, 86_400),
    limits=rate_limits,
)
def test_a_call_with_any_settings_gives_a_value_or_a_sigla_error(
    double, mode, timeout, max_retry_wait, limits
):
    try:
        llm = build(
            endpoint=double.url,
            timeout=timeout,
            max_retries=0,
            max_retry_wait=max_retry_wait,
            limits=limits,
            sleep=no_wait,
            async_sleep=no_wait_async,
        )
    except (ConfigurationError, InvalidRequestError):
        return
    try:
        call(llm, mode, prompt="hi", max_tokens=8)
    except LLMError as error:
        event(type(error).__name__)
