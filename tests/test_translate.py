"""sigla._translate on its own: foreign exceptions and error answers become sigla errors.

The SDK's exceptions are stand-ins with the names and attributes of mistralai's generated
error classes (``errors/*.py``: 1.12+, 2.x and 3.x generate the same code, 3.x over httpx2;
the Azure client's have ``MistralAzureError`` for a base), holding real httpx/httpx2
responses as the SDK does; the last tests hand ``translate`` the installed SDK's own
classes. The HTTP library's exceptions are the real ones (httpx, httpx2, httpcore).
Messages are checked for the facts they carry (the service's words, the status, the
endpoint, what to do), not for their wording.
"""

from __future__ import annotations

import importlib
import json
import traceback
from types import ModuleType, SimpleNamespace
from typing import Any

import httpcore
import httpx
import pytest

from sigla._config import resolve_settings
from sigla._translate import (
    EXCERPT,
    _field_path,
    _first_line,
    _validation_problems,
    detached,
    error_from_status,
    excerpt,
    scrub,
    translate,
)
from sigla.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ContentFilteredError,
    GitHubModelsRetiredError,
    InputTooLargeError,
    InvalidRequestError,
    InvalidResponseError,
    LLMError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamError,
)

GITHUB = resolve_settings(token="t" * 12, env={})
MISTRAL = resolve_settings(provider="mistral", token="m" * 12, env={})
WHERE = GITHUB.display_endpoint


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


httpx2 = _optional("httpx2")  # mistralai 3.x's HTTP library; absent beside 1.x and 2.x
needs_httpx2 = pytest.mark.skipif(httpx2 is None, reason="httpx2 (mistralai 3.x) not installed")

# The HTTP modules whose exceptions reach translate: the SDK's (httpx, or httpx2 for 3.x)
# and httpcore, which sigla's own transport drives.
HTTP_MODULES = [
    pytest.param(httpx, id="httpx"),
    pytest.param(httpx2, id="httpx2", marks=needs_httpx2),
    pytest.param(httpcore, id="httpcore"),
]


# ---------------------------------------------------------------- mistralai's error classes


def sdk_errors(base: str) -> SimpleNamespace:
    """Classes named and shaped like mistralai's ``errors`` (base ``MistralError``, or
    ``MistralAzureError`` in the Azure client): the same names, the same constructors
    and the same attributes (``message``, ``status_code``, ``body``, ``headers``,
    ``raw_response``)."""

    class Base(Exception):
        def __init__(self, message: str, raw_response: Any, body: str | None = None) -> None:
            self.message = message
            self.status_code = raw_response.status_code
            self.body = body if body is not None else raw_response.text
            self.headers = raw_response.headers
            self.raw_response = raw_response

        def __str__(self) -> str:
            return self.message

    Base.__name__ = Base.__qualname__ = base

    class SDKError(Base):
        def __init__(self, message: str, raw_response: Any, body: str | None = None) -> None:
            body_display = body or raw_response.text or '""'
            if message:
                message += ": "
            message += f"Status {raw_response.status_code}"
            content_type = raw_response.headers.get("content-type", '""')
            if content_type != "application/json":
                if " " in content_type:
                    content_type = f'"{content_type}"'
                message += f" Content-Type {content_type}"
            message += f". Body: {body_display}"
            super().__init__(message.strip(), raw_response, body)

    class HTTPValidationError(Base):  # a 422 with a JSON body
        def __init__(self, data: Any, raw_response: Any, body: str | None = None) -> None:
            super().__init__(body or raw_response.text, raw_response, body)
            self.data = data

    class ResponseValidationError(Base):  # a 2xx body that fails the SDK's schema
        def __init__(
            self, message: str, raw_response: Any, cause: Exception, body: str | None = None
        ) -> None:
            super().__init__(f"{message}: {cause}", raw_response, body)

    return SimpleNamespace(
        SDKError=SDKError,
        HTTPValidationError=HTTPValidationError,
        ResponseValidationError=ResponseValidationError,
    )


class NoResponseError(Exception):  # mistralai's, in every major version
    def __init__(self, message: str = "No response received") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


