"""Slots that threads and event loops wait for together, and the concurrency sigla learns.

:class:`Slots` is a counting semaphore shared by threads and by coroutines on any event loop:
waiters are served first come, first served, a freed slot is handed straight to the next
waiter (a thread's event is set, a coroutine's future resolved on its own loop), and nobody
polls. Its capacity can change while in use, which :class:`AdaptiveConcurrency` does: it
halves on a concurrency 429 and grows back slowly on success (AIMD, as TCP does).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

__all__ = ["Slots", "AdaptiveConcurrency"]


class _Waiter:
    __slots__ = ("event", "future", "granted", "loop")

    def __init__(self, event: threading.Event | None, loop: Any = None, future: Any = None):
        self.event = event
        self.loop = loop
        self.future = future
        self.granted = False


def _resolve(future: Any) -> None:
    if not future.done():
        future.set_result(True)


class Slots:
    """``capacity`` slots (``None``: no cap), taken with :meth:`acquire` or :meth:`aacquire`."""

    def __init__(self, capacity: int | None) -> None:
        self._capacity = capacity
        self._used = 0
        self._lock = threading.Lock()
        self._waiters: deque[_Waiter] = deque()

    @property
    def capacity(self) -> int | None:
        return self._capacity

    @capacity.setter
    def capacity(self, value: int | None) -> None:
        with self._lock:
            self._capacity = value
            self._grant()

    @property
    def used(self) -> int:
        """Slots taken now."""
        return self._used

    def _free(self) -> bool:
        return self._capacity is None or self._used < self._capacity

    def _grant(self) -> bool:
        """Hand free slots to waiters in order (called with the lock held); whether a
        waiting thread was woken."""
        woke = False
        while self._waiters and self._free():
            waiter = self._waiters.popleft()
            waiter.granted = True
            self._used += 1
            if waiter.event is not None:
                waiter.event.set()
                woke = True
                continue
            try:
                waiter.loop.call_soon_threadsafe(_resolve, waiter.future)
            except RuntimeError:  # its loop is closed: nobody will take the slot
                waiter.granted = False
                self._used -= 1
        return woke

    def _take_now(self) -> bool:
        if not self._waiters and self._free():
            self._used += 1
            return True
        return False

    def acquire(self, timeout: float | None) -> bool:
        """Take a slot, waiting in this thread up to ``timeout`` s (None: no bound);
        whether one was taken."""
        with self._lock:
            if self._take_now():
                return True
            waiter = _Waiter(threading.Event())
            self._waiters.append(waiter)
        assert waiter.event is not None
        try:
            if waiter.event.wait(timeout):
                return True
        except BaseException:  # interrupted while waiting
            self._abandon(waiter)
            raise
        return self._abandon(waiter, keep=True)

    async def aacquire(self, timeout: float | None) -> bool:
        """Take a slot without blocking the event loop, waiting up to ``timeout`` s."""
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            if self._take_now():
                return True
            waiter = _Waiter(None, loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
            return True
        except asyncio.TimeoutError:
            return self._abandon(waiter, keep=True)
        except BaseException:  # cancelled
            self._abandon(waiter)
            raise

    def _abandon(self, waiter: _Waiter, keep: bool = False) -> bool:
        """Stop waiting; a slot granted meanwhile is kept (``keep``) or given back."""
        with self._lock:
            if not waiter.granted:
                self._waiters.remove(waiter)
                return False
            if keep:
                return True
            self._used -= 1
            self._grant()
            return False

    def release(self) -> None:
        """Give a slot back; the next waiter gets it."""
        with self._lock:
            self._used -= 1
            woke = self._grant()
        if woke:
            # Let the woken thread run now: its request is ready to go, while this one
            # would otherwise keep the GIL for the switch interval (5 ms) parsing its answer.
            time.sleep(0)


class AdaptiveConcurrency:
    """How many requests a batch keeps in flight when the service's cap is unknown (AIMD).

    Starts at ``start``; a concurrency 429 halves it (once per round: only a request sent
    since the last cut can cut again, so one burst of refusals counts once), a 429 that
    states its cap sets it there, and each success adds ``1/value``, about one more slot
    per round of successes. :attr:`slots` is the gate the batch engine waits at.
    """

    def __init__(self, start: int = 4, ceiling: int = 64) -> None:
        self.ceiling = ceiling
        self.value = float(min(start, ceiling))
        self.round = 0
        self.slots = Slots(int(self.value))
        self._lock = threading.Lock()

    def _set(self, value: float) -> None:
        self.value = max(1.0, min(float(self.ceiling), value))
        self.slots.capacity = int(self.value)

    def succeeded(self) -> None:
        with self._lock:
            self._set(learned_after(self.value, self.round, self.ceiling, succeeded=True)[0])

    def overloaded(self, sent_in_round: int, stated: int | None = None) -> None:
        """A request sent in round ``sent_in_round`` was refused for concurrency."""
        with self._lock:
            if stated is not None:  # the service said what its cap is: keep to it
                self.ceiling = max(1, min(stated, self.ceiling))
            value, self.round = learned_after(
                self.value, self.round, self.ceiling, sent_in_round=sent_in_round, stated=stated
            )
            self._set(value)


def learned_after(
    value: float,
    round_: int,
    ceiling: int,
    succeeded: bool = False,
    sent_in_round: int | None = None,
    stated: int | None = None,
) -> tuple[float, int]:
    """The learned concurrency and round after one event: the AIMD rule, kept in one place
    for the in-process batch and the shared limiter's SQLite store (its Lua twin is in
    :mod:`sigla._limits_redis`)."""
    if stated is not None:
        return float(max(1, min(stated, ceiling))), round_ + 1
    if sent_in_round is not None:
        if sent_in_round == round_:
            return max(1.0, value / 2), round_ + 1
        return value, round_
    if succeeded and value < ceiling:
        return min(float(ceiling), value + 1.0 / value), round_
    return value, round_
