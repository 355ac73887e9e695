"""Client-side rate limits: stay under a service's limits instead of collecting 429s.

GitHub Models enforced, per user and model, requests per minute, requests per day and
concurrent requests (contract §6). A batch that ignores them spends its daily quota on
refused requests. Before each request sigla books a slot in sliding one-minute and one-day
windows (:meth:`Limiter.book` returns how long to wait; the caller sleeps, sync or async)
and takes one of the concurrent-request slots until the answer or stream is finished.

Defaults come from the provider: GitHub's tier table applies to GitHub's own endpoint; other
providers and custom endpoints (proxies, local servers, the test double) get no client-side
limit unless one is given, and sigla adapts to their 429s instead.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._retry import describe_wait
from .errors import InvalidRequestError, RateLimitError

__all__ = [
    "RateLimits",
    "GITHUB_TIERS",
    "github_tier",
    "default_limits",
    "Limiter",
    "Admission",
    "limiter_for",
]

logger = logging.getLogger("sigla")

MINUTE = 60.0
DAY = 86_400.0
_CONCURRENCY_POLL = 0.02  # seconds between tries for a free slot on an event loop


@dataclass(frozen=True)
class RateLimits:
    """Caps sigla keeps to on its side for one model; ``None`` means no cap.

    ``GitHubLLM(limits=RateLimits(requests_per_minute=10, concurrent_requests=2))``;
    ``RateLimits()`` turns client-side limiting off.
    """

    requests_per_minute: int | None = None
    requests_per_day: int | None = None
    concurrent_requests: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "requests_per_day", "concurrent_requests"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                try:
                    shown = repr(value)[:60]
                except ValueError:  # an int too long to print
                    shown = "a huge negative int"
                raise InvalidRequestError(
                    f"RateLimits.{name} must be a positive int or None, not {shown}"
                )

    @property
    def enabled(self) -> bool:
        """Whether any cap is set (``RateLimits()`` has none)."""
        return any(
            v is not None
            for v in (self.requests_per_minute, self.requests_per_day, self.concurrent_requests)
        )

    def __str__(self) -> str:
        parts = [
            f"{self.requests_per_minute}/min" if self.requests_per_minute else "",
            f"{self.requests_per_day}/day" if self.requests_per_day else "",
            f"{self.concurrent_requests} concurrent" if self.concurrent_requests else "",
        ]
        return ", ".join(p for p in parts if p) or "none"


# GitHub Models' free tier ("subject to change"; docs.github.com, Prototyping with AI models).
GITHUB_TIERS: dict[str, RateLimits] = {
    "low": RateLimits(15, 150, 5),
    "high": RateLimits(10, 50, 2),
    "embeddings": RateLimits(15, 150, 5),
    "reasoning": RateLimits(1, 8, 1),  # o1, o3, gpt-5, DeepSeek-R1, MAI-DS-R1
    "reasoning-mini": RateLimits(2, 12, 1),  # o1/o3/o4-mini, gpt-5-mini/nano/chat
    "grok-3": RateLimits(1, 15, 1),
    "grok-3-mini": RateLimits(2, 30, 1),
}

_TIER_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), tier)
    for pattern, tier in (
        (r"^(deepseek-r1|mai-ds-r1)", "reasoning"),
        (r"^grok-3-mini", "grok-3-mini"),
        (r"^grok-3", "grok-3"),
        (r"^(o1-mini|o3-mini|o4-mini|gpt-5-(mini|nano|chat))", "reasoning-mini"),
        (r"^(o1|o1-preview|o3|gpt-5)$", "reasoning"),
        (r"embed", "embeddings"),
        (
            r"^(gpt-4o|gpt-4\.1|llama-3\.3-70b-instruct|meta-llama-3\.1-405b-instruct"
            r"|mistral-large-2411|mistral-medium-2505|cohere-command-r-plus-08-2024"
            r"|ai21-jamba-1\.5-large)$",
            "high",
        ),
    )
)


def github_tier(model: str) -> str:
    """GitHub's rate-limit tier of a model id such as ``openai/gpt-4o`` (default ``low``)."""
    name = model.rsplit("/", 1)[-1].lower()
    return next((tier for pattern, tier in _TIER_RULES if pattern.search(name)), "low")


def default_limits(provider: str, endpoint: str, model: str) -> tuple[RateLimits, str]:
    """The provider's default limits for a model, and a phrase saying where they come from."""
    if provider == "github" and urlsplit(endpoint).hostname == "models.github.ai":
        tier = github_tier(model)
        return GITHUB_TIERS[tier], f"GitHub's {tier!r} tier"
    return RateLimits(), "none by default for this endpoint"


