"""The server's OpenAPI schema, fuzzed with schemathesis: no input makes it fail.

Every operation of the schema FastAPI publishes gets schema-valid and schema-breaking
requests (schemathesis' positive and negative modes, its coverage phase's boundary values
and unexpected methods), sent over HTTP to a real uvicorn on 127.0.0.1 in front of the
loopback double, once on a server without API keys and once on one with keys (the key
given through the schema's ``HTTPBearer`` security scheme, so negative cases also try bad
and missing keys). A third pass narrows the schema to requests that reach the model
service (no query form beside a body, only served model names), since most random ``/llm``
bodies are refused before any upstream call.

What must hold for every request: no 5xx (the double is healthy, so even a 502 would be the
server's fault), every refusal in the server's error shape, a 401 only from the keyed
server and only without the key, no error event inside a 200 stream (a bug there would
hide behind the 200), no trace of the upstream token, and no "unexpected failure" in the
server's log. Kept bounded (EXAMPLES random cases an operation and mode, the coverage
phase's boundary cases once) so the file runs in under a minute on two loaded cores.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from conftest import TOKEN
from hypothesis import HealthCheck, settings
from live_server import parse_sse, server_config, serving
from schemathesis.checks import not_a_server_error

from sigla.server import ApiKeys, ServerConfig, create_app
from sigla.testing import FakeGitHubModels

MODEL = "openai/gpt-4o-mini"
KEY = "fuzz-key-0123456789abcdef"
EXAMPLES = 15  # an operation, a pass; the coverage phase adds its boundary cases


def config(endpoint: str, **given: Any) -> ServerConfig:
    """A server in front of the double at ``endpoint``, serving MODEL."""
    return server_config(endpoint, models=(MODEL,), **given)


# The published schema does not depend on the settings: read it from an app that is never
# served, so the schema is known when pytest collects the tests.
DOCUMENT = create_app(config("http://127.0.0.1:9")).openapi()


def _reaching_the_model(document: dict[str, Any]) -> dict[str, Any]:
    """The schema narrowed to requests the server passes on: ``/llm`` bodies without the
    query form beside them, and only the served model (or none) asked for."""
    narrowed = copy.deepcopy(document)
    for path in ("/llm", "/llm/stream"):
        operation = narrowed["paths"][path]["post"]
        operation.pop("parameters", None)
        operation["requestBody"]["required"] = True
        media = operation["requestBody"]["content"]["application/json"]
        media["schema"] = {"$ref": "#/components/schemas/LLMRequest"}
    served = {"anyOf": [{"enum": [MODEL]}, {"type": "null"}]}
    for name in ("LLMRequest", "ChatCompletionRequest"):
        narrowed["components"]["schemas"][name]["properties"]["model"] = served
    return narrowed


def _schema(document: dict[str, Any], **extra: Any) -> Any:
    cfg = schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": EXAMPLES, "database": "none", **extra.pop("gen", {})},
            "phases": {"stateful": {"enabled": False}, **extra.pop("phases", {})},
            # A failure's curl line must reproduce it: schemathesis would mask "max_tokens"
            # (a "token" key) and the test API key.
            "output": {"sanitization": {"enabled": False}},
            "max-stream-events": 100_000,  # read every stream to its end (default: 20 events)
            **extra,
        }
    )
    return schemathesis.openapi.from_dict(document, config=cfg)


open_schema = _schema(DOCUMENT, gen={"mode": "all"})
# With keys, the same bodies meet the same code once past the key check: the open pass's
# ~500 coverage-phase cases are not repeated, the random ones (bad keys among them) are.
keyed_schema = _schema(
    DOCUMENT,
    gen={"mode": "all"},
    auth={"openapi": {"HTTPBearer": {"bearer": KEY}}},
    phases={"coverage": {"enabled": False}},
)
reaching_schema = _schema(_reaching_the_model(DOCUMENT), gen={"mode": "positive"}).include(
    method="POST"
)

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
    ],
)


@pytest.fixture(scope="module")
def double() -> Iterator[FakeGitHubModels]:
    with FakeGitHubModels(tokens=[TOKEN]) as fake:  # latency 0, no chunk delay
        yield fake


@pytest.fixture(scope="module")
def open_url(double: FakeGitHubModels) -> Iterator[str]:
    with serving(create_app(config(double.url))) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_url(double: FakeGitHubModels) -> Iterator[str]:
    with serving(create_app(config(double.url, api_keys=ApiKeys((KEY,))))) as url:
        yield url


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The server's log (its uvicorn thread logs into this process)."""
    caplog.set_level(logging.WARNING, logger="sigla.server")
    return caplog


def _stream_errors(text: str) -> list[Any]:
    """The error events of an SSE body: sigla's ``event: error`` or OpenAI's
    ``data: {"error": ...}``."""
    errors = []
    for name, data in parse_sse(text):
        if name == "error":
            errors.append(data)
        elif data != "[DONE]":
            payload = json.loads(data)
            if isinstance(payload, dict) and "error" in payload:
                errors.append(payload)
    return errors


def check(
    case: Any, base_url: str, server_log: pytest.LogCaptureFixture, *, keyed: bool = False
) -> None:
    """Send ``case`` and assert what must hold whatever the input."""
    server_log.clear()  # hypothesis runs every example in one test call: this one's only
    response = case.call_and_validate(base_url=base_url, checks=[not_a_server_error], timeout=20)
    status = response.status_code
    curl = case.as_curl_command()
    assert status < 500, f"{status} for: {curl}\n{response.text[:2000]}"
    assert TOKEN not in response.text and TOKEN not in str(response.headers), curl
    sent_key = response.request.headers.get("Authorization") == f"Bearer {KEY}"
    if status == 401:  # only a keyed server refuses, only without the key, and says how
        assert keyed and not sent_key, curl
        assert response.headers["www-authenticate"] == ["Bearer"], curl
    kind = response.headers.get("content-type", [""])[0]
    if status >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"], curl
        assert isinstance(error.get("code") or error.get("type"), str), curl
    elif kind.startswith("text/event-stream"):
        assert not response.stream_cut_short, curl
        assert _stream_errors(response.text) == [], f"an error inside a 200 stream: {curl}"
    failures = [r for r in server_log.records if r.levelno >= logging.ERROR]
    assert failures == [], f"the server logged a failure for: {curl}\n{failures[0].getMessage()}"


@open_schema.parametrize()
@FUZZ
def test_no_input_makes_the_open_server_fail(
    case: Any, open_url: str, server_log: pytest.LogCaptureFixture
) -> None:
    check(case, open_url, server_log)


@keyed_schema.parametrize()
@FUZZ
def test_no_input_makes_the_keyed_server_fail(
    case: Any, keyed_url: str, server_log: pytest.LogCaptureFixture
) -> None:
    check(case, keyed_url, server_log, keyed=True)


@reaching_schema.parametrize()
@FUZZ
def test_no_request_that_reaches_the_model_makes_the_server_fail(
    case: Any, open_url: str, server_log: pytest.LogCaptureFixture
) -> None:
    check(case, open_url, server_log)
