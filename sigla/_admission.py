"""The gate a request passes right before it goes on the wire: the client-side limits.

:class:`Admission` is what the transport calls (``_transport.Gate``): it waits out a pause
a 429 asked for, takes the concurrent-request slots (the known cap's, and a batch's learned
one), books the budget's windows at that moment, and frees the slots once the answer is
read. What a 429 teaches the budget (pause, learned concurrency) comes back through it.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._cancel import CancelScope
from ._limits import Limiter
from ._retry import describe_wait
from ._slots import Slots
from ._usage import UsageTotals
from .errors import RateLimitError

__all__ = ["Admission", "BATCH", "Seat"]

logger = logging.getLogger("sigla")


class Admission:
    """One request's place under the client-side limits: the transport's gate.

    :meth:`enter` (or :meth:`aenter`) runs right before the request goes on the wire: it
    waits out a pause a 429 asked for, takes a concurrent-request slot, then books the
    windows at that moment (sleeping for the booking with the client's sleep, holding the
    slot: nobody else could send meanwhile). :meth:`leave` frees the slot once the answer
    is read or the stream closed; it runs once however the request ends, and the ``with``
    block around an attempt calls it as a last resort. A booking interrupted before the
    request went out is given back. A class, not an ``asynccontextmanager``:
    ``asyncio.run``'s ``shutdown_asyncgens()`` would finalise such a generator on its own
    while a stream is still using it.
    """

    def __init__(
        self,
        limiter: Limiter,
        *,
        max_wait: float,
        queue_wait: float | None = None,
        sleep: Callable[[float], object],
        async_sleep: Callable[[float], Awaitable[object]],
        label: str,
        tokens: int = 0,
        usage: UsageTotals | None = None,
    ) -> None:
        self.limiter = limiter
        self._usage = usage
        self._max_wait = max_wait
        # How long a request waits for a concurrent-request slot (a server's queue timeout);
        # None: as long as for any other client-side wait, max_wait.
        self._queue_wait = max_wait if queue_wait is None else queue_wait
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._label = label
        self._tokens = tokens if limiter.limits.tokens_per_minute else 0
        self._slot: float | None = None
        self._holding = False
        self._seat: Slots | None = None  # the batch's learned-concurrency slot, when held
        self.round = limiter.adaptive.round  # the adaptive round this request was sent in

    def _book(self, patient: bool) -> float:
        limiter = self.limiter
        self._slot, wait = limiter.book(self._max_wait, self._tokens, patient)
        self.round = limiter.adaptive.round
        if wait > 0:
            logger.info(
                "waiting %s for the client-side rate limit (%s) of %s",
                describe_wait(wait),
                limiter.limits,
                self._label,
                extra={
                    "sigla_notice": "rate_limit",
                    "sigla_wait": wait,
                    "sigla_limits": str(limiter.limits),
                },
            )
        return wait

    def _booked(self) -> float:
        assert self._slot is not None, "booked before sleeping for it"
        return self._slot

    def _pause_notice(self, wait: float) -> None:
        logger.info(
            "waiting %s: the service asked every request of %s to wait",
            describe_wait(wait),
            self._label,
            extra={"sigla_notice": "rate_limit", "sigla_wait": wait},
        )

    def _abort(self) -> None:
        """Undo what :meth:`enter` did before the request could go out."""
        if self._slot is not None:
            self.limiter.cancel(self._slot, self._tokens)
            self._slot = None
        self.leave()

    def _steps(self, batch: Seat | None) -> Iterator[tuple[str, Any]]:
        """What entering takes, as steps the sync and async drivers carry out in order:
        ``("sleep", seconds)``, ``("seat", slots)`` (a batch's learned slot, no time
        bound) and ``("slot", timeout)`` (the known cap's slot). Each step resumes only
        once done; the bookkeeping between them is shared, I/O-free."""
        limiter = self.limiter
        waited, wait = limiter.pause_check(self._max_wait)
        if wait > 0:
            self._pause_notice(wait)
            yield "sleep", wait
        if batch is not None and batch.slots is not None:
            yield "seat", batch.slots
            self._seat = batch.slots
        yield "slot", None if batch else self._queue_wait
        self._holding = True
        # A pause set while this one waited for its slot (not the one it slept out).
        _, wait = limiter.pause_check(self._max_wait, after=waited)
        if wait > 0:
            self._pause_notice(wait)
            yield "sleep", wait
        if batch is not None:
            batch.scope.check_send()
        wait = self._book(patient=batch is not None)
        if wait > 0:
            yield "sleep", wait
            if batch is not None:  # stopped or cancelled meanwhile: give it all back
                batch.scope.check_send()
            self._slot = limiter.sent(self._booked(), self._tokens)

    def enter(self) -> None:
        """Wait until this request may go on the wire (sync)."""
        try:
            for step, value in self._steps(BATCH.get()):
                if step == "sleep":
                    self._sleep(value)
                elif step == "seat":
                    value.acquire(None)
                else:
                    self.limiter.acquire(value)
        except BaseException:
            self._abort()
            raise
        self._sent()

    async def aenter(self) -> None:
        """Async twin of :meth:`enter`."""
        try:
            for step, value in self._steps(BATCH.get()):
                if step == "sleep":
                    await self._async_sleep(value)
                elif step == "seat":
                    await value.aacquire(None)
                else:
                    await self.limiter.aacquire(value)
        except BaseException:
            self._abort()
            raise
        self._sent()

    def _sent(self) -> None:
        if self._usage is not None:
            self._usage.add(requests=1)

    def leave(self) -> None:
        """Free the concurrent-request slots (once; later calls do nothing)."""
        seat, self._seat = self._seat, None
        if self._holding:
            self._holding = False
            self.limiter.release()
        if seat is not None:
            seat.release()

    def succeeded(self, used_tokens: int | None) -> None:
        """The answer came: count what its usage says it cost instead of the estimate, and
        let the learned concurrency grow."""
        if self._tokens and self._slot is not None and used_tokens:
            self.limiter.settle(self._slot, self._tokens, used_tokens)
        self.limiter.adaptive.succeeded()

    def refused(self, error: BaseException | None) -> None:
        """What a service's 429 teaches the budget: a wait it asked for holds every request
        of the budget, and a concurrency refusal lowers the learned concurrency."""
        if not isinstance(error, RateLimitError) or error.client_side:
            return
        if self._usage is not None:
            self._usage.add(rate_limited=1)
        wait = error.retry_after
        if wait:
            self.limiter.pause(wait, error.limit_type)
        if wait == 0 or "concurrent" in (error.limit_type or "").lower():
            stated = _STATED_CAP.search(error.message)
            self.limiter.adaptive.overloaded(self.round, int(stated[1]) if stated else None)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        self.refused(error)  # first: a pause must hold before the slot goes to a waiter
        self.leave()

    async def __aenter__(self) -> Admission:
        return self

    async def __aexit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        self.__exit__(kind, error, tb)


# GitHub's concurrency 429 states its cap: "Rate limit of 2 per 0s exceeded for ..."
_STATED_CAP = re.compile(r"Rate limit of (\d{1,4}) per 0s")


@dataclass(frozen=True)
class Seat:
    """What a batch's worker carries to the transport's gate (:data:`BATCH`).

    ``slots``: the learned concurrency, taken right before sending and freed once the
    answer is read, like the known cap's slots; ``scope``: stopped (a doomed batch sends
    nothing more) or cancelled (Ctrl-C). A batch's worker also waits for slots and for
    the minute's windows as long as it takes: the batch paces itself by the limits.
    """

    slots: Slots | None
    scope: CancelScope


BATCH: contextvars.ContextVar[Seat | None] = contextvars.ContextVar("sigla_batch", default=None)
