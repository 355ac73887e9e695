"""The one exception tree of sigla.

Every failure a call can meet (bad configuration, a transport fault, an answer of the
service, a broken stream) reaches the caller as one of these classes, never as a raw
``mistralai`` or ``httpx`` exception. The root is a ``RuntimeError`` because the original
SIGLA code raised ``RuntimeError`` and its callers catch that.

::

    LLMError(RuntimeError)
     ├─ ConfigurationError              settings that cannot work; fix them, do not retry
     │   ├─ MissingTokenError           no credential found
     │   ├─ MissingDependencyError      an optional extra is not installed (also ImportError)
     │   └─ StoreUnavailableError       a shared limiter or cache store cannot serve
     ├─ InvalidRequestError             the request itself is malformed (also ValueError)
     │   └─ PromptFileError             a .prompt.yml file is invalid: path, line, field
     │       └─ MissingVariablesError   its messages use {{variables}} not given
     ├─ APIConnectionError              the service could not be reached
     │   └─ APITimeoutError             ... or did not answer in time
     ├─ APIStatusError                  the service answered with an error status
     │   ├─ AuthenticationError         401: the token is bad or lacks models:read
     │   │   └─ PermissionDeniedError   403: the token may not use this model
     │   ├─ ModelNotFoundError          404 unknown_model, 400 "expected format"
     │   ├─ InputTooLargeError          413 tokens_limit_reached
     │   ├─ RateLimitError              429, with ``retry_after`` in seconds
     │   ├─ ServerError                 5xx (and 408)
     │   └─ GitHubModelsRetiredError    410, or 403/404 carrying Sunset/Deprecation
     ├─ InvalidResponseError            a 2xx answer that is not a chat completion
     ├─ ContentFilteredError            the prompt or the answer was filtered
     ├─ StreamError                     a stream was cut or ended without finish_reason
     ├─ BatchError                      a map() in which some items failed (``results``)
     └─ NotAttemptedError               a batch item never sent: the batch stopped first

Messages keep the service's own words and add what to do next. No message, ``repr`` or
attribute of these classes carries the credential.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LLMError",
    "ConfigurationError",
    "MissingTokenError",
    "MissingDependencyError",
    "StoreUnavailableError",
    "InvalidRequestError",
    "PromptFileError",
    "MissingVariablesError",
    "APIConnectionError",
    "APITimeoutError",
    "APIStatusError",
    "AuthenticationError",
    "PermissionDeniedError",
    "ModelNotFoundError",
    "InputTooLargeError",
    "RateLimitError",
    "ServerError",
    "GitHubModelsRetiredError",
    "InvalidResponseError",
    "ContentFilteredError",
    "StreamError",
    "BatchError",
    "NotAttemptedError",
]


class LLMError(RuntimeError):
    """Root of every error sigla raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by state rather than by ``__init__``'s arguments, which subclasses make
        keyword-only: a data engine (Dask, Ray, Spark) ships a worker's error to the driver,
        and one that cannot be unpickled there hides what went wrong."""
        return (_unpickle_error, (type(self), self.message, dict(self.__dict__)))


class ConfigurationError(LLMError):
    """The settings cannot work (unknown provider, missing endpoint...): fix them."""


class MissingTokenError(ConfigurationError):
    """No credential was found in the argument, the environment or the GitHub CLI."""


class StoreUnavailableError(ConfigurationError):
    """A shared store (``limiter=``, ``cache=``) cannot serve: the message names it, its
    password masked. sigla never falls back to a private budget or no cache instead."""


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


class InvalidRequestError(LLMError, ValueError):
    """The request is malformed (bad message role, bad parameter); fix the call."""


class PromptFileError(InvalidRequestError):
    """A prompt file (``.prompt.yml``) cannot be used as written: fix the file.

    It carries ``path``, ``line`` and ``column`` (1-based, None when unknown), ``field``
    (like ``modelParameters.temperature`` or ``messages[1].role``) and ``problem`` (the
    message alone); ``str()`` is ``path:line:column: field: problem``. A subclass of
    :class:`InvalidRequestError` because the file is the request's definition: nothing
    was sent, and retrying cannot help.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        where = ":".join(str(p) for p in (path, line, column) if p is not None)
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")
        self.path, self.line, self.column, self.field = path, line, column, field
        self.problem = problem