SDKS = [
    pytest.param(httpx, "MistralError", id="mistralai-1.x-2.x"),
    pytest.param(httpx2, "MistralError", id="mistralai-3.x", marks=needs_httpx2),
    pytest.param(httpx, "MistralAzureError", id="azure-1.x-2.x"),
    pytest.param(httpx2, "MistralAzureError", id="azure-3.x", marks=needs_httpx2),
]


def answer(
    http: ModuleType,
    status: int,
    body: str = "",
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Any:
    """A received answer as the SDK holds it: a response of its HTTP module."""
    request = http.Request("POST", "https://models.github.ai/inference/chat/completions")
    return http.Response(
        status,
        content=body.encode(),
        headers={"content-type": content_type, **(headers or {})},
        request=request,
    )


def envelope(code: str | None, message: str, **more: Any) -> str:
    error: dict[str, Any] = {"message": message, **more}
    if code is not None:
        error["code"] = code
    return json.dumps({"error": error})


# ---------------------------------------------------------------- translate: SDK errors


@pytest.mark.parametrize(("http", "base"), SDKS)
@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "code", "said"),
    [
        (
            401,
            envelope("unauthorized", "Bad credentials"),
            {},
            AuthenticationError,
            "unauthorized",
            "Bad credentials",
        ),
        (
            404,
            envelope("unknown_model", "Unknown model: x/y"),
            {},
            ModelNotFoundError,
            "unknown_model",
            "Unknown model: x/y",
        ),
        (
            429,
            envelope("RateLimitReached", "Rate limit of 10 per 60s exceeded"),
            {"Retry-After": "9", "x-ratelimit-type": "UserByModelByMinute"},
            RateLimitError,
            "RateLimitReached",
            "Rate limit of 10 per 60s exceeded",
        ),
        (503, "upstream connect error", {}, ServerError, None, "upstream connect error"),
    ],
)
def test_an_sdk_error_becomes_the_sigla_error_of_its_status(
    http, base, status, body, headers, cls, code, said
):
    raw = answer(http, status, body, {"x-request-id": "req-1", **headers})
    exc = sdk_errors(base).SDKError("API error occurred", raw, raw.text)
    error = translate(exc, GITHUB)
    assert type(error) is cls
    assert error.status_code == status
    assert error.code == code
    assert error.request_id == "req-1"
    assert error.body == body
    assert said in str(error) and f"HTTP {status}" in str(error)
    assert "API error occurred" not in str(error)  # the SDK's words are not the service's
    if cls is RateLimitError:
        assert (error.retry_after, error.limit_type) == (9.0, "UserByModelByMinute")


@pytest.mark.parametrize(("http", "base"), SDKS)
def test_an_sdk_error_for_a_filtered_prompt_keeps_its_status(http, base):
    raw = answer(http, 400, envelope("content_filter", "The prompt was filtered"))
    error = translate(sdk_errors(base).SDKError("API error occurred", raw, raw.text), GITHUB)
    assert type(error) is ContentFilteredError
    assert error.status_code == 400
    assert "The prompt was filtered" in str(error)


@pytest.mark.parametrize(("http", "base"), SDKS)
def test_an_empty_error_answer_says_its_status(http, base):
    raw = answer(http, 502, "", content_type="text/plain")
    error = translate(sdk_errors(base).SDKError("API error occurred", raw, raw.text), GITHUB)
    assert type(error) is ServerError
    assert error.status_code == 502
    assert error.body == ""
    assert str(error).startswith("HTTP 502")  # the status stands in for the service's words


@pytest.mark.parametrize(("http", "base"), SDKS)
def test_a_422_http_validation_error_is_a_status_error(http, base):
    """A 422 is an HTTPValidationError: a MistralError (MistralAzureError in the Azure
    client), not an SDKError."""
    body = json.dumps({"detail": [{"loc": ["body", "top_p"], "msg": "too big", "type": "x"}]})
    raw = answer(http, 422, body, {"apim-request-id": "apim-7"})
    exc = sdk_errors(base).HTTPValidationError(None, raw, raw.text)
    error = translate(exc, GITHUB)
    assert type(error) is APIStatusError
    assert (error.status_code, error.request_id, error.body) == (422, "apim-7", body)
    assert "top_p" in str(error) and "HTTP 422" in str(error)


