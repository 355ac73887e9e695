"""sigla._plan: the time a number of requests and tokens takes under rate limits."""

from __future__ import annotations

import pytest

from sigla._limits import RateLimits
from sigla._plan import StagePlan, SummaryPlan, _duration, last_start

MIN, DAY = 61, 86_460  # the limiter's windows keep 1 s and 60 s of margin


@pytest.mark.parametrize(
    ("requests", "tokens", "limits", "seconds"),
    [
        (1, 0, RateLimits(requests_per_minute=15), 0),
        (15, 0, RateLimits(requests_per_minute=15), 0),  # a window's worth goes at once
        (16, 0, RateLimits(requests_per_minute=15), MIN),
        (150, 0, RateLimits(15, 150), 9 * MIN),
        (151, 0, RateLimits(15, 150), DAY),  # the 151st waits for the first to leave the day
        (1_180, 0, RateLimits(15, 150), 7 * DAY + 129 // 15 * MIN),
        (10, 50_000, RateLimits(requests_per_minute=100, tokens_per_minute=10_000), 4 * MIN),
        (10, 50_000, RateLimits(requests_per_minute=2), 4 * MIN),
        (3, 0, RateLimits(concurrent_requests=2), None),  # time then depends on the server
        (3, 0, RateLimits(), None),
    ],
)
def test_last_start_is_when_the_limits_let_the_last_request_go(requests, tokens, limits, seconds):
    assert last_start(requests, tokens, limits) == seconds


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0, "under a minute"), (59, "about 1 min"), (540, "about 9 min"), (3_660, "about 1 h 01 min")],
)
def test_durations_read_like_a_person_would_say_them(seconds, said):
    assert _duration(seconds) == said


def plan(requests: list[int], limits: RateLimits, seconds: float | None) -> SummaryPlan:
    stages = tuple(
        StagePlan("map" if i == 0 else "reduce", n, n * 1_000) for i, n in enumerate(requests)
    )
    return SummaryPlan(
        capsules=10_000,
        split_capsules=0,
        stages=stages,
        max_input_tokens=8_000,
        budget_source="test",
        max_tokens=1_000,
        token_counter="test",
        limits=limits,
        seconds=seconds,
    )


def test_a_plan_says_requests_tokens_and_days_in_one_sentence():
    text = str(plan([1_000, 150, 25, 5], RateLimits(15, 150), 7 * DAY))
    assert text == (
        "10,000 capsules: 1,180 requests (1,000 map + 180 reduce in 3 rounds), about "
        "1,180,000 input tokens; 8 days at 150/day"
    )


def test_a_plan_within_a_day_says_minutes_at_each_cap():
    limits = RateLimits(requests_per_minute=15, tokens_per_minute=20_000)
    text = str(plan([40, 1], limits, 3_000))
    assert text.endswith(
        "(40 map + 1 reduce in 1 round), about 41,000 input tokens; "
        "about 50 min at 15/min and 20,000 tokens/min"
    )
    assert str(plan([100], RateLimits(requests_per_day=150), 0)).endswith("; within a day")
    assert str(plan([3], RateLimits(concurrent_requests=2), None)).endswith(
        "; no limit per minute or per day: the time depends on the server"
    )
