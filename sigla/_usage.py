"""What a client has spent: requests sent, tokens, retries, answers served from the cache."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields

__all__ = ["UsageTotals"]


@dataclass
class UsageTotals:
    """Running totals over every call of one ``GitHubLLM`` (``llm.usage``).

    ``requests`` counts requests that went on the wire, retries included; ``retries`` the
    retries among them; ``rate_limited`` the 429s the service answered (retried or not);
    ``cached`` the answers served from the cache (no request). Token
    counts add up the ``usage`` the service reported. Safe to update from many threads and
    tasks; read it any time, or take a consistent :meth:`snapshot`.
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    retries: int = 0
    rate_limited: int = 0
    cached: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Add to some of the counters at once."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> UsageTotals:
        """A copy taken under the lock, so its numbers belong together."""
        with self._lock:
            return UsageTotals(**{f.name: getattr(self, f.name) for f in _COUNTERS})

    def __sub__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            **{f.name: getattr(self, f.name) - getattr(other, f.name) for f in _COUNTERS}
        )

    def __getstate__(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in _COUNTERS}

    def __setstate__(self, state: dict[str, int]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self._lock = threading.Lock()


_COUNTERS = tuple(f for f in fields(UsageTotals) if not f.name.startswith("_"))