@pytest.mark.parametrize(("http", "base"), SDKS)
def test_an_unexpected_2xx_answer_is_an_invalid_response(http, base):
    """The SDK's SDKError for a 200 whose content type it does not expect."""
    raw = answer(http, 200, "<html><body>Sign in</body></html>", content_type="text/html")
    exc = sdk_errors(base).SDKError("Unexpected response received", raw)
    error = translate(exc, GITHUB)
    assert type(error) is InvalidResponseError
    assert "Unexpected response received: Status 200" in str(error)
    assert WHERE in str(error)  # it points at the endpoint to check


@pytest.mark.parametrize(("http", "base"), SDKS)
@pytest.mark.parametrize("streaming", [False, True])
def test_an_answer_that_fails_the_schema_is_not_a_status_error(http, base, streaming):
    """ResponseValidationError is a MistralError with status 200: it is recognised first."""
    body = json.dumps({"id": "x", "choices": []})
    raw = answer(http, 200, body)
    cause = ValueError("1 validation error for Unmarshaller\nbody.usage\n  Field required")
    exc = sdk_errors(base).ResponseValidationError("Response validation failed", raw, cause, body)
    error = translate(exc, GITHUB, streaming=streaming)
    said = "Response validation failed: 1 validation error for Unmarshaller"
    assert said in str(error)
    assert "Field required" not in str(error)  # the first line only
    if streaming:
        assert type(error) is StreamError
    else:
        assert type(error) is InvalidResponseError
        assert WHERE in str(error)


def test_no_response_is_a_connection_error_naming_the_endpoint():
    error = translate(NoResponseError(), GITHUB)
    assert type(error) is APIConnectionError
    assert WHERE in str(error)
    assert error.request_sent is False


# Partial shapes: every supported mistralai error carries all five attributes, but translate
# reads only what it finds and never raises on an odd shape (an error in translate would
# leave the boundary as a raw AttributeError).


def test_headers_are_read_from_the_raw_response_when_the_error_has_none():
    class SDKError(Exception):
        def __init__(self, raw: Any) -> None:
            super().__init__("API error occurred")
            self.status_code, self.body, self.raw_response = raw.status_code, raw.text, raw

    raw = answer(httpx, 429, envelope("rate_limited", "Slow down"), {"x-request-id": "r-9"})
    error = translate(SDKError(raw), GITHUB)
    assert type(error) is RateLimitError
    assert error.request_id == "r-9"


def test_headers_are_read_from_the_error_when_it_has_no_raw_response():
    class MistralError(Exception):
        status_code = 500
        body = "boom"
        headers = httpx.Headers({"x-request-id": "r-3"})
        raw_response = None

    error = translate(MistralError(), GITHUB)
    assert type(error) is ServerError
    assert error.request_id == "r-3"


def test_an_sdk_error_with_only_a_status_still_becomes_its_sigla_error():
    class SDKError(Exception):
        status_code = 503

    error = translate(SDKError("API error occurred"), GITHUB)
    assert type(error) is ServerError
    assert (error.status_code, error.body, error.request_id) == (503, "", None)
    assert str(error).startswith("HTTP 503")


def test_an_sdk_error_without_a_status_is_an_invalid_response():
    class SDKError(Exception):
        pass

    error = translate(SDKError("Unexpected response received"), GITHUB)
    assert type(error) is InvalidResponseError
    assert "Unexpected response received" in str(error) and WHERE in str(error)


# ---------------------------------------------------------------- translate: HTTP library


def _exception(http: ModuleType, name: str, text: str) -> BaseException:
    cls = getattr(http, name)
    return cls(text)


@pytest.mark.parametrize("http", HTTP_MODULES)
@pytest.mark.parametrize("name", ["ConnectTimeout", "WriteTimeout", "PoolTimeout"])
@pytest.mark.parametrize("streaming", [False, True])
def test_a_timeout_before_the_request_went_out_is_retryable(http, name, streaming):
    error = translate(_exception(http, name, "timed out"), GITHUB, streaming=streaming)
    assert type(error) is APITimeoutError
    assert error.request_sent is False
    assert WHERE in str(error) and "60 s" in str(error)


