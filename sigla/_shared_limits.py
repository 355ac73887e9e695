"""One rate-limit budget shared by every process and machine that reaches one store.

The service counts requests per credential and model, not per process: four workers
that each keep their own limiter send four times the limit. ``limiter=`` (or
``SIGLA_LIMITER_URL``) names a store that holds the budget instead: an SQLite file for the
processes of one machine, a Redis database for many machines.

:class:`SharedLimiter` is what the transport's gate (:class:`~sigla._admission.Admission`)
talks to, with the in-process :class:`~sigla._limits.Limiter`'s interface; every
operation is one atomic step in the store (a Lua script in Redis, an ``IMMEDIATE``
transaction in SQLite) on the store's own clock, so processes whose clocks differ still
count one window. The store keeps:

- each booking (its time and estimated tokens) for the per-minute, per-day and
  tokens-per-minute windows, pruned as they age out;
- the concurrent-request cap and a batch's learned concurrency as **leases that
  expire**: a process renews the leases it holds every third of their time to live
  (``lease_ttl``, 30 s by default), so a worker killed with SIGKILL frees its slots
  within that time;
- the pause a 429's retry-after asks of every worker, and the learned concurrency.

Budgets are named by the endpoint (without credentials), the model and a SHA-256 digest
of the credential: never the credential. A store that cannot serve raises
:class:`~sigla.errors.StoreUnavailableError` naming it: sigla never falls back to a
private budget, which is how quotas get overspent.

Why not pyrate-limiter or ``limits``: both keep windows of requests admitted *now*; the
gate books a slot ahead and sleeps for it (a batch paces itself), gives a booking back
when interrupted, moves it when a thread woke late and corrects its tokens once the usage
is known, and takes a concurrency lease in the same budget. Each of those would be a
second, non-atomic call around the library's, which is the read-then-write race this
module exists to avoid; the windows themselves are twenty lines of Lua or SQL.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from ._cancel import SCOPE
from ._limit_store import (
    LEASE_TTL,
    LIMITER_ENV,
    Learned,
    LimiterTarget,
    LimitStore,
    budget_name,
    open_store,
    parse_limiter_url,
    resolve_limiter,
)
from ._limits import ADAPTIVE_CEILING, ADAPTIVE_START, DAY, MARGIN, MINUTE, RateLimits
from ._retry import describe_wait
from .errors import RateLimitError, StoreUnavailableError

__all__ = [  # the settings and the store's names are re-exported: one place to import from
    "LIMITER_ENV",
    "LimitStore",
    "LimiterTarget",
    "SharedLimiter",
    "budget_name",
    "open_store",
    "parse_limiter_url",
    "resolve_limiter",
]

logger = logging.getLogger("sigla")

MIN_MARGIN = 0.25  # seconds of safety margin kept by a window shortened by time_scale
_FOREVER = 1e18  # "no bound" for the store scripts (Lua has no infinity literal)
_POLL_FIRST, _POLL_MOST = 0.001, 0.02  # waiting for a lease: another process frees it


# ---------------------------------------------------------------- leases


def _after_answer(action: Callable[[], object], what: str, where: str) -> None:
    """Run a store write that follows a request (freeing its lease, settling its tokens,
    learning from it): if the store is gone meanwhile, warn and go on. The answer was
    received and must not be lost for bookkeeping; the next request's own store calls fail
    loudly, and a lease left behind expires within its TTL."""
    try:
        action()
    except StoreUnavailableError as exc:
        logger.warning("sigla: could not %s in %s: %s", what, where, exc.message)


class _Renewer:
    """One daemon thread per process renewing every lease it holds, each third of a TTL."""

    def __init__(self) -> None:
        self._holders: weakref.WeakSet[SharedSlots] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def watch(self, slots: SharedSlots) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread is not here
                self.__init__()  # type: ignore[misc]
            self._holders.add(slots)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="sigla-lease-renewer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            holders = list(self._holders)
            every = min((h.ttl for h in holders), default=LEASE_TTL) / 3
            self._wake.wait(every)
            for holder in holders:
                try:
                    holder.renew()
                except Exception as exc:  # the store is down: calls will say so
                    logger.warning("sigla: could not renew leases in %s: %s", holder.where, exc)


_renewer = _Renewer()


class SharedSlots:
    """A concurrent-request cap held as leases in the store; :class:`~sigla._slots.Slots`'
    interface. ``capacity`` None: the budget's learned concurrency."""

    def __init__(
        self,
        store: LimitStore,
        budget: str,
        kind: str,
        capacity: int | None,
        ttl: float,
        start: float = ADAPTIVE_START,
    ) -> None:
        self.store, self.budget, self.kind = store, budget, kind
        self.capacity = capacity
        self.ttl = ttl
        self.start = start
        self._held: list[str] = []
        self._lock = threading.Lock()
        self._turn = threading.Condition()  # whose turn it is to poll the store
        self._polling = False
        self._pid = os.getpid()

    @property
    def where(self) -> str:
        return self.store.location

    def _take(self) -> bool:
        lease = uuid.uuid4().hex
        if not self.store.lease(self.budget, self.kind, lease, self.capacity, self.ttl, self.start):
            return False
        with self._lock:
            self._held.append(lease)
        _renewer.watch(self)
        return True

    def _forked(self) -> None:
        """In a forked child: the parent's leases and locks are not this process's."""
        if self._pid != os.getpid():
            self._held, self._pid = [], os.getpid()
            self._lock, self._turn, self._polling = threading.Lock(), threading.Condition(), False

    def acquire(self, timeout: float | None) -> bool:
        """Take a lease, polling the store up to ``timeout`` s (None: as long as it takes).

        One thread of the process polls at a time, backing off to :data:`_POLL_MOST`; the
        others wait for it locally, so waiting threads cost no store traffic and no CPU.
        A lease this process gives back wakes the poller at once. A batch's worker stops
        waiting once its batch is stopped or cancelled (other processes may hold the
        leases for long)."""
        self._forked()
        deadline = None if timeout is None else time.monotonic() + timeout
        scope = SCOPE.get()
        with self._turn:
            while True:
                if scope is not None:
                    scope.check_send()
                if not self._polling:
                    self._polling = True
                    try:
                        return self._poll(deadline, scope)
                    finally:
                        self._polling = False
                        self._turn.notify()  # the next waiter polls now
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._turn.wait(_POLL_MOST if left is None else min(left, _POLL_MOST))

    def _poll(self, deadline: float | None, scope: Any) -> bool:
        """The poller's loop (holding :attr:`_turn`, released around each store call)."""
        pause = _POLL_FIRST
        while True:
            self._turn.release()
            try:
                if self._take():
                    return True
            finally:
                self._turn.acquire()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._turn.wait(pause if left is None else min(pause, left))  # a release wakes it
            pause = min(pause * 1.5, _POLL_MOST)
            if scope is not None:
                scope.check_send()

    async def aacquire(self, timeout: float | None) -> bool:
        """:meth:`acquire` for the event loop (each store call takes well under 1 ms)."""
        import asyncio

        self._forked()
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _POLL_FIRST
        while not self._take():
            if deadline is not None and time.monotonic() + pause > deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, _POLL_MOST)
        return True

    def release(self) -> None:
        with self._lock:
            lease = self._held.pop() if self._held else None
        if lease is not None:
            _after_answer(
                lambda: self.store.release(self.budget, self.kind, lease),
                "free a concurrent-request lease",
                self.where,
            )
            with self._turn:
                self._turn.notify_all()  # a lease is free: the poller tries at once

    def renew(self) -> None:
        with self._lock:
            held = list(self._held) if self._pid == os.getpid() else []
        if held:
            self.store.renew(self.budget, self.kind, held, self.ttl)


