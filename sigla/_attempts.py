"""The retry loop of one client: attempts, the waits between them, and the error that ends it.

:class:`Attempts` runs a call's attempts (sync or async) under the client-side limits, cuts
each attempt's timeout to what ``total_timeout`` leaves, asks the pure policy of
:mod:`sigla._retry` how long to wait, logs each wait as a notice, and raises the final error
detached from the exceptions below the boundary, saying how many attempts were made.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._admission import Admission
from ._cancel import check_cancelled
from ._config import Settings
from ._core import StreamAssembler, Usage
from ._limits import Limiter, estimate_tokens
from ._retry import CallBudget, describe_wait, next_delay
from ._streams import broken_stream
from ._text import shown
from ._translate import detached, excerpt
from ._usage import UsageTotals
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    LLMError,
    RateLimitError,
    StreamError,
)

__all__ = ["Attempts", "check_total_timeout"]

logger = logging.getLogger("sigla")
T = TypeVar("T")


class Attempts:
    """How one client retries: its settings, limiter, sleeps, clock and bounds."""

    def __init__(
        self,
        settings: Settings,
        limiter: Limiter,
        *,
        sleep: Callable[[float], object],
        async_sleep: Callable[[float], Awaitable[object]],
        clock: Callable[[], float],
        retry_read_timeouts: bool,
        total_timeout: float | None,
        queue_timeout: float | None = None,
    ) -> None:
        self.settings = settings
        self.queue_timeout = queue_timeout
        self.sleep = sleep
        self.async_sleep = async_sleep
        self.retry_read_timeouts = retry_read_timeouts
        self.total_timeout = total_timeout
        self.limiter = limiter
        self.usage = UsageTotals()
        self._clock = clock

    def budget(self) -> CallBudget:
        """What ``total_timeout`` leaves of a call that starts now."""
        return CallBudget(self.total_timeout, self.settings.timeout, self._clock)

    def cut(self, call: dict[str, Any], budget: CallBudget) -> dict[str, Any]:
        """``call`` for the next attempt: its timeout cut to what ``total_timeout`` leaves."""
        try:
            timeout = budget.attempt_timeout()
        except LLMError as spent:
            error = spent
        else:
            if timeout >= self.settings.timeout:
                return call
            return {**call, "timeout_ms": max(1, int(timeout * 1000))}
        raise detached(error)

    def admitted(self, call: dict[str, Any]) -> Admission:
        """The gate of one attempt: the transport passes it right before sending ``call``
        (limits, pause), and leaving the ``with`` block frees its slot as a last resort."""
        limiter = self.limiter
        return Admission(
            limiter,
            max_wait=self.settings.max_retry_wait,
            queue_wait=self.queue_timeout,
            sleep=self.sleep,
            async_sleep=self.async_sleep,
            label=self.settings.model,
            tokens=estimate_tokens(call) if limiter.limits.tokens_per_minute else 0,
            usage=self.usage,
        )

    def succeeded(self, gate: Admission, usage: Usage | None) -> None:
        """Count an answer: its tokens in the totals and in the limiter's budget."""
        gate.succeeded(usage.total_tokens if usage is not None else None)
        if usage is not None:
            self.usage.add(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
            )

    def run(self, once: Callable[[CallBudget], T], what: str) -> T:
        """Run ``once`` until it succeeds or the retry policy gives up (sync)."""
        budget = self.budget()
        attempt = 0
        while True:
            try:
                return once(budget)
            except LLMError as caught:
                error = caught
            self.sleep(self.next(error, attempt, what, budget=budget))
            attempt += 1

    async def arun(self, once: Callable[[CallBudget], Awaitable[T]], what: str) -> T:
        """Async twin of :meth:`run`."""
        budget = self.budget()
        attempt = 0
        while True:
            try:
                return await once(budget)
            except LLMError as caught:
                error = caught
            await self.async_sleep(self.next(error, attempt, what, budget=budget))
            attempt += 1

    def next(
        self,
        error: LLMError,
        attempt: int,
        what: str,
        assembler: StreamAssembler | None = None,
        budget: CallBudget | None = None,
    ) -> float:
        """Seconds to wait before the next attempt (logged), or raise the final error.

        Call it outside an ``except`` block: the error leaves with no ``__context__``. For
        a stream (``assembler`` given) that already yielded text, any failure is raised at
        once as a :class:`~sigla.errors.StreamError` carrying that text.
        """
        if budget is not None and isinstance(error, APITimeoutError):
            left = budget.left()
            if left is not None and left <= 0.01:  # the call's bound, not timeout, ran out
                error = self._gave_up(
                    error, 0, f"The call used up total_timeout={budget.total:g} s."
                )
        if assembler is not None and assembler.parts:
            raise detached(broken_stream(error, assembler.text))
        started = None if assembler is None else False
        delay = self._delay(error, attempt, what, started)
        if delay is None:
            raise detached(self._gave_up(error, attempt))
        if budget is not None and not budget.allows(delay):
            note = f"The next wait would pass total_timeout={self.total_timeout:g} s."
            raise detached(self._gave_up(error, attempt, note))
        check_cancelled()  # a batch hit by Ctrl-C: no retry
        self.usage.add(retries=1)
        return delay

    def _gave_up(self, error: LLMError, attempt: int, note: str = "") -> LLMError:
        """``error`` with what the retries did: how many attempts, and a wait not taken."""
        notes = [note] if note else []
        asked = getattr(error, "retry_after", None)
        limit = self.settings.max_retry_wait
        if (
            isinstance(error, RateLimitError)
            and not error.client_side
            and asked is not None
            and asked > limit
        ):
            daily = "Day" in (error.limit_type or "")
            when = "The daily quota resets in" if daily else "That wait,"
            notes.append(
                f"{when} {describe_wait(asked)}, is longer than max_retry_wait={limit:g} s, "
                "so sigla did not wait: try again later, or raise max_retry_wait."
            )
        if attempt > 0:
            notes.append(f"(Gave up after {attempt + 1} attempts.)")
        if notes:
            text = " ".join([error.message, *notes])
            error.message = text
            error.args = (text, *error.args[1:])
        return error

    def _delay(
        self, error: LLMError, attempt: int, what: str, started: bool | None = None
    ) -> float | None:
        """Seconds to wait before the next attempt (logged as a notice), or None to give up."""
        delay = next_delay(
            error,
            attempt,
            max_retries=self.settings.max_retries,
            max_retry_wait=self.settings.max_retry_wait,
            stream_started=started,
            retry_read_timeouts=self.retry_read_timeouts,
        )
        if delay is not None:
            label = _short(error)
            logger.info(
                "%s: %s; retry %d of %d in %s",
                what,
                label,
                attempt + 1,
                self.settings.max_retries,
                describe_wait(delay),
                extra={
                    "sigla_notice": "retry",
                    "sigla_wait": delay,
                    "sigla_attempt": attempt + 1,
                    "sigla_max_retries": self.settings.max_retries,
                    "sigla_error": label,
                },
            )
            logger.debug("%s: retrying after %s: %s", what, type(error).__name__, error)
        return delay


def _short(error: LLMError) -> str:
    """A failure in a few words, for a retry notice: ``HTTP 429 (RateLimitReached)``."""
    if isinstance(error, APIStatusError):
        code = f" ({excerpt(error.code, 40)})" if error.code else ""
        return f"HTTP {error.status_code}{code} from the service"
    if isinstance(error, APITimeoutError):
        return "no answer in time"
    if isinstance(error, APIConnectionError):
        return "could not connect"
    if isinstance(error, StreamError):
        return "the stream broke before any text"
    return type(error).__name__


def check_total_timeout(value: float | None, name: str = "total_timeout") -> float | None:
    """``total_timeout=`` (or another bound ``name``) as given: seconds > 0, or None for
    no bound / the default; anything else is a clear error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e7:
        raise ConfigurationError(
            f"{name}= must be a number of seconds > 0 (or None for the default), "
            f"got {shown(value)}."
        )
    return float(value)
