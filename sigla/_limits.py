"""Client-side rate limits: stay under a service's limits instead of collecting 429s.

GitHub Models enforced, per user and model, requests per minute, requests per day and
concurrent requests (contract §6). A batch that ignores them spends its daily quota on
refused requests. Right before each request goes on the wire (retries too) sigla takes one
of the concurrent-request slots until the answer is read or the stream finished, then books
a slot in sliding one-minute and one-day windows, and in tokens per minute
(:meth:`Limiter.book` returns how long to wait; the caller sleeps, sync or async). A 429
that asks to wait pauses every request of the same budget.

Defaults come from the provider: GitHub's tier table applies to GitHub's own endpoint; other
providers and custom endpoints (proxies, local servers, the test double) get no client-side
limit unless one is given, and sigla adapts to their 429s instead.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._retry import describe_wait
from ._slots import AdaptiveConcurrency, Slots
from .errors import ConfigurationError, InvalidRequestError, RateLimitError

__all__ = [
    "RateLimits",
    "GITHUB_TIERS",
    "github_tier",
    "default_limits",
    "Limiter",
    "estimate_tokens",
    "limiter_for",
]

logger = logging.getLogger("sigla")

MINUTE = 60.0
DAY = 86_400.0
MARGIN = {MINUTE: 1.0, DAY: 60.0}  # seconds added to each window: clock and network skew
CHARS_PER_TOKEN = 3  # conservative: English runs ~4 characters per token
ANSWER_ESTIMATE = 1024  # tokens counted for an answer when a request sets no max_tokens
ADAPTIVE_START = 4  # requests in flight a batch starts with when the cap is unknown
ADAPTIVE_CEILING = 32  # also the number of a learning batch's workers


_MOST = 10**12  # more than any service allows; bigger numbers are mistakes
_FIELDS = ("requests_per_minute", "requests_per_day", "concurrent_requests", "tokens_per_minute")


@dataclass(frozen=True)
class RateLimits:
    """Caps sigla keeps to on its side for one model; ``None`` means no cap.

    ``GitHubLLM(limits=RateLimits(requests_per_minute=10, concurrent_requests=2))``;
    ``RateLimits()`` turns client-side limiting off. ``tokens_per_minute`` counts each
    request's estimated prompt tokens plus its ``max_tokens``, corrected by the usage the
    answer reports (Azure deployments are limited in tokens per minute).
    """

    requests_per_minute: int | None = None
    requests_per_day: int | None = None
    concurrent_requests: int | None = None
    tokens_per_minute: int | None = None

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MOST
            ):
                try:
                    shown = repr(value)[:60]
                except ValueError:  # an int too long to print
                    shown = "an int of thousands of digits"
                raise InvalidRequestError(
                    f"RateLimits.{name} must be a positive int (at most 10**12) or None, "
                    f"not {shown}"
                )

    @property
    def enabled(self) -> bool:
        """Whether any cap is set (``RateLimits()`` has none)."""
        return any(getattr(self, name) is not None for name in _FIELDS)

    def __str__(self) -> str:
        parts = [
            f"{self.requests_per_minute}/min" if self.requests_per_minute else "",
            f"{self.requests_per_day}/day" if self.requests_per_day else "",
            f"{self.concurrent_requests} concurrent" if self.concurrent_requests else "",
            f"{self.tokens_per_minute} tokens/min" if self.tokens_per_minute else "",
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
    """One budget (endpoint, credential, model): its windows, slots, pause and learned cap.

    Every request books here right before it goes on the wire (the transport calls
    :class:`Admission`), retries included, so the windows count what the service counts.
    Windows keep a safety margin (:data:`MARGIN`) for clock and network skew. A 429 that asks
    to wait :meth:`pause`\\ s every request of the budget. :attr:`adaptive` is the
    concurrency that batches learn where the service's cap is unknown.
    """

    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: list[tuple[float, int, list[float]]] = [
            (span, size, [])
            for span, size in ((MINUTE, limits.requests_per_minute), (DAY, limits.requests_per_day))
            if size
        ]
        self._tokens: list[list[float]] = []  # [time, tokens] entries, by time
        self.slots = Slots(limits.concurrent_requests) if limits.concurrent_requests else None
        # More requests in flight than a minute allows would only book minutes ahead.
        ceiling = min(
            limits.concurrent_requests or ADAPTIVE_CEILING,
            limits.requests_per_minute or ADAPTIVE_CEILING,
        )
        self.adaptive = AdaptiveConcurrency(
            start=min(limits.concurrent_requests or ADAPTIVE_START, ceiling), ceiling=ceiling
        )
        self._paused_until = float("-inf")
        self._pause_type: str | None = None
        self.explicit = True  # limits= given, rather than the provider's defaults

    # -- windows

    def book(self, max_wait: float, tokens: int = 0, patient: bool = False) -> tuple[float, float]:
        """Book the next request slot: its time and the seconds to wait for it (0: go now).

        ``tokens`` is the request's estimate, counted against ``tokens_per_minute``. Raises
        :class:`RateLimitError` without booking when the wait would exceed ``max_wait`` (a
        spent daily quota), as the service's own 429 would; a ``patient`` caller (a batch,
        which paces itself by the limits) waits any number of minutes, not days. A booking
        the caller does not use (interrupted while waiting) must be given back with
        :meth:`cancel`.
        """
        with self._lock:
            now = self.clock()
            slot, which = now, "minute"
            for span, size, booked in self._windows:
                del booked[: bisect.bisect_right(booked, now - span - MARGIN[span])]
                if len(booked) >= size and booked[-size] + span + MARGIN[span] > slot:
                    slot = booked[-size] + span + MARGIN[span]
                    which = "day" if span == DAY else "minute"
            per_minute = self.limits.tokens_per_minute
            if per_minute and tokens:
                fits = self._tokens_fit(now, tokens, per_minute)
                if fits > slot:
                    slot, which = fits, "minute (tokens)"
            wait = slot - now
            # The margin is sigla's own caution: it does not count against the caller's
            # patience (a 1/min limit must not fail under the default max_retry_wait=60).
            if wait - MARGIN[DAY if which == "day" else MINUTE] > max_wait and (
                which == "day" or not patient
            ):
                raise RateLimitError(
                    f"sigla's client-side limit ({self.limits}) is used up for this {which}: "
                    f"the next request may go in {wait:.0f} s, over max_retry_wait="
                    f"{max_wait:g} s. Try again later, or pass limits= to change the limits.",
                    status_code=429,
                    client_side=True,
                    retry_after=wait,
                    limit_type=f"sigla {'tokens' if 'tokens' in which else 'requests'} per "
                    + ("day" if which == "day" else "minute"),
                )
            for _, _, booked in self._windows:
                bisect.insort(booked, slot)
            if per_minute and tokens:
                bisect.insort(self._tokens, [slot, float(tokens)])
            return slot, wait

    def _tokens_fit(self, now: float, tokens: int, per_minute: int) -> float:
        """The first time from ``now`` when ``tokens`` more fit in the minute's budget."""
        span = MINUTE + MARGIN[MINUTE]
        del self._tokens[: bisect.bisect_right(self._tokens, [now - span, float("inf")])]
        used = sum(cost for _, cost in self._tokens)
        at = now
        for when, cost in self._tokens:
            if used + tokens <= per_minute:
                break
            used -= cost
            at = max(at, when + span)
        return at

    def cancel(self, slot: float, tokens: int = 0) -> None:
        """Give back a booking that was not used."""
        with self._lock:
            for _, _, booked in self._windows:
                i = bisect.bisect_left(booked, slot)
                if i < len(booked) and booked[i] == slot:
                    del booked[i]
            if tokens:
                self._settle(slot, tokens, 0)

    def sent(self, slot: float, tokens: int = 0) -> float:
        """The booking at ``slot`` went on the wire now: if that is later than booked (a
        thread woken late), move it to now, so the windows count what the service saw."""
        with self._lock:
            now = self.clock()
            if now <= slot:
                return slot
            for _, _, booked in self._windows:
                i = bisect.bisect_left(booked, slot)
                if i < len(booked) and booked[i] == slot:
                    del booked[i]
                    bisect.insort(booked, now)
            if tokens:
                i = bisect.bisect_left(self._tokens, [slot, float(tokens)])
                if i < len(self._tokens) and self._tokens[i] == [slot, float(tokens)]:
                    del self._tokens[i]
                    bisect.insort(self._tokens, [now, float(tokens)])
            return now

    def settle(self, slot: float, estimated: int, used: int) -> None:
        """Replace a booking's token estimate by what the answer's usage says it cost."""
        with self._lock:
            self._settle(slot, estimated, used)

    def _settle(self, slot: float, estimated: int, used: int) -> None:
        i = bisect.bisect_left(self._tokens, [slot, float(estimated)])
        if i < len(self._tokens) and self._tokens[i] == [slot, float(estimated)]:
            if used:
                self._tokens[i][1] = float(used)
            else:
                del self._tokens[i]

    # -- the pause a 429 asks for

    def pause(self, seconds: float, limit_type: str | None = None) -> None:
        """Hold every request of this budget for ``seconds`` (a 429's retry-after)."""
        with self._lock:
            until = self.clock() + seconds
            if until > self._paused_until:
                self._paused_until, self._pause_type = until, limit_type

    def pause_check(self, max_wait: float, after: float = float("-inf")) -> tuple[float, float]:
        """The latest pause's end (a stamp to compare with a later check's) and the seconds
        it still holds every request (0: none), ignoring a pause that ends at or before
        ``after`` (one already waited out); raises over ``max_wait`` as :meth:`paused_for`."""
        until = self._paused_until
        return until, (self.paused_for(max_wait) if until > after else 0.0)

    def paused_for(self, max_wait: float) -> float:
        """Seconds every request must still wait (0: none); raises over ``max_wait``."""
        left = self._paused_until - self.clock()
        if left <= 0:
            return 0.0
        if left > max_wait:
            raise RateLimitError(
                f"The service asked every request of this model to wait {describe_wait(left)} "
                f"(a 429 on an earlier call), longer than max_retry_wait={max_wait:g} s, so "
                "sigla did not send this one. Try again later, or raise max_retry_wait.",
                status_code=429,
                client_side=True,
                retry_after=left,
                limit_type=self._pause_type,
            )
        return left

    # -- concurrent requests

    def _no_slot(self, timeout: float | None) -> RateLimitError:
        return RateLimitError(
            f"No concurrent-request slot of sigla's client-side limit ({self.limits}) freed "
            f"within {timeout:g} s. Is an unfinished stream of this model still open (close "
            "it, or use it in a with block), or are more threads calling than the limit allows?",
            status_code=429,
            client_side=True,
            retry_after=None,
            limit_type="sigla concurrent requests",
        )

    def acquire(self, timeout: float | None) -> None:
        """Take a concurrent-request slot, waiting in this thread up to ``timeout`` s
        (None: as long as it takes, as a batch's workers do: they keep their own count)."""
        if self.slots is not None and not self.slots.acquire(timeout):
            raise self._no_slot(timeout)

    async def aacquire(self, timeout: float | None) -> None:
        """Take a concurrent-request slot without blocking the event loop (no polling)."""
        if self.slots is not None and not await self.slots.aacquire(timeout):
            raise self._no_slot(timeout)

    def release(self) -> None:
        if self.slots is not None:
            self.slots.release()