class SharedAdaptive:
    """The learned concurrency kept in the store: :class:`~sigla._slots.AdaptiveConcurrency`'s
    interface. :attr:`round` is the one last seen (each booking reads it)."""

    def __init__(self, store: LimitStore, budget: str, start: int, ceiling: int, ttl: float):
        self.store, self.budget = store, budget
        self.ceiling = ceiling
        self.start = float(start)
        self.slots = SharedSlots(store, budget, "a", None, ttl, start=self.start)
        self.round = 0
        self._value = self.start

    @property
    def value(self) -> float:
        learned = self.store.learn(self.budget, self.start, self.ceiling)
        self._value, self.round = learned
        return learned.value

    def seen(self, learned: Learned) -> None:
        self._value, self.round = learned

    def succeeded(self) -> None:
        if self._value < self.ceiling:  # at the ceiling a success changes nothing
            _after_answer(
                lambda: self.seen(
                    self.store.learn(self.budget, self.start, self.ceiling, succeeded=True)
                ),
                "record a success in the learned concurrency",
                self.store.location,
            )

    def overloaded(self, sent_in_round: int, stated: int | None = None) -> None:
        if stated is not None:  # the service said what its cap is: never grow past it
            self.ceiling = max(1, min(stated, self.ceiling))
        _after_answer(
            lambda: self.seen(
                self.store.learn(
                    self.budget,
                    self.start,
                    self.ceiling,
                    sent_in_round=sent_in_round,
                    stated=stated,
                )
            ),
            "lower the learned concurrency",
            self.store.location,
        )


# ---------------------------------------------------------------- the budget