@pytest.mark.parametrize("http", HTTP_MODULES)
@pytest.mark.parametrize("streaming", [False, True])
def test_a_read_timeout_says_the_request_was_sent_and_what_it_waited_for(http, streaming):
    error = translate(_exception(http, "ReadTimeout", "timed out"), GITHUB, streaming=streaming)
    assert type(error) is APITimeoutError
    assert error.request_sent is True
    assert WHERE in str(error) and "timeout=60 s" in str(error)
    assert ("stream" in str(error)) is streaming  # waiting for the next event, or the answer


@pytest.mark.parametrize("http", HTTP_MODULES)
@pytest.mark.parametrize("name", ["RemoteProtocolError", "ReadError"])
def test_a_connection_lost_mid_stream_is_a_stream_error(http, name):
    exc = _exception(http, name, "peer closed connection without sending complete message")
    error = translate(exc, GITHUB, streaming=True)
    assert type(error) is StreamError
    assert "peer closed connection without sending complete message" in str(error)


@pytest.mark.parametrize("http", HTTP_MODULES)
@pytest.mark.parametrize(
    "name", ["ConnectError", "ReadError", "WriteError", "RemoteProtocolError", "LocalProtocolError"]
)
def test_a_transport_failure_outside_a_stream_is_a_connection_error(http, name):
    error = translate(_exception(http, name, "[Errno 111] Connection refused"), GITHUB)
    assert type(error) is APIConnectionError
    assert error.request_sent is False
    assert WHERE in str(error) and "[Errno 111] Connection refused" in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.RequestError("Request failed"),  # the base of httpx's request errors
        httpx.DecodingError("Request failed"),  # an HTTPError outside TransportError
        httpx.UnsupportedProtocol("Request failed"),
        ConnectionRefusedError(111, "Request failed"),  # an OSError
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_every_http_error_and_os_error_is_a_connection_error(exc):
    error = translate(exc, GITHUB, streaming=True)
    assert type(error) is APIConnectionError
    assert "Request failed" in str(error)


def test_the_cause_of_a_connection_error_keeps_its_words_without_a_doubled_stop():
    error = translate(httpx.ConnectError("Could not connect to LLM-BOX."), GITHUB)
    assert "Could not connect to LLM-BOX" in str(error)
    assert "LLM-BOX.." not in str(error)


def test_an_sdk_validation_error_is_an_invalid_request():
    class ValidationError(ValueError):  # pydantic's, by name
        title = "Unmarshaller"

        def errors(self) -> list[dict[str, Any]]:
            return [{"loc": ("body", "temperature"), "msg": "Input should be a number"}]

    error = translate(ValidationError("1 validation error for Unmarshaller"), GITHUB)
    assert type(error) is InvalidRequestError
    assert "temperature: Input should be a number" in str(error)


@pytest.mark.parametrize(
    ("exc", "said"),
    [
        (KeyError("choices"), "Unexpected KeyError: 'choices'"),
        (RuntimeError("boom\nsecond line"), "Unexpected RuntimeError: boom"),
        (RuntimeError(""), "Unexpected RuntimeError: RuntimeError"),
    ],
)
def test_anything_else_is_an_llm_error_naming_its_class(exc, said):
    error = translate(exc, GITHUB)
    assert type(error) is LLMError
    assert str(error) == said


def test_a_sigla_error_passes_through_unchanged():
    error = RateLimitError("slow", status_code=429, retry_after=3)
    assert translate(error, GITHUB) is error


# ---------------------------------------------------------------- error_from_status: reading


@pytest.mark.parametrize(
    ("body", "headers", "said"),
    [
        ("\n  " + envelope("bad", "Leading blank lines"), {}, "Leading blank lines"),
        (json.dumps({"error": {"details": "Only details"}}), {}, "Only details"),
        (json.dumps({"error": "Model is overloaded"}), {}, "Model is overloaded"),  # Ollama
        (json.dumps({"message": "Top-level message"}), {}, "Top-level message"),
        (json.dumps({"detail": "Not authenticated"}), {}, "Not authenticated"),  # FastAPI
        ("plain words", {"content-type": "text/plain"}, "plain words"),
    ],
)
def test_the_service_words_are_found_in_each_body_shape(body, headers, said):
    error = error_from_status(409, body, headers, GITHUB)
    assert type(error) is APIStatusError
    assert str(error).startswith(said)
    assert error.body == body


