"""The one boundary where foreign exceptions and error answers become :mod:`sigla.errors`.

:func:`error_from_status` maps an HTTP error answer to one class per meaning, keeping the
service's words and adding what to do; :func:`translate` recognises mistralai's and the
HTTP library's exceptions by class name (so it works across mistralai 1.x-3.x, ``httpx``
and ``httpx2`` without importing them); :func:`translating` is the ``with`` block every
call path runs its I/O in. The credential is scrubbed from whatever leaves it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from . import _constants as C
from ._config import Settings
from ._retry import retry_after_from_headers
from .errors import (
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

__all__ = ["error_from_status", "translate", "translating", "scrub"]

_RETIRED = (
    "GitHub Models was retired on {date}; the service no longer answers ({detail}). "
    "Switch provider, with no code change: Microsoft/Azure AI Foundry "
    "(SIGLA_LLM_PROVIDER=azure, AZURE_ENDPOINT, AZURE_API_KEY), Mistral's API "
    "(SIGLA_LLM_PROVIDER=mistral, MISTRAL_API_KEY), or any OpenAI-compatible server "
    "(SIGLA_LLM_PROVIDER=openai, SIGLA_LLM_ENDPOINT=http://localhost:11434/v1). "
    "See README.md, 'After GitHub Models'."
)
_CHECK_ENDPOINT = (
    "Check that the endpoint ({}) is the model service's base URL and that "
    "SIGLA_LLM_PROVIDER matches it (`sigla doctor` shows both)."
)
_MAX_TOKENS = re.compile(r"Max size:\s*(\d+)\s*tokens", re.I)


def _parse_body(body: str) -> tuple[str | None, str]:
    """The service's error code and message from its envelope, or the raw text."""
    try:
        data = json.loads(body)
    except ValueError:
        return None, body.strip()
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("details") or ""
        return (str(error["code"]) if error.get("code") else None), str(message).strip()
    if isinstance(error, str):
        return None, error
    if isinstance(data, Mapping) and isinstance(data.get("message"), str):
        return None, data["message"]
    return None, body.strip()


def _is_retirement(status: int, headers: Mapping[str, str]) -> bool:
    lower = {k.lower() for k in headers}
    return status == 410 or (status in (403, 404) and bool(lower & {"sunset", "deprecation"}))


