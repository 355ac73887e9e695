"""Retry decisions as pure functions: which errors to retry, and how long to wait.

The loops that sleep live in the client; everything here is deterministic given ``rand``,
so tests check the policy without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping

from . import _constants as C
from .errors import (
    APIConnectionError,
    APITimeoutError,
    LLMError,
    RateLimitError,
    ServerError,
    StreamError,
)

__all__ = [
    "CallBudget",
    "is_retryable",
    "backoff_delay",
    "next_delay",
    "retry_after_from_headers",
    "describe_wait",
]


def describe_wait(seconds: float) -> str:
    """A wait as a person reads it: ``0.25 s``, ``58 s``, ``12 min 5 s``, ``1 h 34 min``."""
    if seconds < 10:
        return f"{seconds:.2g} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def retry_after_from_headers(
    headers: Mapping[str, str], *, now: float | None = None
) -> float | None:
    """Seconds the service asked us to wait, or None when it did not say.

    Read in gh-models' order: ``x-ratelimit-timeremaining``, then ``retry-after-ms`` (Azure),
    then ``retry-after`` as seconds or as an HTTP date, then LiteLLM's relay of the upstream
    provider's ``llm_provider-retry-after``. A negative wait counts as 0.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    for name, scale in (
        ("x-ratelimit-timeremaining", 1.0),
        ("retry-after-ms", 0.001),
        ("retry-after", 1.0),
        ("llm_provider-retry-after", 1.0),
    ):
        raw = lower.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) * scale)
        except ValueError:
            pass
        if name.endswith("retry-after"):
            import email.utils

            try:
                when = email.utils.parsedate_to_datetime(raw).timestamp()
            except (TypeError, ValueError, IndexError):
                continue
            return max(0.0, when - (time.time() if now is None else now))
    return None


def is_retryable(
    error: LLMError, *, stream_started: bool | None = None, retry_read_timeouts: bool = False
) -> bool:
    """429, 408, 5xx and connection failures are worth another try; nothing else is.

    For a stream (``stream_started`` not None), a cut before the first piece reached the
    caller is retried too; after it, nothing is, since the caller already has part of it.
    A timeout after the request was sent is not retried unless ``retry_read_timeouts``:
    the server may still be generating (a local model serving one request at a time would
    then queue the retries behind it), and a paid service may bill the abandoned request.
    """
    if stream_started:
        return False
    if stream_started is False and isinstance(error, StreamError):
        return True
    if isinstance(error, RateLimitError):
        return not error.client_side  # sigla's own limiter already waited as long as allowed
    if isinstance(error, APITimeoutError) and error.request_sent:
        return retry_read_timeouts
    return isinstance(error, (ServerError, APIConnectionError))


def backoff_delay(
    attempt: int,
    *,
    base: float = C.RETRY_BASE_DELAY,
    cap: float = C.RETRY_MAX_BACKOFF,
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with jitter, never below half the step (so it never spins)."""
    step = min(cap, base * (2**attempt))
    return step * (0.5 + rand() / 2)


def next_delay(
    error: LLMError,
    attempt: int,
    *,
    max_retries: int,
    max_retry_wait: float,
    rand: Callable[[], float] = random.random,
    stream_started: bool | None = None,
    retry_read_timeouts: bool = False,
) -> float | None:
    """How long to wait before retry number ``attempt + 1``, or None to give up now.

    A wait the service asks for is honoured (plus a little jitter so that clients do not
    return in lockstep); one longer than ``max_retry_wait`` (GitHub's daily quota asks for
    hours) means give up at once. ``retry-after: 0`` (the concurrency cap) gets the normal
    backoff instead of an immediate hot retry.
    """
    if attempt >= max_retries or not is_retryable(
        error, stream_started=stream_started, retry_read_timeouts=retry_read_timeouts
    ):
        return None
    asked = getattr(error, "retry_after", None)
    if asked is not None and asked > max_retry_wait:
        return None
    if asked:
        return asked + C.RETRY_BASE_DELAY * rand()
    return backoff_delay(attempt, rand=rand)


class CallBudget:
    """What ``total_timeout`` leaves of one call: it bounds every attempt and every wait.

    ``clock`` is the client's (injectable) clock; deadlines handed to the transport are in
    ``time.monotonic()``, the clock sockets time out in.
    """

    def __init__(
        self, total: float | None, timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.total = total
        self.timeout = timeout
        self._clock = clock
        self._started = clock()

    def left(self) -> float | None:
        """Seconds left of the call, or None when it has no total bound."""
        if self.total is None:
            return None
        return self.total - (self._clock() - self._started)

    def attempt_timeout(self) -> float:
        """The timeout of the next attempt: ``timeout``, or less when the call is nearly over.

        Raises :class:`~sigla.errors.APITimeoutError` once nothing is left.
        """
        left = self.left()
        if left is None:
            return self.timeout
        if left <= 0:
            raise APITimeoutError(
                f"The call used up its total_timeout={self.total:g} s (attempts and the waits "
                "between them). Raise total_timeout, or lower max_tokens for a shorter answer."
            )
        return min(self.timeout, left)

    def deadline(self) -> float | None:
        """When the call must end, in ``time.monotonic()`` time (for streams), or None."""
        left = self.left()
        return None if left is None else time.monotonic() + max(0.0, left)

    def allows(self, delay: float) -> bool:
        """Whether waiting ``delay`` seconds still leaves time for another attempt."""
        left = self.left()
        return left is None or delay < left
