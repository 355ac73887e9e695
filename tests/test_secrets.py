"""Credentials never leave sigla in clear: not in errors, what errors hold, frames, logs, reprs.

Error reporters (Sentry, pytest --showlocals, rich tracebacks) render an exception's text,
its chain (``__cause__``/``__context__``), the attributes of each exception and the locals
of every frame of their tracebacks; debuggers show attributes of attributes. So each test
walks that whole graph from a raised sigla error and searches it for the credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import reprlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKEN
from test_llm import CASES as LLM_CASES

from sigla._config import resolve_settings
from sigla._secret import Secret, fingerprint
from sigla.llm import ConfigurationError, GitHubLLM, LLMError

URL_PASSWORD = "hunter2-url-password-0123"
URL_KEY = "sk-url-key-0123456789abcdef"
QUERY_KEY = "qk-query-key-0123456789abcdef"
SECRETS = (TOKEN, URL_PASSWORD, URL_KEY, QUERY_KEY)

_SCALARS = (int, float, bool, type(None), bytes, str)
_TESTS = str(Path(__file__).parent)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken repr is not a leak
        return f"<repr failed: {type(exc).__name__}>"


def reachable_text(error: BaseException, depth: int = 4) -> Iterator[str]:
    """Every text an error reporter or a debugger could show from ``error``."""
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(error, 0)]
    while stack:
        obj, level = stack.pop()
        if id(obj) in seen or level > depth:
            continue
        seen.add(id(obj))
        if isinstance(obj, (str, bytes)):
            yield obj.decode("latin-1") if isinstance(obj, bytes) else obj
            continue
        if isinstance(obj, BaseException):
            yield str(obj)
            yield _safe_repr(obj)
            stack += [(obj.__cause__, level), (obj.__context__, level), (obj.args, level)]
            tb = obj.__traceback__
            while tb is not None:  # frames: their locals as the reporters render them
                if tb.tb_frame.f_code.co_filename.startswith(_TESTS):
                    tb = tb.tb_next  # the caller's own frames hold what the caller gave
                    continue
                for name, value in tb.tb_frame.f_locals.items():
                    yield f"{name}={_safe_repr(value)}"
                    if isinstance(value, BaseException):
                        stack.append((value, level + 1))
                tb = tb.tb_next
        elif isinstance(obj, dict):
            stack += [(k, level + 1) for k in obj] + [(v, level + 1) for v in obj.values()]
            continue
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += [(item, level + 1) for item in obj]
            continue
        elif not isinstance(obj, _SCALARS):
            yield _safe_repr(obj)
        attributes = getattr(obj, "__dict__", None)
        if isinstance(attributes, dict):
            stack += [(v, level + 1) for v in attributes.values()]
        for slot in getattr(type(obj), "__slots__", ()):
            if slot != "_value" or not isinstance(obj, Secret):  # a Secret holds it: fine
                stack.append((getattr(obj, slot, None), level + 1))


def assert_nothing_shows(error: BaseException) -> None:
    texts = list(reachable_text(error))
    assert texts, "the walk found nothing: it is broken"
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret[:6]}… leaked in: {reprlib.repr(text)}"


def test_the_walk_finds_a_credential_held_anywhere_it_looks():
    """The checker itself must be able to fail: a chained cause, an attribute, a local."""

    namespace: dict[str, Any] = {}
    code = "def raise_with_local(token):\n    raise RuntimeError('boom')\n"
    exec(compile(code, "<not a test file>", "exec"), namespace)  # a frame outside tests/
    raise_with_local = namespace["raise_with_local"]

    for make in (
        lambda: LLMError("x").with_traceback(None),
        lambda: _chained(ValueError(f"Bearer {TOKEN}")),
        lambda: _with_attribute({"headers": {"authorization": f"Bearer {TOKEN}"}}),
    ):
        error = make()
        if error.args == ("x",):
            continue
        with pytest.raises(AssertionError):
            assert_nothing_shows(error)
    try:
        raise_with_local(TOKEN)
    except RuntimeError as error:
        with pytest.raises(AssertionError):
            assert_nothing_shows(error)


def _chained(cause: BaseException) -> LLMError:
    error = LLMError("wrapped")
    error.__cause__ = cause
    return error


def _with_attribute(value: Any) -> LLMError:
    error = LLMError("holder")
    error.response = value  # type: ignore[attr-defined]
    return error


# Every fault of the double, through chat and stream (test_llm's list, one definition).
CASES = LLM_CASES


def _failure(llm: GitHubLLM, call: str, mode: str) -> LLMError:
    async def consume() -> None:
        if call == "chat":
            await llm.achat("hi")
        else:
            async for _ in llm.astream("hi"):
                pass

    try:
        if mode == "async":
            asyncio.run(consume())
        elif call == "chat":
            llm.chat("hi")
        else:
            for _ in llm.stream("hi"):
                pass
    except LLMError as error:
        return error
    raise AssertionError("the call did not fail")


@pytest.mark.parametrize(("call", "fault", "params"), CASES, ids=[f"{c}-{f}" for c, f, _ in CASES])
def test_no_error_reachable_object_holds_the_token(fake, make_llm, call, fault, params, mode):
    fake.fail(fault, **params)
    error = _failure(make_llm(max_retries=1), call, mode)
    assert error.__cause__ is None and error.__context__ is None
    assert_nothing_shows(error)


def test_an_echoed_token_is_scrubbed_from_every_attribute(fake, make_llm, mode):
    fake.fail("server_error", times=None, message=f"bad token {TOKEN} here")
    error = _failure(make_llm(max_retries=0), "chat", mode)
    assert "***" in str(error)
    assert_nothing_shows(error)


def test_models_errors_hold_no_token(make_llm):
    # Nothing listens on port 9: the HTTP library's error holds the request and its
    # Authorization header, which must not be reachable from sigla's error.
    llm = make_llm(provider="openai", endpoint="http://127.0.0.1:9/v1", model="m", max_retries=0)
    with pytest.raises(LLMError) as caught:
        llm.models()
    assert_nothing_shows(caught.value)


def test_configuration_errors_hold_no_token_in_their_frames(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    for kwargs in ({"provider": "nope"}, {"token": TOKEN, "provider": "nope"}):
        with pytest.raises(ConfigurationError) as caught:
            GitHubLLM(**kwargs)
        assert_nothing_shows(caught.value)


def _endpoints(fake: Any) -> list[str]:
    host = fake.base_url.split("://", 1)[1]
    return [
        f"http://user:{URL_PASSWORD}@{host}/inference",
        f"http://{URL_KEY}@{host}/inference",
        f"http://{host}/inference?key={QUERY_KEY}",
    ]


def test_a_credential_in_the_endpoint_url_shows_nowhere(fake, make_llm, caplog):
    caplog.set_level(logging.DEBUG)
    for endpoint in _endpoints(fake):
        llm = make_llm(endpoint=endpoint, max_retries=0)
        shown = [repr(llm), repr(llm.settings), str(llm.settings), llm.endpoint]
        shown.append(llm.settings.display_endpoint)
        fake.fail("server_error")
        error = _failure(llm, "chat", "sync")
        assert_nothing_shows(error)
        try:
            llm.chat("hi")  # a successful call logs its request line (httpx INFO) too
        except LLMError as refused:  # userinfo goes as Basic auth: the double wants a bearer
            assert_nothing_shows(refused)
        shown += [record.getMessage() for record in caplog.records]
        for text in shown:
            for secret in SECRETS:
                assert secret not in text, text
        assert "***" in llm.settings.display_endpoint


def test_a_query_key_in_the_endpoint_is_still_sent(fake, make_llm):
    llm = make_llm(endpoint=_endpoints(fake)[2])
    assert llm.chat("hi") == "Echo: hi"
    assert fake.last_request.query["key"] == QUERY_KEY


def test_userinfo_in_the_endpoint_is_sent_as_basic_auth_not_in_the_url(fake, make_llm):
    llm = make_llm(endpoint=_endpoints(fake)[0], max_retries=0)
    with pytest.raises(LLMError):  # the double wants a bearer token, so it answers 401
        llm.chat("hi")
    assert fake.last_request.headers["authorization"] == "***"  # redacted non-bearer
    assert "@" not in fake.last_request.path


def test_settings_keep_the_token_as_a_masked_secret():
    settings = resolve_settings(token=TOKEN, env={})
    assert isinstance(settings.token, Secret)
    assert settings.token.reveal() == TOKEN
    assert TOKEN not in repr(settings) and TOKEN not in repr(settings.token)
    assert TOKEN not in str(settings.token)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("ghp_abcdefghijkLMNOFvcu", "ghp_…Fvcu"),
        ("0123456789abcdef", "0123…cdef"),
        ("0123456789abcde", None),  # 15 characters: too short to show any of it
        ("", None),
    ],
)
def test_fingerprint_shows_a_little_of_long_keys_only(value, shown):
    assert fingerprint(value) == shown
    assert Secret(value).fingerprint == shown


def test_secrets_compare_by_value_and_never_print_it():
    assert Secret("a-long-secret-value") == Secret("a-long-secret-value")
    assert Secret("a") != Secret("b") and Secret("a") != "a"
    assert len({Secret("x"), Secret("x")}) == 1
    assert "a-long" not in f"{Secret('a-long-secret-value')}"


def _doctor(env: dict[str, str]) -> str:
    from click.testing import CliRunner

    from sigla.cli import main

    result = CliRunner().invoke(main, ["doctor"], env=env, catch_exceptions=False)
    return result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_doctor_shows_a_fingerprint_of_the_credential_and_never_more(fake):
    output = _doctor({"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url})
    assert f"found ({TOKEN[:4]}…{TOKEN[-4:]})" in output
    assert TOKEN not in output and TOKEN[4:-4] not in output


def test_doctor_shows_no_fingerprint_of_a_short_key(fake):
    output = _doctor({"GITHUB_TOKEN": "short-key-1234", "SIGLA_LLM_ENDPOINT": fake.url})
    assert "credential    found " in output and "short" not in output


def test_doctor_never_prints_a_credential_from_the_endpoint_url(fake):
    for endpoint in _endpoints(fake):
        output = _doctor({"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": endpoint})
        assert "***" in output
        for secret in SECRETS:
            assert secret not in output, output


def test_debug_logs_of_every_library_never_show_a_url_credential(fake, make_llm, monkeypatch):
    """mistralai logs each request (URL and headers) with MISTRAL_DEBUG; httpx its request
    line at INFO; httpcore its connection steps at DEBUG. None sees the URL's credential."""
    import logging as std_logging

    records: list[str] = []

    class Keep(std_logging.Handler):
        def emit(self, record: std_logging.LogRecord) -> None:
            records.append(record.getMessage())

    monkeypatch.setenv("MISTRAL_DEBUG", "1")
    root = std_logging.getLogger()
    handler, level = Keep(std_logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(std_logging.DEBUG)
    try:
        for endpoint in _endpoints(fake):
            llm = make_llm(endpoint=endpoint, max_retries=0)
            with contextlib.suppress(LLMError):
                llm.chat("hi")
            with contextlib.suppress(LLMError):
                list(llm.stream("hi"))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = "\n".join(records)
    assert "HTTP Request: POST" in text and "127.0.0.1" in text, "the request lines were kept"
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize("fault", ["bad_credentials", "server_error"])
def test_a_batch_error_and_its_items_hold_no_token(fake, make_llm, fault, mode, tmp_path):
    from sigla.llm import BatchError

    fake.fail(
        fault, times=None, **({"message": f"echo {TOKEN}"} if fault == "server_error" else {})
    )
    llm = make_llm(max_retries=0, cache=tmp_path / "c.sqlite")
    prompts = ["a", "b", "c"]
    try:
        if mode == "sync":
            llm.map(prompts, concurrency=1, progress=False)
        else:
            asyncio.run(llm.amap(prompts, concurrency=1, progress=False))
    except BatchError as error:
        assert error.__cause__ is None and error.__context__ is None
        assert_nothing_shows(error)
        for _, item in error.errors:
            assert_nothing_shows(item)
    else:
        raise AssertionError("the batch did not fail")
    assert TOKEN.encode() not in (tmp_path / "c.sqlite").read_bytes()
