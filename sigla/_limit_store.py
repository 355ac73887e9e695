"""A shared limiter's store: the interface each backend implements, and the ``limiter=``
setting resolved to one (``sqlite:///path``, ``redis://host:port/db``).

:class:`LimitStore` is what :mod:`sigla._limits_sqlite` and :mod:`sigla._limits_redis`
implement: every method one atomic step in the store, on the store's own clock. The
budgets it holds are named by :func:`budget_name`, which holds no credential. Stores are
opened lazily, once per process (:func:`open_store`, :class:`StoreHandle`).
"""

from __future__ import annotations

import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit

from ._limits import RateLimits
from ._stores import masked_url, redis_location, sqlite_location
from ._text import shown
from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._shared_limits import SharedLimiter

__all__ = [
    "LEASE_TTL",
    "LIMITER_ENV",
    "Booked",
    "Learned",
    "LimitStore",
    "LimiterTarget",
    "StoreHandle",
    "budget_name",
    "open_store",
    "parse_limiter_url",
    "resolve_limiter",
]

LIMITER_ENV = "SIGLA_LIMITER_URL"
LIMITER_FILE_NAME = "limits.db"
LEASE_TTL = 30.0  # seconds a dead worker's concurrent-request slot stays taken


class Booked(NamedTuple):
    """What the store answered to a booking: whether it was made, the wait, which window."""

    booked: bool
    wait: float
    which: str


class Learned(NamedTuple):
    """The learned concurrency in the store: its value and round."""

    value: float
    round: int


class LimitStore(ABC):
    """A store of budgets. Times are the store's own (seconds); each method is atomic.

    ``budget`` names one budget (:func:`budget_name`); ``ticket`` one booking; ``kind``
    a set of leases (``"c"``: the known concurrent cap, ``"a"``: the learned one).
    """

    location: str  # as it may be shown: a path, or a URL with its password masked

    @abstractmethod
    def book(
        self,
        budget: str,
        ticket: str,
        windows: Sequence[tuple[float, int, str]],
        keep: float,
        tokens: int,
        tokens_per_minute: int,
        token_span: float,
        allow: Mapping[str, float],
    ) -> Booked:
        """Book ``ticket`` at the first time every window has room (``windows``: span,
        size, name; ``tokens`` against ``tokens_per_minute`` over ``token_span``), unless
        the wait exceeds ``allow[name]`` of the window that decided it; entries older than
        ``keep`` go."""

    @abstractmethod
    def cancel(self, budget: str, ticket: str) -> None:
        """Give a booking back."""

    @abstractmethod
    def sent(self, budget: str, ticket: str) -> None:
        """The booking went on the wire now: move it to now if it was booked earlier."""

    @abstractmethod
    def settle(self, budget: str, ticket: str, tokens: int) -> None:
        """The booking cost ``tokens`` (its usage), not its estimate."""

    @abstractmethod
    def pause(self, budget: str, seconds: float, limit_type: str | None) -> None:
        """Hold every request of the budget for ``seconds`` from now (the longest wins)."""

    @abstractmethod
    def paused(self, budget: str) -> tuple[float, str | None, float]:
        """Seconds the budget's pause still lasts (<= 0: none), its limit type, and when
        it ends on the store's clock (-inf: never paused)."""

    @abstractmethod
    def lease(
        self, budget: str, kind: str, lease: str, cap: int | None, ttl: float, start: float
    ) -> bool:
        """Take a lease of ``kind`` if fewer than ``cap`` live ones are held (``cap`` None:
        the learned concurrency, ``start`` until something was learned)."""

    @abstractmethod
    def release(self, budget: str, kind: str, lease: str) -> None:
        """Give a lease back."""

    @abstractmethod
    def renew(self, budget: str, kind: str, leases: Sequence[str], ttl: float) -> None:
        """Extend live leases to ``ttl`` from now."""

    @abstractmethod
    def learn(
        self,
        budget: str,
        start: float,
        ceiling: int,
        *,
        succeeded: bool = False,
        sent_in_round: int | None = None,
        stated: int | None = None,
    ) -> Learned:
        """Read, or update, the learned concurrency (AIMD, as
        :class:`~sigla._slots.AdaptiveConcurrency`): a success adds ``1/value``; a
        concurrency refusal of a request sent in the current round halves it (once per
        round); a cap the service stated sets it."""

    @abstractmethod
    def snapshot(self, budget: str) -> dict[str, Any]:
        """What the store holds for a budget (for ``sigla doctor`` and tests)."""

    @abstractmethod
    def ping(self) -> None:
        """Check that the store serves (raises :class:`StoreUnavailableError`)."""

    @abstractmethod
    def close(self) -> None:
        """Close connections; closing twice is fine."""


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class LimiterTarget:
    """A ``limiter=`` setting resolved, before anything is opened."""

    scheme: str  # "sqlite" or "redis"
    location: str  # a file path, or the Redis URL without sigla's own query options
    source: str  # where the setting came from, for messages
    lease_ttl: float = LEASE_TTL
    time_scale: float = 1.0  # tests and benchmarks: a "minute" of 60 * time_scale seconds

    @property
    def shown(self) -> str:
        return masked_url(self.location)

    def limiter(
        self, endpoint: str, model: str, who: str | None, limits: RateLimits, clock: Any
    ) -> SharedLimiter:
        """The budget of (endpoint, model, credential digest) in this store; the store
        opens on first use (in each process), so a client builds, and unpickles on a
        worker, even while the store is down: its calls then say so."""
        from ._shared_limits import SharedLimiter

        return SharedLimiter(
            StoreHandle(self),  # type: ignore[arg-type]
            budget_name(endpoint, model, who),
            limits,
            clock,
            lease_ttl=self.lease_ttl,
            time_scale=self.time_scale,
        )