class MissingVariablesError(PromptFileError):
    """A prompt's messages use ``{{name}}`` placeholders that no variable fills.

    ``missing`` lists every such name, in order of first use.
    """

    def __init__(self, problem: str, *, missing: tuple[str, ...] = (), **where: Any) -> None:
        super().__init__(problem, **where)
        self.missing = missing


class APIConnectionError(LLMError):
    """The service could not be reached, or the connection broke before an answer.

    ``request_sent`` is true when the request had gone out in full: the service may be
    working on it (or billing it), so a timeout then is not retried by default.
    """

    def __init__(self, message: str, *, request_sent: bool = False) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError):
    """The service did not answer within ``timeout`` seconds."""


class APIStatusError(LLMError):
    """The service answered with an error status.

    Attributes: ``status_code``, ``code`` (the service's error code, e.g. ``no_access``),
    ``request_id`` (``x-request-id`` when the service sent one), ``body`` (its text).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        request_id: str | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.body = body


class AuthenticationError(APIStatusError):
    """401: the token is invalid or lacks the ``models:read`` permission."""


class PermissionDeniedError(AuthenticationError):
    """403: the token is valid but may not use this model (tier, org policy)."""


class ModelNotFoundError(APIStatusError):
    """The model does not exist or its id is not ``{publisher}/{model_name}``."""

    def __init__(self, message: str, *, model: str | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.model = model


class InputTooLargeError(APIStatusError):
    """413: the request is over the per-request input token limit (``limit``, when known)."""

    def __init__(self, message: str, *, limit: int | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.limit = limit


class RateLimitError(APIStatusError):
    """429: too many requests. ``retry_after`` is how many seconds the service asked to wait.

    ``limit_type`` is GitHub's ``x-ratelimit-type`` (``UserByModelByMinute``,
    ``UserByModelByDay``, ``UserConcurrentRequests``...) when it was sent. ``client_side``
    is true when sigla's own limiter refused the request before sending it.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        limit_type: str | None = None,
        client_side: bool = False,
        **kw: object,
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.limit_type = limit_type
        self.client_side = client_side


class ServerError(APIStatusError):
    """5xx or 408: the service failed; retried, then raised."""


class GitHubModelsRetiredError(APIStatusError):
    """GitHub Models was retired on 2026-07-30; the message says how to switch provider."""


class InvalidResponseError(LLMError):
    """The service answered, but not with a chat completion sigla can read.

    Usually the endpoint or provider does not match the server (a web page, another API);
    not retried, since asking again would get the same answer.
    """


class ContentFilteredError(LLMError):
    """The prompt (HTTP 400) or the answer (``finish_reason == "content_filter"``) was filtered.

    ``text`` holds whatever part of the answer arrived before the filter stopped it.
    """

    def __init__(self, message: str, *, text: str = "", status_code: int | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.status_code = status_code


class StreamError(LLMError):
    """A stream broke: cut mid-way, an error event, or no ``finish_reason`` at its end.

    ``text`` holds what was received before it broke, so nothing is silently lost.
    """

    def __init__(self, message: str, *, text: str = "") -> None:
        super().__init__(message)
        self.text = text


class NotAttemptedError(LLMError):
    """A batch item that was never sent, because an error that dooms every remaining item
    (authentication, a spent daily quota, retirement...) stopped the batch first.

    ``reason`` is that error. Run the batch again once it is fixed; with the cache on, the
    items already answered are not sent again.
    """

    def __init__(self, message: str, *, reason: LLMError | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class BatchError(LLMError):
    """``map()`` finished with failed items; nothing already received is lost.

    ``results`` is aligned with the inputs: each entry is the answer (``str``), the item's
    error (an :class:`LLMError`), or a :class:`NotAttemptedError`. ``errors`` lists the
    failed ``(index, error)`` pairs; ``reason`` is the error that stopped the batch early,
    if one did.
    """

    def __init__(
        self,
        message: str,
        *,
        results: list[str | LLMError] | None = None,
        reason: LLMError | None = None,
    ) -> None:
        super().__init__(message)
        self.results: list[str | LLMError] = [] if results is None else results
        self.reason = reason

    @property
    def errors(self) -> list[tuple[int, LLMError]]:
        """The failed items as ``(index, error)``, not-attempted ones included."""
        return [(i, r) for i, r in enumerate(self.results) if isinstance(r, LLMError)]


def _unpickle_error(cls: type[LLMError], message: str, state: dict[str, Any]) -> LLMError:
    """Rebuild an error pickled by :meth:`LLMError.__reduce__` without calling its
    ``__init__``."""
    error = cls.__new__(cls, message)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error
