"""The retry policy as pure functions: no clock, no network."""

from __future__ import annotations

import pytest

from sigla._constants import RETRY_BASE_DELAY
from sigla._retry import (
    backoff_delay,
    describe_wait,
    is_retryable,
    next_delay,
    retry_after_from_headers,
)
from sigla.errors import (
    APIConnectionError,
    AuthenticationError,
    RateLimitError,
    ServerError,
    StreamError,
)


def rate_limited(retry_after, *, client_side=False):
    return RateLimitError("429", status_code=429, retry_after=retry_after, client_side=client_side)


def fixed(value):
    return lambda: value


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "9"}, 9.0),
        ({"Retry-After": "0"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ratelimit-timeremaining": "12", "retry-after": "9"}, 12.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
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


@pytest.mark.parametrize("name", ["retry-after", "retry-after-ms", "x-ratelimit-timeremaining"])
def test_a_negative_wait_is_clamped_to_zero(name):
    assert retry_after_from_headers({name: "-5"}) == 0.0


def test_an_http_date_is_measured_from_the_real_clock_by_default():
    assert retry_after_from_headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    later = retry_after_from_headers({"retry-after": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert later is not None and later > 365 * 86_400


def test_backoff_grows_exponentially_and_is_capped():
    assert [backoff_delay(n, rand=lambda: 1.0) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert backoff_delay(0, rand=lambda: 0.0) == 0.25  # jitter never drops below half a step


@pytest.mark.parametrize("rand", [0.0, 0.5, 1.0])
def test_asked_wait_is_honoured_with_jitter_of_at_most_one_base_step(rand):
    delay = next_delay(rate_limited(9), 0, max_retries=3, max_retry_wait=60, rand=fixed(rand))
    assert delay == 9 + RETRY_BASE_DELAY * rand
    assert 9 <= delay <= 9 + RETRY_BASE_DELAY


def test_a_wait_beyond_max_retry_wait_gives_up_at_once():
    assert next_delay(rate_limited(5631), 0, max_retries=3, max_retry_wait=60) is None
    assert next_delay(rate_limited(60.5), 0, max_retries=3, max_retry_wait=60) is None
    assert next_delay(rate_limited(60), 0, max_retries=3, max_retry_wait=60, rand=fixed(0)) == 60


@pytest.mark.parametrize("attempt", [0, 1, 2])
def test_retry_after_zero_backs_off_instead_of_retrying_at_once(attempt):
    delay = next_delay(rate_limited(0), attempt, max_retries=3, max_retry_wait=60, rand=fixed(0))
    assert delay == backoff_delay(attempt, rand=fixed(0)) == RETRY_BASE_DELAY * 2**attempt / 2


@pytest.mark.parametrize("rand", [0.0, 1.0])
def test_backoff_after_an_unsaid_wait_uses_the_given_jitter(rand):
    server = ServerError("x", status_code=503)
    assert next_delay(server, 2, max_retries=3, max_retry_wait=60, rand=fixed(rand)) == (
        backoff_delay(2, rand=fixed(rand))
    )


def test_sigla_own_client_side_limit_is_never_retried():
    own = rate_limited(1.0, client_side=True)
    assert not is_retryable(own)
    assert next_delay(own, 0, max_retries=3, max_retry_wait=60) is None
    assert is_retryable(rate_limited(1.0)), "the service's own 429 is retried"


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
    assert not is_retryable(AuthenticationError("x", status_code=401), stream_started=False)
    assert not is_retryable(StreamError("cut")), "a stream error outside a stream"


def test_stream_errors_are_retried_only_before_the_first_piece():
    cut = StreamError("cut")
    assert next_delay(cut, 0, max_retries=3, max_retry_wait=60, stream_started=False) is not None
    assert next_delay(cut, 0, max_retries=3, max_retry_wait=60, stream_started=True) is None
    server = ServerError("x", status_code=500)
    assert is_retryable(server, stream_started=False)
    assert next_delay(server, 0, max_retries=3, max_retry_wait=60, stream_started=True) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "0.25 s"),
        (5, "5 s"),
        (5.5, "5.5 s"),
        (10.4, "10 s"),
        (58, "58 s"),
        (60, "1 min"),
        (120, "2 min"),
        (125, "2 min 5 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h"),
        (5640, "1 h 34 min"),
        (7200, "2 h"),
    ],
)
def test_a_wait_is_described_as_a_person_would_say_it(seconds, text):
    assert describe_wait(seconds) == text