def test_an_envelope_without_words_says_the_status():
    error = error_from_status(409, json.dumps({"error": {"code": "conflict"}}), {}, GITHUB)
    assert str(error).startswith("HTTP 409")
    assert error.code == "conflict"


def test_an_answer_without_a_code_has_none():
    error = error_from_status(409, json.dumps({"error": {"message": "x"}}), {}, GITHUB)
    assert error.code is None
    assert error_from_status(503, "overloaded", {}, GITHUB).code is None


def test_a_status_sent_as_the_code_is_no_code():
    """LiteLLM and llama.cpp put the HTTP status in the code field."""
    for code in ("400", 400):
        body = json.dumps({"error": {"code": code, "message": "Bad"}})
        assert error_from_status(409, body, {}, GITHUB).code is None


def test_the_inner_error_code_counts_when_there_is_no_type():
    """Azure puts the reason in innererror.code ("ResponsibleAIPolicyViolation")."""
    body = envelope(
        None, "The request was blocked.", innererror={"code": "ResponsibleAIPolicyViolation"}
    )
    error = error_from_status(400, body, {}, GITHUB)
    assert type(error) is ContentFilteredError
    inner = envelope(None, "No access", innererror={"code": "AccessDenied"})
    assert error_from_status(403, inner, {}, GITHUB).code == "AccessDenied"


@pytest.mark.parametrize(
    "headers", [{"x-request-id": "r"}, {"X-GitHub-Request-Id": "r"}, {"apim-request-id": "r"}]
)
def test_the_request_id_comes_from_any_of_its_headers(headers):
    assert error_from_status(500, "", headers, GITHUB).request_id == "r"


# HTML error pages (a proxy's 502) are reduced to their text.

NGINX = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (NGINX, {}),
        ("\n\n  " + NGINX, {}),
        ("<!DOCTYPE html>\n" + NGINX, {}),
        ("<!doctype html>" + NGINX, {}),
        (NGINX.replace("<html>", "<HTML>"), {}),
        (NGINX.replace("<html>", ""), {"Content-Type": "text/HTML; charset=utf-8"}),
    ],
)
def test_an_html_page_is_reduced_to_its_text(body, headers):
    error = error_from_status(502, body, headers, GITHUB)
    assert type(error) is ServerError
    assert str(error).startswith("502 Bad Gateway nginx (HTTP 502)")  # title = h1: said once
    assert error.body == body


def test_scripts_and_styles_are_left_out_of_the_text():
    body = (
        "<html><head><style>p { color: red }</style></head><body><p>Service</p>"
        "<script>track()</script><p>Unavailable</p></body></html>"
    )
    error = error_from_status(503, body, {}, GITHUB)
    assert str(error).startswith("Service Unavailable (HTTP 503)")


def test_stray_end_tags_do_not_hide_the_text():
    body = "<html><body><p>Service</p></script></style><p>Unavailable</p></body></html>"
    error = error_from_status(503, body, {}, GITHUB)
    assert str(error).startswith("Service Unavailable (HTTP 503)")


def test_only_the_first_64_kib_of_an_html_page_are_read():
    body = "<html><p>Head</p>" + " " * (64 * 1024) + "<p>Tail</p></html>"
    said = str(error_from_status(502, body, {}, GITHUB))
    assert said.startswith("Head (HTTP 502)")
    assert "Tail" not in said


def test_a_body_that_only_looks_like_json_is_kept_as_text():
    error = error_from_status(409, "{not json", {}, GITHUB)
    assert str(error).startswith("{not json (HTTP 409)")


# ---------------------------------------------------------------- error_from_status: meaning


def test_a_filtered_prompt_keeps_its_status_code():
    error = error_from_status(400, envelope("content_filter", "filtered"), {}, GITHUB)
    assert type(error) is ContentFilteredError
    assert error.status_code == 400


def test_a_404_naming_a_model_without_a_code_is_model_not_found():
    """Ollama: {"error": "model \\"llama9\\" not found, try pulling it first"}."""
    body = json.dumps({"error": 'model "llama9" not found, try pulling it first'})
    error = error_from_status(404, body, {}, MISTRAL)
    assert type(error) is ModelNotFoundError
    assert error.model == MISTRAL.model
    assert 'model "llama9" not found' in str(error)
    # A 400 or a 405 naming a model, or a 404 with a code, is no such answer.
    assert type(error_from_status(400, body, {}, MISTRAL)) is APIStatusError
    assert type(error_from_status(405, body, {}, MISTRAL)) is APIStatusError
    coded = envelope("NotFound", 'model "llama9" not found')
    assert type(error_from_status(404, coded, {}, MISTRAL)) is APIStatusError


