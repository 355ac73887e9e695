"""The one boundary where foreign exceptions and error answers become :mod:`sigla.errors`.

:func:`error_from_status` maps an HTTP error answer to one class per meaning, keeping the
service's words and adding what to do; :func:`translate` recognises mistralai's and the
HTTP library's exceptions by class name (so it works across mistralai 1.x-3.x, ``httpx``
and ``httpx2`` without importing them); :func:`translating` is the ``with`` block every
call path runs its I/O in. The credential is scrubbed from whatever leaves it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from . import _constants as C
from ._config import Settings, successor_switches
from ._retry import describe_wait, retry_after_from_headers
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

__all__ = [
    "EXCERPT",
    "detached",
    "for_call",
    "error_from_status",
    "excerpt",
    "scrub",
    "translate",
    "translating",
]

_RETIRED = (
    "GitHub Models was retired on {date}; the service no longer answers ({detail}). "
    "Switch provider, with no code change: "
    + successor_switches().replace("{", "{{")
    + ". See README.md, 'After GitHub Models'."
)
_CHECK_ENDPOINT = (
    "Check that the endpoint ({}) is the model service's base URL and that "
    "SIGLA_LLM_PROVIDER matches it (`sigla doctor` shows both)."
)
_MAX_TOKENS = re.compile(
    r"(?:Max size:|maximum context length is|context (?:size|window|length)(?: of| is)?)"
    r"\s*(\d+)\s*tokens",
    re.I,
)
_CONTEXT_WORDS = re.compile(
    r"context[_ ](?:length|window|size)|maximum context|too many tokens|prompt is too long", re.I
)
# When an answer has no meaningful code (LiteLLM sends the status as its code and names the
# error class in the message: "litellm.ContentPolicyViolationError: ..."), its words decide.
_FILTER_WORDS = re.compile(
    r"ContentPolicyViolation|content[_ ](?:management )?polic|content[_ ]filter", re.I
)
_MODEL_WORDS = re.compile(
    r"invalid model name|unknown model|model\b.{0,80}\bdoes not exist|model[_ ]not[_ ]found", re.I
)
_TOO_LARGE_CODES = {"tokens_limit_reached", "context_length_exceeded", "exceed_context_size_error"}
_MODEL_CODES = {"unknown_model", "model_not_found", "DeploymentNotFound", "NotFoundError"}
_FILTER_CODES = {"content_filter", "content_policy_violation", "ResponsibleAIPolicyViolation"}
EXCERPT = 300  # characters of a service's own words kept in a message


class _Said:
    """What an error answer says: its code, type and message, and any token limit."""

    def __init__(self, body: str, headers: Mapping[str, str]) -> None:
        self.code: str | None = None
        self.kind: str | None = None
        self.limit: int | None = None
        data: Any = None
        if body.lstrip()[:1] in ("{", "["):
            try:
                data = json.loads(body)
            except ValueError:
                data = None
        error = data.get("error") if isinstance(data, Mapping) else None
        if isinstance(error, Mapping):
            message = error.get("message") or error.get("details") or ""
            code = error.get("code")
            # LiteLLM and llama.cpp put the HTTP status there ("400", 400): no meaning.
            if code is not None and not isinstance(code, (int, float)) and not str(code).isdigit():
                self.code = str(code)
            if isinstance(error.get("type"), str):
                self.kind = error["type"]
            inner = error.get("innererror")
            if isinstance(inner, Mapping) and isinstance(inner.get("code"), str):
                self.kind = self.kind or inner["code"]
            if isinstance(error.get("n_ctx"), int):
                self.limit = error["n_ctx"]
        elif isinstance(error, str):
            message = error
        elif isinstance(data, Mapping) and isinstance(data.get("message"), str):
            message = data["message"]
        elif isinstance(data, Mapping) and isinstance(data.get("detail"), str):
            message = data["detail"]  # FastAPI-style servers
        elif _is_html(body, headers):
            message = _html_text(body)
        else:
            message = body
        self.message = excerpt(str(message))

    def codes(self) -> set[str]:
        return {c for c in (self.code, self.kind) if c}


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """A service's words on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _is_html(body: str, headers: Mapping[str, str]) -> bool:
    if "html" in headers.get("content-type", "").lower():
        return True
    return body.lstrip()[:15].lower().startswith(("<!doctype html", "<html"))


