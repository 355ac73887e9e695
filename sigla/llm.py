"""``GitHubLLM``: chat with a model of GitHub Models or one of its successors.

>>> from sigla.llm import GitHubLLM
>>> llm = GitHubLLM()                        # doctest: +SKIP
>>> llm.chat("What is the capital of France?")  # doctest: +SKIP
'The capital of France is Paris.'

Settings resolve once, in ``__init__`` (argument > environment > default); every failure
is a :mod:`sigla.errors` error; 429, 408, 5xx and connection faults are retried with
backoff. Importing this module is cheap: ``mistralai`` is imported on the first call.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import _constants as C
from ._async_api import AsyncMethods
from ._attempts import Attempts, check_total_timeout
from ._batch_api import BatchMethods
from ._catalog import ModelInfo, catalog_url, parse_catalog
from ._config import Settings, as_secret, resolve_settings
from ._core import (
    SSE_DONE,
    Completion,
    StreamAssembler,
    Usage,
    build_call,
    build_messages,
    check_filtered,
    check_sampling,
    completion_from_sdk,
    parse_sse_event,
    wire_for,
)
from ._limits import RateLimits, limiter_for
from ._record_api import RecordMethods
from ._retry import CallBudget
from ._secret import Secret
from ._streams import AsyncTextStream, Outcome, TextStream
from ._translate import error_from_status, for_call, translating
from ._usage import UsageTotals

if TYPE_CHECKING:
    from ._cache import ResponseCache
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BatchError,
    ConfigurationError,
    ContentFilteredError,
    GitHubModelsRetiredError,
    InputTooLargeError,
    InvalidRequestError,
    InvalidResponseError,
    LLMError,
    MissingDependencyError,
    MissingTokenError,
    MissingVariablesError,
    ModelNotFoundError,
    NotAttemptedError,
    PermissionDeniedError,
    PromptFileError,
    RateLimitError,
    ServerError,
    StoreUnavailableError,
    StreamError,
)

__all__ = [
    "GitHubLLM",
    "TextStream",
    "AsyncTextStream",
    "Completion",
    "Usage",
    "ModelInfo",
    "RateLimits",
    "UsageTotals",
    # the error tree, re-exported so `from sigla.llm import RateLimitError` works
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

logger = logging.getLogger("sigla")
T = TypeVar("T")
Messages = Sequence[Mapping[str, Any]]
StopArg = str | Sequence[str] | None


async def _asyncio_sleep(seconds: float) -> None:
    """``asyncio.sleep``, imported on first use: asyncio costs ~35 ms to import."""
    import asyncio

    await asyncio.sleep(seconds)


class GitHubLLM(BatchMethods, RecordMethods, AsyncMethods):
    """A chat model: ``chat()`` returns text, ``stream()`` yields it as it arrives.

    Example::

        llm = GitHubLLM(model="openai/gpt-4o-mini", temp=0.2)
        print(llm.chat("Summarise SIGLA in one line.", system="You are terse."))
        for piece in llm.stream("Write a limerick about SIGLA"):
            print(piece, end="", flush=True)

    ``model`` and ``temp`` keep the original SIGLA signature; everything else is
    keyword-only. ``sleep``/``async_sleep`` replace the waits between retries (tests use
    them to retry without waiting).
    """

    def __init__(
        self,
        model: str | None = None,
        temp: float | None = None,
        *,
        temperature: float | None = None,
        provider: str | None = None,
        token: str | Secret | None = None,
        endpoint: str | None = None,
        org: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_retry_wait: float | None = None,
        api_version: str | None = None,
        limits: RateLimits | None = None,
        max_response_bytes: int | None = None,
        retry_read_timeouts: bool = False,
        total_timeout: float | None = None,
        queue_timeout: float | None = None,
        cache: bool | str | os.PathLike[str] | None = None,
        limiter: str | None = None,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = _asyncio_sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        arguments = {k: v for k, v in locals().items() if k not in ("self", "token")}
        token = as_secret(token)  # no frame of sigla holds the credential in clear
        self._given: dict[str, Any] = arguments  # for pickling: what the caller chose
        self._token_given = token
        if temp is not None and temperature is not None and temp != temperature:
            raise InvalidRequestError("Pass temp= or temperature=, not both.")
        if limits is not None and not isinstance(limits, RateLimits):
            raise ConfigurationError(
                "limits= must be a RateLimits, e.g. RateLimits(requests_per_minute=10), "
                f"or None for the provider's defaults; got {type(limits).__name__}."
            )
        for name, given, like in (
            ("sleep", sleep, "time.sleep"),
            ("async_sleep", async_sleep, "asyncio.sleep"),
            ("clock", clock, "time.monotonic"),
        ):
            if not callable(given):
                raise ConfigurationError(
                    f"{name}= must be a function like {like}, got {type(given).__name__}."
                )
        self.settings: Settings = resolve_settings(
            provider=provider,
            model=model,
            token=token,
            endpoint=endpoint,
            org=org,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            api_version=api_version,
            limits=limits,
            max_response_bytes=max_response_bytes,
        )
        chosen = temperature if temperature is not None else temp
        check_sampling(temperature=chosen)
        self.temperature: float = C.DEFAULT_TEMPERATURE if chosen is None else float(chosen)
        self.retry_read_timeouts = bool(retry_read_timeouts)
        self.total_timeout = check_total_timeout(total_timeout)
        # How long a call waits for a concurrent-request slot of the client-side limit
        # (None: max_retry_wait). A server sets it longer than its short max_retry_wait.
        self.queue_timeout = check_total_timeout(queue_timeout, "queue_timeout")
        s = self.settings
        who = s.token.digest if s.token is not None else None
        shared = None
        if limiter is not None or os.environ.get("SIGLA_LIMITER_URL", "").strip():
            from ._shared_limits import resolve_limiter  # only when a shared budget is asked for

            shared = resolve_limiter(limiter)
        self._attempts = Attempts(
            s,
            limiter_for(
                s.endpoint, s.model, who, s.limits, clock, explicit=limits is not None, store=shared
            ),
            sleep=sleep,
            async_sleep=async_sleep,
            clock=clock,
            retry_read_timeouts=self.retry_read_timeouts,
            total_timeout=self.total_timeout,
            queue_timeout=self.queue_timeout,
        )
        self._backend: Any = None
        self.cache: ResponseCache | None = None
        if cache is not False and (cache is not None or os.environ.get("SIGLA_CACHE_URL")):
            from ._cache import open_cache  # sqlite3 or redis only when a cache is asked for

            self.cache = open_cache(cache)

    # -- what this client talks to

    @property
    def model(self) -> str:
        """The model id every call sends (``model=``, ``SIGLA_LLM_MODEL``, or the default)."""
        return self.settings.model

    @property
    def provider(self) -> str:
        """``github``, ``azure``, ``mistral`` or ``openai``."""
        return self.settings.provider

    @property
    def endpoint(self) -> str:
        """The base URL calls go to, normalised (no trailing route, ``/v1`` or query)."""
        return self.settings.endpoint

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle to settings; clients, pools, locks and sockets are rebuilt on first use.

        Settings resolved here from the environment travel as values (the worker uses the
        same model, endpoint, timeouts), except credentials: the token travels only when it
        was passed as ``token=``; one from the environment or ``gh auth token`` is resolved
        again in the new process, the same way, as is an endpoint from the environment
        whose URL holds a credential.
        """
        s, args = self.settings, dict(self._given)
        for name in ("provider", "model", "org", "timeout", "api_version", "max_retries"):
            if args.get(name) is None:
                args[name] = getattr(s, name)
        for name in ("max_retry_wait", "max_response_bytes"):
            if args.get(name) is None:
                args[name] = getattr(s, name)
        if args.get("endpoint") is None and not s.query and s.userinfo is None:
            args["endpoint"] = s.endpoint
        return (_rebuild, (args, self._token_given))

    @property
    def usage(self) -> UsageTotals:
        """What this client has spent so far: requests (retries included), tokens, retries
        and answers served from the cache; updated by every call, from any thread."""
        return self._attempts.usage

    def __repr__(self) -> str:
        return (
            f"GitHubLLM(provider={self.provider!r}, model={self.model!r}, "
            f"endpoint={self.settings.display_endpoint!r}, temperature={self.temperature!r})"
        )

    def _sdk(self) -> Any:
        if self._backend is None:
            from ._sdk import Backend

            self._backend = Backend(
                endpoint=self.settings.endpoint,
                api_key=self.settings.token,
                wire=wire_for(self.settings),
                azure=self.settings.provider == "azure",
            )
        return self._backend

    # -- the I/O-free part shared by every call

    def _prepare(
        self,
        prompt: str | None,
        system: str | None,
        messages: Messages | None,
        temperature: float | None,
        max_tokens: int | None,
        top_p: float | None,
        stop: StopArg,
        seed: int | None,
        model: str | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return build_call(
            self.settings,
            build_messages(prompt, system, messages),
            temperature=self.temperature if temperature is None else temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            stop=stop,
            seed=seed,
            model=model,
            response_format=response_format,
        )

    # -- the response cache

    def _cached(self, call: dict[str, Any]) -> tuple[str | None, Completion | None]:
        """The cache key of ``call`` (None without a cache) and the stored answer, if any.

        A hit sends nothing and books no limiter slot; it counts in ``usage.cached``.
        """
        cache = self.cache
        if cache is None:
            return None, None
        from ._cache import cache_key

        s = self.settings
        endpoint = s.endpoint if s.api_version is None else f"{s.endpoint}@{s.api_version}"
        key = cache_key(provider=s.provider, endpoint=endpoint, call=call)
        hit = cache.get(key)
        if hit is not None:
            self.usage.add(cached=1)
        return key, hit

    def _keep(self, key: str | None, completion: Completion) -> Completion:
        """Store a finished answer (stop or length) under ``key``; return it.

        The answer is received (and paid for) by now: a store that fails here (a Redis
        gone mid-run, a full disk) warns and the answer still reaches the caller, so a
        batch keeps it. The next lookup meets the same store and raises its error.
        """
        if key is not None and self.cache is not None:
            try:
                self.cache.put(key, completion)
            except ConfigurationError as error:
                warnings.warn(
                    f"An answer was received but not stored in the cache: {error.message}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return completion

    # -- sync

    def complete(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: Messages | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: StopArg = None,
        seed: int | None = None,
        model: str | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> Completion:
        """One answer with its ``finish_reason``, ``usage``, ``model`` and ``id``.

        A filtered answer is returned (``finish_reason == "content_filter"``), not raised.
        """
        call = self._prepare(
            prompt,
            system,
            messages,
            temperature,
            max_tokens,
            top_p,
            stop,
            seed,
            model,
            response_format,
        )
        key, hit = self._cached(call)
        if hit is not None:
            return hit
        backend = self._sdk()

        attempts = self._attempts

        def once(budget: CallBudget) -> Completion:
            with attempts.admitted(call) as gate, translating(for_call(self.settings, call)):
                completion = completion_from_sdk(backend.complete(attempts.cut(call, budget), gate))
            attempts.succeeded(gate, completion.usage)
            return completion

        return self._keep(key, attempts.run(once, "chat"))

    def chat(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: Messages | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: StopArg = None,
        seed: int | None = None,
        model: str | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> str:
        """The model's answer to ``prompt`` (or to ``messages=``) as text."""
        return check_filtered(
            self.complete(
                prompt,
                system=system,
                messages=messages,
                temperature=temperature,
                max_tokens=max_tokens,
                top_p=top_p,
                stop=stop,
                seed=seed,
                model=model,
                response_format=response_format,
            )
        ).text

    def stream(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: Messages | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: StopArg = None,
        seed: int | None = None,
        model: str | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> TextStream:
        """Yield the answer piece by piece as the service sends it.

        Raises :class:`~sigla.errors.StreamError` if the stream is cut or ends without a
        ``finish_reason`` (the text received so far is on the error), never ends silently.
        """
        call = self._prepare(
            prompt,
            system,
            messages,
            temperature,
            max_tokens,
            top_p,
            stop,
            seed,
            model,
            response_format,
        )
        return TextStream(lambda stream: self._stream(call, stream))

    def _stream(self, call: dict[str, Any], sink: Outcome) -> Iterator[str]:
        key, hit = self._cached(call)
        if hit is not None:
            sink.completion = check_filtered(hit)
            if hit.text:
                yield hit.text
            return
        backend = self._sdk()
        attempts = self._attempts
        budget = attempts.budget()
        attempt = 0
        while True:
            assembler = StreamAssembler()
            try:
                with (
                    attempts.admitted(call) as gate,
                    translating(for_call(self.settings, call), streaming=True),
                ):
                    events = backend.stream_events(
                        attempts.cut(call, budget), budget.deadline(), gate
                    )
                    try:
                        try:
                            for event in events:
                                data = parse_sse_event(event)
                                if data is SSE_DONE:
                                    break
                                piece = assembler.feed(data)
                                del data  # an open stream holds no parsed event meanwhile
                                if piece:
                                    yield piece
                        except Exception:
                            if assembler.finish_reason is None:
                                raise
                            # Complete already: the server closed without its [DONE].
                        completion = self._keep(key, assembler.finish())
                        attempts.succeeded(gate, completion.usage)
                        sink.completion = check_filtered(completion)
                    finally:
                        events.close()
                return
            except LLMError as caught:
                error = caught
            attempts.sleep(attempts.next(error, attempt, "stream", assembler, budget))
            attempt += 1

    def models(self) -> list[ModelInfo]:
        """The models the provider offers, for ``sigla models``.

        GitHub's catalog (``GET /catalog/models``); ``GET /v1/models`` for Mistral's API
        and OpenAI-compatible servers. Azure AI Foundry has no such list: its models are
        your deployments.
        """
        url = catalog_url(self.settings)
        backend = self._sdk()

        def once(budget: CallBudget) -> Any:
            with translating(self.settings):
                response = backend.get(
                    url, token=self.settings.token, timeout=budget.attempt_timeout()
                )
                if response.status_code >= 400:
                    raise error_from_status(
                        response.status_code, response.text, response.headers, self.settings
                    )
                return response.json()

        return parse_catalog(self._attempts.run(once, "models"))


def _rebuild(args: dict[str, Any], token: Secret | None) -> GitHubLLM:
    """Unpickle a :class:`GitHubLLM` (see :meth:`GitHubLLM.__reduce__`)."""
    return GitHubLLM(token=token, **args)