class Limiter:
    """Books request slots for one model and credential, across threads and event loops."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: list[tuple[float, int, list[float]]] = [
            (span, size, [])
            for span, size in ((MINUTE, limits.requests_per_minute), (DAY, limits.requests_per_day))
            if size
        ]
        self._slots = (
            threading.BoundedSemaphore(limits.concurrent_requests)
            if limits.concurrent_requests
            else None
        )

    def book(self, max_wait: float) -> tuple[float, float]:
        """Book the next request slot: its time and the seconds to wait for it (0: go now).

        Raises :class:`RateLimitError` without booking when the wait would exceed
        ``max_wait`` (a spent daily quota), as the service's own 429 would. A booking the
        caller does not use (interrupted while waiting) must be given back with :meth:`cancel`.
        """
        with self._lock:
            now = self._clock()
            slot, which = now, "minute"
            for span, size, booked in self._windows:
                del booked[: bisect.bisect_right(booked, now - span)]
                if len(booked) >= size and booked[-size] + span > slot:
                    slot, which = booked[-size] + span, "day" if span == DAY else "minute"
            wait = slot - now
            if wait > max_wait:
                raise RateLimitError(
                    f"sigla's client-side limit ({self.limits}) is used up for this {which}: "
                    f"the next request may go in {wait:.0f} s, over max_retry_wait="
                    f"{max_wait:g} s. Try again later, or pass limits= to change the limits.",
                    status_code=429,
                    client_side=True,
                    retry_after=wait,
                    limit_type=f"sigla requests per {which}",
                )
            for _, _, booked in self._windows:
                bisect.insort(booked, slot)
            return slot, wait

    def cancel(self, slot: float) -> None:
        """Give back a booking that was not used."""
        with self._lock:
            for _, _, booked in self._windows:
                i = bisect.bisect_left(booked, slot)
                if i < len(booked) and booked[i] == slot:
                    del booked[i]

    def _no_slot(self, timeout: float) -> RateLimitError:
        return RateLimitError(
            f"No concurrent-request slot of sigla's client-side limit ({self.limits}) freed "
            f"within {timeout:g} s. Is an unfinished stream of this model still open (close "
            "it, or use it in a with block), or are more threads calling than the limit allows?",
            status_code=429,
            client_side=True,
            retry_after=None,
            limit_type="sigla concurrent requests",
        )

    def acquire(self, timeout: float) -> None:
        """Take a concurrent-request slot, waiting in this thread up to ``timeout`` s."""
        if self._slots is not None and not self._slots.acquire(timeout=timeout):
            raise self._no_slot(timeout)

    async def aacquire(self, timeout: float) -> None:
        """Take a concurrent-request slot without blocking the event loop."""
        if self._slots is None:
            return
        import asyncio
        import time

        deadline = time.monotonic() + timeout
        while not self._slots.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise self._no_slot(timeout)
            await asyncio.sleep(_CONCURRENCY_POLL)  # real time: slots free as answers end

    def release(self) -> None:
        if self._slots is not None:
            self._slots.release()


class Admission:
    """One request's place under the client-side limits, as a sync or async context.

    Entering books a slot (waiting for it with the client's sleep) and takes a
    concurrent-request slot; a booking interrupted before the request went out is given
    back, and the slot is released exactly once however the request ends. A class, not an
    ``asynccontextmanager``: ``asyncio.run``'s ``shutdown_asyncgens()`` would finalise such
    a generator on its own while a stream is still using it.
    """

    def __init__(
        self,
        limiter: Limiter | None,
        *,
        max_wait: float,
        sleep: Callable[[float], object],
        async_sleep: Callable[[float], Awaitable[object]],
        label: str,
    ) -> None:
        self._limiter = limiter
        self._max_wait = max_wait
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._label = label
        self._slot: float | None = None

    def _book(self, limiter: Limiter) -> float:
        self._slot, wait = limiter.book(self._max_wait)
        if wait > 0:
            logger.info(
                "waiting %s for the client-side rate limit (%s) of %s",
                describe_wait(wait),
                limiter.limits,
                self._label,
                extra={"sigla_notice": "rate_limit", "sigla_wait": wait},
            )
        return wait

    def _give_back(self, limiter: Limiter) -> None:
        if self._slot is not None:
            limiter.cancel(self._slot)

    def __enter__(self) -> None:
        limiter = self._limiter
        if limiter is None:
            return
        try:
            wait = self._book(limiter)
            if wait > 0:
                self._sleep(wait)
            limiter.acquire(timeout=self._max_wait)
        except BaseException:
            self._give_back(limiter)
            raise

    def __exit__(self, *exc_info: object) -> None:
        if self._limiter is not None:
            self._limiter.release()

    async def __aenter__(self) -> None:
        limiter = self._limiter
        if limiter is None:
            return
        try:
            wait = self._book(limiter)
            if wait > 0:
                await self._async_sleep(wait)
            await limiter.aacquire(timeout=self._max_wait)
        except BaseException:
            self._give_back(limiter)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()


_registry: dict[tuple[object, ...], Limiter] = {}
_registry_lock = threading.Lock()


def limiter_for(
    endpoint: str, model: str, token: str | None, limits: RateLimits, clock: Callable[[], float]
) -> Limiter | None:
    """The process-wide limiter shared by every client of this endpoint, credential and model.

    The service counts per user and model, so two ``GitHubLLM`` objects must share one
    budget. The credential is keyed by a hash: it is never stored.
    """
    if not limits.enabled:
        return None
    who = hashlib.sha256(token.encode()).hexdigest() if token else ""
    key = (endpoint, model.lower(), who, limits, clock)
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = Limiter(limits, clock)
        return limiter
