"""A summary's plan: requests and tokens per stage, and the time the rate limits imply.

Pure arithmetic over :class:`~sigla._limits.RateLimits`, so :func:`sigla.capsules.plan_summary`
can say what a run costs before anything is sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ._limits import DAY, MARGIN, MINUTE, RateLimits

__all__ = ["StagePlan", "SummaryPlan", "last_start"]

# The limiter's windows, with the margin it keeps for clock and network skew.
_MINUTE = MINUTE + MARGIN[MINUTE]
_DAY = DAY + MARGIN[DAY]


@dataclass(frozen=True)
class StagePlan:
    """One stage of a summary: ``map`` (the capsules) or a round of ``reduce``."""

    stage: Literal["map", "reduce"]
    requests: int
    input_tokens: int


@dataclass(frozen=True)
class SummaryPlan:
    """What :func:`sigla.capsules.summarize_capsules` would send, and the time limits imply.

    ``str(plan)`` is one sentence: "10,000 capsules: 1,180 requests (1,000 map + 180 reduce
    in 3 rounds), about 7,400,000 input tokens; 8 days at 150/day". ``stages`` holds the map
    stage, then each reduce round, estimated with every partial summary ``max_tokens`` long.
    ``max_input_tokens`` is each request's budget and ``budget_source`` where it came from;
    ``token_counter`` says how tokens were counted. ``seconds`` is when the last request
    may start under ``limits`` (the answers' own time not counted), None without a limit
    per minute or per day. ``split_capsules`` counts capsules too long for one request.
    """

    capsules: int
    split_capsules: int
    stages: tuple[StagePlan, ...]
    max_input_tokens: int
    budget_source: str
    max_tokens: int
    token_counter: str
    limits: RateLimits
    seconds: float | None

    @property
    def requests(self) -> int:
        """Requests in all stages."""
        return sum(s.requests for s in self.stages)

    @property
    def input_tokens(self) -> int:
        """Estimated input tokens of all requests."""
        return sum(s.input_tokens for s in self.stages)

    @property
    def days(self) -> int | None:
        """Daily quotas the requests use (``requests_per_day``), None without a daily cap."""
        per_day = self.limits.requests_per_day
        return math.ceil(self.requests / per_day) if per_day else None

    def __str__(self) -> str:
        reduce = [s.requests for s in self.stages[1:]]
        shape = f"{self.stages[0].requests:,} map"
        if reduce:
            rounds = "round" if len(reduce) == 1 else "rounds"
            shape += f" + {sum(reduce):,} reduce in {len(reduce)} {rounds}"
        return (
            f"{self.capsules:,} capsules: {self.requests:,} requests ({shape}), about "
            f"{self.input_tokens:,} input tokens; {self._time()}"
        )

    def _time(self) -> str:
        limits = self.limits
        per_minute = limits.tokens_per_minute
        if self.seconds is None:
            return "no limit per minute or per day: the time depends on the server"
        if self.days is not None and self.days > 1:
            return f"{self.days:,} days at {limits.requests_per_day:,}/day"
        caps = [
            f"{limits.requests_per_minute}/min" if limits.requests_per_minute else "",
            f"{per_minute:,} tokens/min" if per_minute else "",
        ]
        at = " and ".join(c for c in caps if c)
        return f"{_duration(self.seconds)} at {at}" if at else "within a day"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def last_start(requests: int, tokens: int, limits: RateLimits) -> float | None:
    """When the last of ``requests`` may start under ``limits`` (seconds after the first)."""
    per_minute = limits.requests_per_minute
    per_day = limits.requests_per_day
    tokens_per_minute = limits.tokens_per_minute
    if not (per_minute or per_day or tokens_per_minute):
        return None
    before = max(requests - 1, 0)  # requests that go before the last one
    times = [0.0]
    if per_minute:
        times.append(before // per_minute * _MINUTE)
    if per_day:
        last_day = (before % per_day) // per_minute * _MINUTE if per_minute else 0.0
        times.append(before // per_day * _DAY + last_day)
    if tokens_per_minute and requests:
        times.append(max(tokens - tokens / requests, 0) // tokens_per_minute * _MINUTE)
    return max(times)