class StoreHandle:
    """A :class:`LimitStore` opened on first use in each process (:func:`open_store`)."""

    def __init__(self, target: LimiterTarget) -> None:
        self.target = target
        self.location = target.shown
        self._opened: tuple[int, LimitStore] | None = None  # (pid, store): no lookup per call

    def __getattr__(self, name: str) -> Any:
        opened = self.__dict__.get("_opened")  # never recurse, even before __init__
        if opened is None or opened[0] != os.getpid():  # first use, or a forked child
            opened = self._opened = (os.getpid(), open_store(self.target))
        return getattr(opened[1], name)


_OPTIONS = {"lease_ttl", "time_scale"}
_ALLOWED = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, "
    "redis://[:password@]host:port/db (rediss:// for TLS), or None for a budget in this "
    "process only"
)


def _option(name: str, raw: str, url: str, source: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 86_400):
        raise ConfigurationError(
            f"{name}={shown(raw)} in the limiter URL {shown(masked_url(url))} (from {source}) "
            "must be a number of seconds (lease_ttl) or a factor (time_scale) above 0 and at "
            "most 86400."
        )
    return value


def parse_limiter_url(text: str, source: str) -> LimiterTarget:
    """``sqlite:///limits.db`` or ``redis://host:6379/0``, with optional query options
    ``lease_ttl=SECONDS`` (how long a dead worker's slot stays taken, default 30) and
    ``time_scale=FACTOR`` (windows of ``60 * FACTOR`` s: for tests and benchmarks)."""
    stripped = text.strip()
    if not stripped:
        raise ConfigurationError(f"The limiter setting (from {source}) is empty: give {_ALLOWED}.")
    parts = urlsplit(stripped)
    scheme = parts.scheme.lower()
    if "://" not in stripped or scheme not in ("sqlite", "redis", "rediss"):
        raise ConfigurationError(
            f"The limiter URL {shown(masked_url(stripped))} (from {source}) is not one sigla "
            f"knows: give {_ALLOWED}."
        )
    ours = {"lease_ttl": LEASE_TTL, "time_scale": 1.0}
    theirs = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _OPTIONS:
            ours[name] = _option(name, value, stripped, source)
        else:
            theirs.append((name, value))
    base = stripped.split("?", 1)[0].split("#", 1)[0]  # urlunsplit would drop sqlite's "//"
    if theirs:
        base += "?" + urlencode(theirs)
    if scheme == "sqlite":
        if theirs:
            raise ConfigurationError(
                f"The limiter URL {shown(masked_url(stripped))} (from {source}) has options "
                f"sigla does not know ({', '.join(sorted(n for n, _ in theirs))}): an SQLite "
                "limiter takes lease_ttl= and time_scale= only."
            )
        location = sqlite_location(base, source, "limiter", LIMITER_FILE_NAME)
    else:
        location = redis_location(base, source, "limiter")
    return LimiterTarget(
        "sqlite" if scheme == "sqlite" else "redis",
        location,
        source,
        lease_ttl=ours["lease_ttl"],
        time_scale=ours["time_scale"],
    )


def resolve_limiter(
    setting: str | None, *, environ: Mapping[str, str] = os.environ, argument: str = "limiter="
) -> LimiterTarget | None:
    """The shared store a ``limiter=`` setting names; None: a budget in this process.

    ``None`` reads ``SIGLA_LIMITER_URL`` (blank: none).
    """
    if setting is None:
        raw = environ.get(LIMITER_ENV, "")
        return parse_limiter_url(raw, LIMITER_ENV) if raw.strip() else None
    if isinstance(setting, str):
        return parse_limiter_url(setting, argument)
    raise ConfigurationError(f"{argument} must be a URL: {_ALLOWED}; got {shown(setting)}.")


def open_store(target: LimiterTarget) -> LimitStore:
    """Open (and check) the store a target names; one per target and process."""
    key = (target.scheme, target.location, os.getpid())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            if target.scheme == "sqlite":
                from ._limits_sqlite import SQLiteLimitStore

                store = SQLiteLimitStore(target.location, source=target.source)
            else:
                from ._limits_redis import RedisLimitStore

                store = RedisLimitStore(target.location, source=target.source)
            _stores[key] = store
        return store


_stores: dict[tuple[str, str, int], LimitStore] = {}
_stores_lock = threading.Lock()


def budget_name(endpoint: str, model: str, who: str | None) -> str:
    """``endpoint|model|digest``: readable by an operator, holding no credential.

    ``endpoint`` is the settings' (credentials in its URL were taken out when it was
    resolved); ``who`` is already a SHA-256 digest of the credential; a few characters
    more than a collision needs are kept.
    """
    return f"{endpoint}|{model.lower()}|{(who or 'anonymous')[:32]}"