def estimate_tokens(call: Mapping[str, Any]) -> int:
    """A request's tokens for ``tokens_per_minute``: its prompt, conservatively, plus room
    for the answer (``max_tokens``, else :data:`ANSWER_ESTIMATE`)."""
    chars = 0
    for message in call.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        chars += len(content) if isinstance(content, str) else len(str(content or ""))
    answer = call.get("max_tokens")
    return -(-chars // CHARS_PER_TOKEN) + (answer if isinstance(answer, int) else ANSWER_ESTIMATE)


_registry: weakref.WeakValueDictionary[tuple[str, str, str, Any], Limiter] = (
    weakref.WeakValueDictionary()
)
_registry_lock = threading.Lock()


def limiter_for(
    endpoint: str,
    model: str,
    token: str | None,
    limits: RateLimits,
    clock: Callable[[], float],
    *,
    explicit: bool = True,
    store: Any = None,
) -> Limiter:
    """The process-wide budget shared by every client of this endpoint, credential and model.

    The service counts per user and model, so two ``GitHubLLM`` objects must share one
    budget. ``token`` is already a digest of the credential: it is never stored. A client
    whose limits are the provider's defaults (``explicit=False``) joins a budget another
    client configured; two clients that set different limits (or clocks) for one budget
    is a :class:`ConfigurationError`: one budget cannot keep two sets of limits.

    ``store``, a :class:`~sigla._shared_limits.LimiterTarget`, keeps the budget in a store
    shared with other processes instead (``limiter=``).
    """
    key = (endpoint, model.lower(), token or "", store)
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = (
                Limiter(limits, clock)
                if store is None
                else store.limiter(endpoint, model, token, limits, clock)
            )
            limiter.explicit = explicit
            _registry[key] = limiter
            return limiter
        if limiter.limits != limits and explicit:
            theirs = "the provider's defaults" if not limiter.explicit else "limits="
            raise ConfigurationError(
                f"Another client of {model} at this endpoint with this credential uses "
                f"{theirs} ({limiter.limits}); this one asks for limits=({limits}). They "
                "share one budget at the service, so they must share one set of limits: "
                "pass the same limits= to both."
            )
        if limiter.clock != clock:
            raise ConfigurationError(
                f"Another client of {model} at this endpoint with this credential uses "
                "another clock=; clients sharing one budget must share one clock."
            )
        if explicit and not limiter.explicit:
            limiter.explicit = True
        return limiter