class SharedLimiter:
    """One budget in a shared store, with :class:`~sigla._limits.Limiter`'s interface.

    Bookings are tickets (opaque ids), not times: several processes may book the same
    instant.
    """

    def __init__(
        self,
        store: LimitStore,
        budget: str,
        limits: RateLimits,
        clock: Callable[[], float],
        *,
        lease_ttl: float = LEASE_TTL,
        time_scale: float = 1.0,
    ) -> None:
        self.store, self.budget, self.limits, self.clock = store, budget, limits, clock
        self.explicit = True
        self._scale = time_scale
        self._minute = MINUTE * time_scale
        # The margin is for clock and network skew, which do not shrink with the windows.
        self._margins = {
            name: max(MARGIN[span] * time_scale, min(MARGIN[span], MIN_MARGIN))
            for name, span in _SPANS.items()
        }
        self._windows = [
            (span * time_scale + self._margins[name], size, name)
            for name, span, size in (
                ("minute", MINUTE, limits.requests_per_minute),
                ("day", DAY, limits.requests_per_day),
            )
            if size
        ]
        self._keep = max([span for span, _, _ in self._windows] + [self._token_span])
        self.slots = (
            SharedSlots(store, budget, "c", limits.concurrent_requests, lease_ttl)
            if limits.concurrent_requests
            else None
        )
        ceiling = min(
            limits.concurrent_requests or ADAPTIVE_CEILING,
            limits.requests_per_minute or ADAPTIVE_CEILING,
        )
        start = min(limits.concurrent_requests or ADAPTIVE_START, ceiling)
        self.adaptive = SharedAdaptive(store, budget, start, ceiling, lease_ttl)

    @property
    def _token_span(self) -> float:
        return self._minute + self._margins["minute"]

    def __repr__(self) -> str:
        return f"SharedLimiter({self.store.location!r}, limits=({self.limits}))"

    # -- windows

    def book(self, max_wait: float, tokens: int = 0, patient: bool = False) -> tuple[str, float]:
        """Book a slot in the shared windows: ``(ticket, seconds to wait)``; see
        :meth:`~sigla._limits.Limiter.book`."""
        ticket = uuid.uuid4().hex
        tpm = self.limits.tokens_per_minute or 0
        allow = {
            "day": max_wait + self._margins["day"],
            "minute": _FOREVER if patient else max_wait + self._margins["minute"],
        }
        allow["minute (tokens)"] = allow["minute"]
        answer = self.store.book(
            self.budget,
            ticket,
            self._windows,
            self._keep,
            tokens if tpm else 0,
            tpm,
            self._token_span,
            allow,
        )
        if not answer.booked:
            which, wait = answer.which, answer.wait
            raise RateLimitError(
                f"sigla's shared client-side limit ({self.limits}, in {self.store.location}) "
                f"is used up for this {which}: the next request may go in {wait:.0f} s, over "
                f"max_retry_wait={max_wait:g} s. Try again later, or pass limits= to change "
                "the limits.",
                status_code=429,
                client_side=True,
                retry_after=wait,
                limit_type=f"sigla {'tokens' if 'tokens' in which else 'requests'} per "
                + ("day" if which == "day" else "minute"),
            )
        return ticket, answer.wait

    def cancel(self, slot: str, tokens: int = 0) -> None:
        self.store.cancel(self.budget, slot)

    def sent(self, slot: str, tokens: int = 0) -> str:
        self.store.sent(self.budget, slot)
        return slot

    def settle(self, slot: str, estimated: int, used: int) -> None:
        _after_answer(
            lambda: self.store.settle(self.budget, slot, used),
            "count an answer's tokens",
            self.store.location,
        )

    # -- the pause a 429 asks for

    def pause(self, seconds: float, limit_type: str | None = None) -> None:
        _after_answer(
            lambda: self.store.pause(self.budget, seconds, limit_type),
            "pause the budget as a 429 asked",
            self.store.location,
        )

    def pause_check(self, max_wait: float, after: float = float("-inf")) -> tuple[float, float]:
        """:meth:`~sigla._limits.Limiter.pause_check` in one read of the store."""
        left, limit_type, until = self.store.paused(self.budget)
        return until, (self._wait_out(left, limit_type, max_wait) if until > after else 0.0)

    def paused_for(self, max_wait: float) -> float:
        left, limit_type, _ = self.store.paused(self.budget)
        return self._wait_out(left, limit_type, max_wait)

    def _wait_out(self, left: float, limit_type: str | None, max_wait: float) -> float:
        if left <= 0:
            return 0.0
        if left > max_wait:
            raise RateLimitError(
                f"The service asked every request of this model to wait {describe_wait(left)} "
                f"(a 429 seen by a worker sharing {self.store.location}), longer than "
                f"max_retry_wait={max_wait:g} s, so sigla did not send this one. Try again "
                "later, or raise max_retry_wait.",
                status_code=429,
                client_side=True,
                retry_after=left,
                limit_type=limit_type,
            )
        return left

    # -- concurrent requests

    def _no_slot(self, timeout: float | None) -> RateLimitError:
        return RateLimitError(
            f"No concurrent-request slot of sigla's shared client-side limit ({self.limits}, "
            f"in {self.store.location}) freed within {timeout:g} s: other workers hold them "
            "all (a worker that died frees its slots within lease_ttl).",
            status_code=429,
            client_side=True,
            retry_after=None,
            limit_type="sigla concurrent requests",
        )

    def acquire(self, timeout: float | None) -> None:
        if self.slots is not None and not self.slots.acquire(timeout):
            raise self._no_slot(timeout)

    async def aacquire(self, timeout: float | None) -> None:
        if self.slots is not None and not await self.slots.aacquire(timeout):
            raise self._no_slot(timeout)

    def release(self) -> None:
        if self.slots is not None:
            self.slots.release()


_SPANS = {"minute": MINUTE, "day": DAY}