def test_a_400_asking_for_the_publisher_model_format_is_model_not_found():
    body = "Invalid model id 'codestral'; expected format: {publisher}/{model_name}."
    error = error_from_status(400, body, {"x-request-id": "r"}, GITHUB)
    assert type(error) is ModelNotFoundError
    assert (error.model, error.status_code, error.request_id) == (GITHUB.model, 400, "r")
    assert error.body == body
    assert "expected format" in str(error) and repr(GITHUB.model) in str(error)
    assert type(error_from_status(401, body, {}, GITHUB)) is AuthenticationError
    assert type(error_from_status(409, body, {}, GITHUB)) is APIStatusError


def test_a_403_asks_for_models_read_only_on_github():
    body = envelope("no_access", "No access to model")
    github = error_from_status(403, body, {}, GITHUB)
    other = error_from_status(403, body, {}, MISTRAL)
    assert type(github) is type(other) is PermissionDeniedError
    assert "models:read" in str(github)
    assert "models:read" not in str(other)
    assert str(other).endswith("access.")


def test_a_413_without_a_code_is_input_too_large():
    body = "<html><head><title>413 Request Entity Too Large</title></head></html>"
    error = error_from_status(413, body, {}, GITHUB)
    assert type(error) is InputTooLargeError
    assert error.limit is None
    assert "None" not in str(error)


def test_the_token_limit_is_said_when_the_service_gives_it():
    """llama.cpp gives it as n_ctx, next to the words of its message."""
    body = json.dumps(
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 5000,
                "n_ctx": 4096,
            }
        }
    )
    error = error_from_status(400, body, {}, GITHUB)
    assert type(error) is InputTooLargeError
    assert error.limit == 4096
    assert "4096" in str(error)
    assert error.code == "exceed_context_size_error"


@pytest.mark.parametrize(
    ("headers", "retry_after", "wait"),
    [({"retry-after": "90"}, 90.0, "1 min 30 s"), ({}, None, None)],
)
def test_a_429_says_how_long_the_service_asks_to_wait(headers, retry_after, wait):
    error = error_from_status(429, envelope("rate_limited", "Too many"), headers, GITHUB)
    assert type(error) is RateLimitError
    assert error.retry_after == retry_after
    if wait:
        assert wait in str(error)
    else:
        assert "wait" not in str(error) and "None" not in str(error)
        assert str(error).endswith(").")


@pytest.mark.parametrize("status", [404, 405])
def test_a_404_or_405_without_a_model_points_at_the_endpoint(status):
    error = error_from_status(status, "Not Found", {}, MISTRAL)
    assert type(error) is APIStatusError
    assert MISTRAL.display_endpoint in str(error)


def test_another_status_keeps_the_service_words():
    error = error_from_status(418, "I'm a teapot", {}, GITHUB)
    assert type(error) is APIStatusError
    assert str(error).startswith("I'm a teapot (HTTP 418)")
    assert GITHUB.display_endpoint not in str(error)


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (410, envelope("unavailable", "GitHub Models is gone"), {}),
        (404, envelope("not_found", "GitHub Models is gone"), {"Sunset": "Thu, 30 Jul 2026"}),
    ],
)
def test_the_retirement_keeps_the_service_words(status, body, headers):
    error = error_from_status(status, body, headers, GITHUB)
    assert type(error) is GitHubModelsRetiredError
    assert f"HTTP {status}: GitHub Models is gone" in str(error)
    assert error.status_code == status


def test_a_wordless_retirement_says_its_status_once():
    error = error_from_status(410, "", {}, GITHUB)
    assert type(error) is GitHubModelsRetiredError
    assert "(HTTP 410)" in str(error)


def test_a_410_from_another_provider_is_no_retirement():
    assert type(error_from_status(410, "Gone", {}, MISTRAL)) is APIStatusError


def test_a_401_names_the_provider_credential():
    error = error_from_status(401, "Unauthorized", {}, MISTRAL)
    assert type(error) is AuthenticationError
    assert "MISTRAL_API_KEY" in str(error)
    assert "models:read" in str(error_from_status(401, "Unauthorized", {}, GITHUB))


