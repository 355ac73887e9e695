"""Cancelling the requests of a sync batch from another thread (Ctrl-C).

Light on purpose (no httpcore): the retry loop checks it too.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

__all__ = ["SCOPE", "CancelScope", "Cancelled", "check_cancelled"]


class Cancelled(BaseException):
    """The work of a cancelled :class:`CancelScope` stops here (a batch hit by Ctrl-C).

    A ``BaseException``, like ``KeyboardInterrupt``: no retry loop or error boundary may
    take it for a failed call and try again.
    """


class CancelScope:
    """Lets one thread stop the requests other threads have on the wire (sync batches).

    Threads that set :data:`SCOPE` to a scope register each socket operation with it;
    :meth:`cancel` shuts those sockets down (a blocked read returns at once) and makes
    every later operation under the scope raise :class:`Cancelled`.
    """

    def __init__(self) -> None:
        self.cancelled = False
        self.stopped = False  # send nothing more, but let what is on the wire finish
        self._lock = threading.Lock()
        self._active: set[Any] = set()

    def enter(self, stream: Any) -> None:
        with self._lock:
            if self.cancelled:
                raise Cancelled
            self._active.add(stream)

    def leave(self, stream: Any) -> None:
        with self._lock:
            self._active.discard(stream)

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled

    def stop(self) -> None:
        """No request under this scope may go on the wire any more (a doomed batch)."""
        self.stopped = True

    def check_send(self) -> None:
        """Raise :class:`Cancelled` if a request may not be sent now."""
        if self.cancelled or self.stopped:
            raise Cancelled

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            active, self._active = self._active, set()
        for stream in active:
            stream.abort()


SCOPE: contextvars.ContextVar[CancelScope | None] = contextvars.ContextVar(
    "sigla_scope", default=None
)


def check_cancelled() -> None:
    """Raise :class:`Cancelled` if this thread's scope was cancelled (before a retry)."""
    scope = SCOPE.get()
    if scope is not None:
        scope.check()
