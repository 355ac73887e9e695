"""The retry policy as pure functions: no clock, no network."""

from __future__ import annotations

import pytest

from sigla._retry import backoff_delay, next_delay, retry_after_from_headers
from sigla.errors import (
    APIConnectionError,
    AuthenticationError,
    RateLimitError,
    ServerError,
    StreamError,
)


def rate_limited(retry_after):
    return RateLimitError("429", status_code=429, retry_after=retry_after)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "9"}, 9.0),
        ({"Retry-After": "0"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ratelimit-timeremaining": "12", "retry-after": "9"}, 12.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_like_gh_models_does(headers, expected):
    assert retry_after_from_headers(headers, now=1445412480.0 + 3600) == expected


def test_retry_after_as_a_future_http_date():
    assert retry_after_from_headers(
        {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412480.0 - 30
    ) == pytest.approx(30)


def test_backoff_grows_exponentially_and_is_capped():
    assert [backoff_delay(n, rand=lambda: 1.0) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert backoff_delay(0, rand=lambda: 0.0) == 0.25  # jitter never drops below half a step


def test_asked_wait_is_honoured_with_small_jitter():
    assert next_delay(rate_limited(9), 0, max_retries=3, max_retry_wait=60, rand=lambda: 0.0) == 9


def test_a_wait_beyond_max_retry_wait_gives_up_at_once():
    assert next_delay(rate_limited(5631), 0, max_retries=3, max_retry_wait=60) is None


def test_retry_after_zero_still_backs_off():
    assert next_delay(rate_limited(0), 0, max_retries=3, max_retry_wait=60) >= 0.25


@pytest.mark.parametrize(
    "error",
    [ServerError("x", status_code=503), APIConnectionError("x"), rate_limited(None)],
)
def test_transient_errors_are_retried_until_max_retries(error):
    assert next_delay(error, 2, max_retries=3, max_retry_wait=60) is not None
    assert next_delay(error, 3, max_retries=3, max_retry_wait=60) is None


def test_other_errors_are_not_retried():
    assert (
        next_delay(AuthenticationError("x", status_code=401), 0, max_retries=3, max_retry_wait=60)
        is None
    )


def test_stream_errors_are_retried_only_before_the_first_piece():
    cut = StreamError("cut")
    assert next_delay(cut, 0, max_retries=3, max_retry_wait=60, stream_started=False) is not None
    assert next_delay(cut, 0, max_retries=3, max_retry_wait=60, stream_started=True) is None
    server = ServerError("x", status_code=500)
    assert next_delay(server, 0, max_retries=3, max_retry_wait=60, stream_started=True) is None