# ---------------------------------------------------------------- small helpers


def test_an_excerpt_is_one_line_of_at_most_its_limit():
    assert excerpt("  two\n words \t") == "two words"
    assert excerpt("x" * EXCERPT) == "x" * EXCERPT
    long = excerpt("y" * (EXCERPT + 1))
    assert len(long) == EXCERPT and long == "y" * (EXCERPT - 1) + "…"
    assert excerpt("abcdef", limit=4) == "abc…"


def test_the_first_line_of_an_exception_or_its_class_name():
    assert _first_line(ValueError("  first\nsecond")) == "first"
    assert _first_line(ValueError("")) == "ValueError"
    assert _first_line(ValueError(" \n ")) == "ValueError"
    assert _first_line(ValueError("z" * 400)) == "z" * (EXCERPT - 1) + "…"


@pytest.mark.parametrize(
    ("loc", "wrapped", "path"),
    [
        (("body", 0, "UserMessage", "content", "str"), True, "[0].content"),
        (("body", "messages", 2, "content", "list[str]"), True, "messages[2].content"),
        (("body", "temperature"), False, "body.temperature"),
        (("messages", "body"), True, "messages.body"),
        (("stop", "function-after[check, str]", 1), False, "stop[1]"),
        (("tools", 0, "function", "parameters", "dict"), False, "tools[0].function.parameters"),
        (("x", "none", "Unset", "bool"), False, "x"),
        ((0,), False, "[0]"),
        (["random_seed", "int"], False, "random_seed"),
        ("temperature", False, ""),
        (None, True, ""),
        ((), True, ""),
    ],
)
def test_a_pydantic_location_becomes_a_field_path(loc, wrapped, path):
    assert _field_path(loc, wrapped) == path


class ValidationError(ValueError):
    """pydantic's ValidationError by duck typing: ``errors()`` and ``title``."""

    def __init__(self, problems: list[Any], title: str = "Unmarshaller") -> None:
        super().__init__(f"{len(problems)} validation errors for {title}\nmore")
        self.problems = problems
        self.title = title

    def errors(self) -> list[Any]:
        return self.problems


def test_each_refused_field_is_said_once_with_its_first_reason():
    problems = [
        {"loc": ("body", "messages", 0, "content", "str"), "msg": "Input should be a string"},
        {"loc": ("body", "messages", 0, "content", "list[str]"), "msg": "Input should be a list"},
        {"loc": ("body", "temperature"), "msg": "Input should be a number", "input": "secret"},
    ]
    said = _validation_problems(ValidationError(problems))
    assert said == (
        "messages[0].content: Input should be a string; temperature: Input should be a number"
    )


def test_the_body_step_is_dropped_only_for_the_sdk_unmarshaller():
    problems = [{"loc": ("body", "x"), "msg": "bad"}]
    assert _validation_problems(ValidationError(problems, title="Unmarshaller")) == "x: bad"
    assert _validation_problems(ValidationError(problems, title="Request")) == "body.x: bad"

    class Untitled(ValueError):
        def errors(self) -> list[Any]:
            return problems

    assert _validation_problems(Untitled("x")) == "body.x: bad"


def test_the_sdk_not_given_branch_and_odd_entries_are_skipped():
    problems = [
        "not a mapping",
        {"loc": ("body", "max_tokens"), "msg": "Is not Unset", "ctx": {"class_name": "Unset"}},
        {"loc": ("body", "max_tokens", "int"), "msg": "Input should be a valid integer"},
        {"loc": ("body", "stop"), "msg": "Other ctx", "ctx": {"class_name": "Other"}},
    ]
    said = _validation_problems(ValidationError(problems))
    assert said == "max_tokens: Input should be a valid integer; stop: Other ctx"


def test_a_problem_without_a_field_or_reason_is_still_said():
    problems = [{"loc": ("body",), "msg": ""}, {"loc": None}]
    assert _validation_problems(ValidationError(problems)) == "a value: invalid"