def error_from_status(
    status: int, body: str, headers: Mapping[str, str], settings: Settings
) -> LLMError:
    """The one mapping from an HTTP error answer to a sigla error, with what to do next."""
    headers = {k.lower(): v for k, v in headers.items()}
    code, said = _parse_body(body or "")
    said = said or f"HTTP {status}"
    common: dict[str, Any] = {
        "status_code": status,
        "code": code,
        "request_id": headers.get("x-request-id") or headers.get("x-github-request-id"),
        "body": body,
    }
    github = settings.provider == "github"
    if github and _is_retirement(status, headers):
        detail = f"HTTP {status}" + (f": {said}" if said != f"HTTP {status}" else "")
        return GitHubModelsRetiredError(
            _RETIRED.format(date=C.GITHUB_MODELS_RETIRED_ON, detail=detail), **common
        )
    if status == 401:
        fix = (
            "check that the token is valid and has the models:read permission "
            "(fine-grained PAT: Permissions → Models → Read-only)"
            if github
            else f"check the credential ({', '.join(settings.spec.credential_envs) or 'token='})"
        )
        return AuthenticationError(
            f"{said} (HTTP 401): the service refused the token; {fix}.", **common
        )
    if (
        status == 404
        and code in (None, "unknown_model", "DeploymentNotFound", "model_not_found")
        and (code or "model" in said.lower())
    ):
        return ModelNotFoundError(
            f"{said} (HTTP 404). Model {settings.model!r} was not found; "
            "list the available ids with `sigla models`.",
            model=settings.model,
            **common,
        )
    if status == 400 and "expected format" in said:
        return ModelNotFoundError(
            f"{said} (HTTP 400). Model {settings.model!r} is not a '{{publisher}}/{{model_name}}' "
            "id such as 'mistral-ai/Codestral-2501'; list them with `sigla models`.",
            model=settings.model,
            **common,
        )
    if status == 403:
        scope = " and that the token has the models:read permission" if github else ""
        return PermissionDeniedError(
            f"{said} (HTTP 403): this credential may not use model {settings.model!r} "
            "(its rate-limit tier, your plan or an organization policy); "
            f"pick another model (`sigla models`) or ask an owner for access{scope}.",
            **common,
        )
    if status == 413 or code == "tokens_limit_reached":
        found = _MAX_TOKENS.search(said)
        limit = int(found.group(1)) if found else None
        limit_text = f" of {limit} tokens" if limit else ""
        return InputTooLargeError(
            f"{said} (HTTP {status}): the per-request input token limit{limit_text} was exceeded; "
            "shorten the prompt or split the input.",
            limit=limit,
            **common,
        )
    if status == 429:
        retry_after = retry_after_from_headers(headers)
        wait = f" The service asks to wait {retry_after:g} s." if retry_after is not None else ""
        return RateLimitError(
            f"{said} (HTTP 429: rate limit).{wait}",
            retry_after=retry_after,
            limit_type=headers.get("x-ratelimit-type"),
            **common,
        )
    if code == "content_filter":
        return ContentFilteredError(
            f"{said} (HTTP {status}): the prompt was blocked by the content filter; rephrase it.",
            status_code=status,
        )
    if status == 408 or status >= 500:
        return ServerError(
            f"{said} (HTTP {status}): the service failed; try again later.", **common
        )
    if status in (404, 405):
        return APIStatusError(
            f"{said} (HTTP {status}). " + _CHECK_ENDPOINT.format(settings.display_endpoint),
            **common,
        )
    return APIStatusError(f"{said} (HTTP {status}).", **common)


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def translate(exc: BaseException, settings: Settings, *, streaming: bool = False) -> LLMError:
    """Turn any exception from the SDK or the HTTP library into a :mod:`sigla.errors` error.

    Foreign classes are recognised by name along their MRO, so this works for mistralai
    1.x, 2.x and 3.x and for ``httpx`` and ``httpx2`` without importing any of them.
    """
    if isinstance(exc, LLMError):
        return exc
    names = _class_names(exc)
    if "ResponseValidationError" in names:
        detail = f"The service sent an answer sigla could not parse: {_first_line(exc)}"
        if streaming:
            return StreamError(detail)
        return InvalidResponseError(
            f"{detail}. {_CHECK_ENDPOINT.format(settings.display_endpoint)}"
        )
    if "MistralError" in names or "SDKError" in names:
        status = int(getattr(exc, "status_code", 0) or 0)
        body = getattr(exc, "body", "") or ""
        raw = getattr(exc, "raw_response", None)
        headers = dict(getattr(raw, "headers", None) or getattr(exc, "headers", None) or {})
        if status >= 400:
            return error_from_status(status, body, headers, settings)
        return InvalidResponseError(
            f"The service sent an unexpected answer: {_first_line(exc)}. "
            + _CHECK_ENDPOINT.format(settings.display_endpoint)
        )
    if "NoResponseError" in names:
        return APIConnectionError(f"No response from {settings.display_endpoint}; try again later.")
    if "SSEError" in names:  # before TransportError, its base class in httpx-sse
        return StreamError(f"The service did not answer with an event stream: {_first_line(exc)}")
    if "TimeoutException" in names:
        what = "between two stream chunks" if streaming else "for an answer"
        return APITimeoutError(
            f"Timed out after {settings.timeout:g} s waiting {what} from "
            f"{settings.display_endpoint} (raise timeout= if the model is slow)."
        )
    if streaming and ("RemoteProtocolError" in names or "ReadError" in names):
        return StreamError(f"The connection was cut mid-stream: {_first_line(exc)}")
    if "TransportError" in names or "HTTPError" in names or isinstance(exc, OSError):
        return APIConnectionError(
            f"Could not reach {settings.display_endpoint}: {_first_line(exc).rstrip('.')}. "
            "Check the endpoint and your network."
        )
    if "ValidationError" in names:
        return InvalidRequestError(f"The SDK rejected the request: {_first_line(exc)}")
    return LLMError(f"Unexpected {type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def scrub(error: LLMError, secret: str | None) -> LLMError:
    """Remove the credential from an error's text, should a service have echoed it back.

    Secrets shorter than 8 characters are placeholders (``"none"``, test values), and
    replacing them would garble ordinary words.
    """
    if not secret or len(secret) < 8:
        return error
    if secret and secret in str(error):
        cleaned = str(error).replace(secret, "***")
        error.args = (cleaned,)
        error.message = cleaned
    if isinstance(error, APIStatusError) and secret and error.body and secret in error.body:
        error.body = error.body.replace(secret, "***")
    return error


@contextmanager
def translating(settings: Settings, *, streaming: bool = False) -> Iterator[None]:
    """The boundary: nothing but a :mod:`sigla.errors` error leaves this block."""
    try:
        yield
    except LLMError as error:
        scrub(error, settings.token)
        raise
    except Exception as exc:
        translated = scrub(translate(exc, settings, streaming=streaming), settings.token)
        # Keep the cause for debugging, unless its own text would show the credential.
        token = settings.token or ""
        leaks = len(token) >= 8 and token in repr(exc)
        raise translated from (None if leaks else exc)