def _html_text(body: str) -> str:
    """The text of an HTML error page (a proxy's 502), without markup, scripts or styles."""
    from html.parser import HTMLParser

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self._skip = 0

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            self._skip += tag in ("script", "style")

        def handle_endtag(self, tag: str) -> None:
            self._skip -= tag in ("script", "style") and self._skip > 0

        def handle_data(self, data: str) -> None:
            if not self._skip and data.strip():
                self.parts.append(data.strip())

    parser = Text()
    parser.feed(body[: 64 * 1024])
    words: list[str] = []
    for part in parser.parts:  # a page's <title> and <h1> usually repeat each other
        if not words or words[-1] != part:
            words.append(part)
    return " ".join(words)


def _is_retirement(status: int, headers: Mapping[str, str]) -> bool:
    deprecated = bool(set(headers) & {"sunset", "deprecation"})
    return status == 410 or (status in (403, 404) and deprecated)


def error_from_status(
    status: int, body: str, headers: Mapping[str, str], settings: Settings
) -> LLMError:
    """The one mapping from an HTTP error answer to a sigla error, with what to do next.

    The message keeps the service's own words, cut to :data:`EXCERPT` characters (an HTML
    page reduced to its text); ``.body`` keeps the answer as received (the transport cuts
    it at 64 KiB).
    """
    headers = {k.lower(): v for k, v in headers.items()}
    found = _Said(body or "", headers)
    codes = found.codes()
    said = found.message or f"HTTP {status}"
    common: dict[str, Any] = {
        "status_code": status,
        "code": found.code or found.kind,
        "request_id": headers.get("x-request-id")
        or headers.get("x-github-request-id")
        or headers.get("apim-request-id"),
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
    if codes & _FILTER_CODES or (
        status == 400 and not codes - {"invalid_request_error"} and _FILTER_WORDS.search(said)
    ):
        return ContentFilteredError(
            f"{said} (HTTP {status}): the prompt was blocked by the content filter; rephrase it.",
            status_code=status,
        )
    if status in (400, 404) and (
        codes & _MODEL_CODES
        or (status == 404 and not codes and "model" in said.lower())
        or (not codes - {"invalid_request_error"} and _MODEL_WORDS.search(said))
    ):
        return ModelNotFoundError(
            f"{said} (HTTP {status}). Model {settings.model!r} was not found; "
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
    if status == 413 or codes & _TOO_LARGE_CODES or (status == 400 and _CONTEXT_WORDS.search(said)):
        match = _MAX_TOKENS.search(said)
        limit = found.limit or (int(match.group(1)) if match else None)
        limit_text = f" of {limit} tokens" if limit else ""
        return InputTooLargeError(
            f"{said} (HTTP {status}): the input is over the model's token limit{limit_text}; "
            "shorten the prompt or split the input.",
            limit=limit,
            **common,
        )
    if status == 429:
        retry_after = retry_after_from_headers(headers)
        wait = (
            f" The service asks to wait {describe_wait(retry_after)}."
            if retry_after is not None
            else ""
        )
        return RateLimitError(
            f"{said} (HTTP 429: rate limit).{wait}",
            retry_after=retry_after,
            limit_type=headers.get("x-ratelimit-type"),
            **common,
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
    # The Azure client's errors derive from MistralAzureError instead: its 422
    # HTTPValidationError is neither a MistralError nor an SDKError.
    if "MistralError" in names or "MistralAzureError" in names or "SDKError" in names:
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
    if "TimeoutException" in names:
        return _timeout(names, settings, streaming)
    if streaming and ({"RemoteProtocolError", "ReadError"} & names):
        return StreamError(f"The connection was closed before the stream ended: {_first_line(exc)}")
    if {"TransportError", "HTTPError", "NetworkError", "ProtocolError"} & names or isinstance(
        exc, OSError
    ):
        return APIConnectionError(
            f"Could not reach {settings.display_endpoint}: {_first_line(exc).rstrip('.')}. "
            "Check the endpoint and your network."
        )
    if "ValidationError" in names:
        return InvalidRequestError(
            f"The SDK rejected the request before sending it: {_validation_problems(exc)}."
        )
    return LLMError(f"Unexpected {type(exc).__name__}: {_first_line(exc)}")


def _timeout(names: set[str], settings: Settings, streaming: bool) -> APITimeoutError:
    """A timeout, saying whether the request had been sent: then it is not retried."""
    where = settings.display_endpoint
    if "ReadTimeout" not in names:  # connect, write or pool: the request never went out
        return APITimeoutError(
            f"Timed out after {settings.timeout:g} s connecting or sending to {where}."
        )
    what = "for the next event of the stream" if streaming else "for the answer"
    return APITimeoutError(
        f"No answer from {where} within timeout={settings.timeout:g} s (waiting {what}). The "
        "request was sent, so it was not retried: the server may still be working on it. "
        "Raise timeout= (or SIGLA_LLM_TIMEOUT), or lower max_tokens for a shorter answer.",
        request_sent=True,
    )


# pydantic puts the union branch it tried into an error's location ("str", "list[str]",
# "UserMessage", "function-after[...]"): those are not fields, so the path leaves them out.
_TYPE_STEPS = frozenset({"str", "int", "float", "bool", "bytes", "list", "dict", "none"})


def _field_path(loc: Any, wrapped: bool) -> str:
    """``('body', 0, 'user', 'content', 'str')`` → ``[0].user.content``."""
    steps = list(loc) if isinstance(loc, (list, tuple)) else []
    if wrapped and steps[:1] == ["body"]:
        steps = steps[1:]  # mistralai validates each argument as the field "body" of a model
    path = ""
    for step in steps:
        if isinstance(step, int):
            path += f"[{step}]"
        elif (
            isinstance(step, str)
            and step.isidentifier()
            and not step[0].isupper()
            and step not in _TYPE_STEPS
        ):
            path += f".{step}"
    return path.lstrip(".")


def _validation_problems(exc: BaseException) -> str:
    """Which fields pydantic refused and why, from ``exc.errors()`` (duck-typed).

    Its ``str()`` starts with "1 validation error for Unmarshaller", which names no field.
    The offending values are left out: they may be long, or secret.
    """
    try:
        problems = list(exc.errors())  # type: ignore[attr-defined]
    except Exception:
        return _first_line(exc)
    wrapped = getattr(exc, "title", None) == "Unmarshaller"
    said: dict[str, str] = {}  # one reason per field: the first union branch pydantic tried
    for problem in problems:
        if not isinstance(problem, Mapping):
            continue
        context = problem.get("ctx")
        if isinstance(context, Mapping) and context.get("class_name") == "Unset":
            continue  # mistralai's "not given" branch of every optional field: noise
        path = _field_path(problem.get("loc"), wrapped) or "a value"
        said.setdefault(path, str(problem.get("msg") or "invalid"))
    if not said:
        return _first_line(exc)
    shown = [f"{path}: {reason}" for path, reason in list(said.items())[:3]]
    more = f" (and {len(said) - 3} more)" if len(said) > 3 else ""
    return "; ".join(shown) + more


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return excerpt(text[0]) if text else type(exc).__name__


_MIN_SECRET = 8  # shorter "secrets" are placeholders ("none", test values): replacing them
# would garble ordinary words


def scrub(error: LLMError, settings: Settings) -> LLMError:
    """Remove every credential of ``settings`` from an error, should a service echo one."""
    secrets = [s.reveal() for s in settings.secrets if len(s) >= _MIN_SECRET]
    if not secrets:
        return error

    def clean(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    error.args = tuple(clean(a) if isinstance(a, str) else a for a in error.args)
    for name, value in list(vars(error).items()):
        if isinstance(value, str):
            setattr(error, name, clean(value))
    return error


def for_call(settings: Settings, call: dict[str, Any]) -> Settings:
    """``settings`` as one call sees them: a per-call ``model=`` is the model its errors
    name (a 404 blames the model that was sent, not the client's)."""
    model = call.get("model")
    if isinstance(model, str) and model != settings.model:
        return dataclasses.replace(settings, model=model)
    return settings


@contextmanager
def translating(settings: Settings, *, streaming: bool = False) -> Iterator[None]:
    """The boundary: nothing but a :mod:`sigla.errors` error leaves this block.

    The foreign exception is not chained (``__cause__``): it holds the request, whose
    headers carry the credential, and its traceback runs through SDK frames whose locals
    hold it too. What matters of it (status, code, request id, a body excerpt) is on the
    sigla error, whose traceback starts here.
    """
    try:
        yield
    except LLMError as raised:
        error = raised
    except Exception as exc:
        error = translate(exc, settings, streaming=streaming)
    else:
        return
    raise detached(scrub(error, settings))


def detached(error: LLMError) -> LLMError:
    """``error`` cut loose from the exceptions and frames below the boundary.

    Re-raising it outside an ``except`` block then leaves ``__context__`` empty.
    """
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = False
    return error.with_traceback(None)