def test_only_three_fields_are_shown_and_the_rest_counted():
    def fields(n: int) -> ValidationError:
        return ValidationError([{"loc": ("body", f"f{i}"), "msg": "bad"} for i in range(n)])

    assert _validation_problems(fields(3)) == "f0: bad; f1: bad; f2: bad"
    assert _validation_problems(fields(4)) == "f0: bad; f1: bad; f2: bad (and 1 more)"
    assert _validation_problems(fields(6)) == "f0: bad; f1: bad; f2: bad (and 3 more)"


def test_without_usable_problems_the_first_line_is_said():
    assert _validation_problems(ValidationError([])) == "0 validation errors for Unmarshaller"
    assert _validation_problems(ValidationError(["x", 1])) == "2 validation errors for Unmarshaller"

    class Broken(ValueError):
        def errors(self) -> list[Any]:
            raise TypeError("no errors()")

    assert _validation_problems(Broken("only this\nnot this")) == "only this"


def test_scrub_replaces_every_credential_of_eight_characters_or_more():
    settings = resolve_settings(token="abcd1234", env={})
    error = APIStatusError("echo abcd1234 twice abcd1234", status_code=400, body="k=abcd1234")
    error.args = (*error.args, 7)
    scrubbed = scrub(error, settings)
    assert scrubbed is error
    assert error.args == ("echo *** twice ***", 7)
    assert (error.message, error.body, error.status_code) == ("echo *** twice ***", "k=***", 400)


def test_scrub_leaves_short_placeholders_alone():
    settings = resolve_settings(token="none", env={})
    error = LLMError("none of this is secret")
    assert str(scrub(error, settings)) == "none of this is secret"


def test_a_detached_error_carries_nothing_from_below_the_boundary():
    try:
        try:
            raise ValueError("sdk frame")
        except ValueError as below:
            raise ServerError("x", status_code=500) from below
    except ServerError as caught:
        error = caught
    error.__suppress_context__ = True
    assert detached(error) is error
    assert error.__cause__ is None and error.__context__ is None
    assert error.__suppress_context__ is False
    assert error.__traceback__ is None
    # Raised again inside a caller's own except block, that block's exception shows.
    try:
        try:
            raise KeyError("caller")
        except KeyError:
            raise error  # noqa: B904 (as a caller may: the context is theirs to show)
    except ServerError as again:
        shown = "".join(traceback.format_exception(again))
    assert "KeyError: 'caller'" in shown


# ---------------------------------------------------------------- the installed SDK's own classes


def _installed(packages: tuple[str, ...]) -> list[Any]:
    """The first of ``packages`` that imports: its error classes and its HTTP module."""
    for package in packages:
        try:
            errors = importlib.import_module(package)
            bases = ("MistralError", "MistralAzureError")
            base = next(getattr(errors, n) for n in bases if hasattr(errors, n))
            http = importlib.import_module(base.__module__).httpx  # httpx, or httpx2 in 3.x
        except (ImportError, AttributeError, StopIteration):
            continue
        return [pytest.param(errors, http, id=package)]
    return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"none of {packages}"))]


INSTALLED = _installed(("mistralai.client.errors", "mistralai.models")) + _installed(
    ("mistralai.azure.client.errors", "mistralai_azure.models")
)


@pytest.mark.parametrize(("errors", "http"), INSTALLED)
def test_the_installed_sdk_errors_are_recognised(errors, http):
    raw = answer(http, 429, envelope("rate_limited", "Slow down"), {"x-request-id": "r-1"})
    error = translate(errors.SDKError("API error occurred", raw, raw.text), GITHUB)
    assert type(error) is RateLimitError
    assert (error.status_code, error.code, error.request_id) == (429, "rate_limited", "r-1")

    raw = answer(http, 422, json.dumps({"detail": "top_p is too big"}))
    invalid = errors.HTTPValidationError(errors.HTTPValidationErrorData(), raw, raw.text)
    error = translate(invalid, GITHUB)
    assert type(error) is APIStatusError
    assert error.status_code == 422 and "top_p is too big" in str(error)

    raw = answer(http, 200, "{}")
    failed = errors.ResponseValidationError("Response validation failed", raw, ValueError("x"))
    assert type(translate(failed, GITHUB)) is InvalidResponseError
    assert type(translate(failed, GITHUB, streaming=True)) is StreamError

    assert type(translate(errors.NoResponseError(), GITHUB)) is APIConnectionError
