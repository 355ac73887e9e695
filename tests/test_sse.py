"""The event-stream decoder: the WHATWG rules sigla needs, and a bound on what it holds."""

from __future__ import annotations

import time

import pytest

from sigla._sse import Event, SSEDecoder
from sigla.errors import InvalidResponseError


def decode(*chunks: bytes, max_size: int = 1 << 20) -> list[Event]:
    decoder = SSEDecoder(max_size)
    events: list[Event] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def test_data_lines_become_events_at_a_blank_line():
    assert decode(b'data: {"a": 1}\n\ndata: [DONE]\n\n') == [
        Event("message", '{"a": 1}'),
        Event("message", "[DONE]"),
    ]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_end_is_accepted(end):
    assert decode(b"data: x" + end + end + b"data: y" + end + end) == [
        Event("message", "x"),
        Event("message", "y"),
    ]


def test_a_crlf_split_across_chunks_is_one_line_end():
    assert decode(b"data: x\r", b"\n\r", b"\ndata: y\r\n\r\n") == [
        Event("message", "x"),
        Event("message", "y"),
    ]


def test_comments_names_and_multi_line_data():
    stream = b": keep-alive\n\nevent: error\ndata: one\ndata:two\nid: 7\n\n"
    assert decode(stream) == [Event("error", "one\ntwo")]


def test_only_one_leading_space_is_dropped():
    assert decode(b"data:  two spaces\n\n") == [Event("message", " two spaces")]


def test_events_split_at_every_byte_come_out_the_same():
    stream = b'data: {"a": "b"}\r\n\r\ndata: [DONE]\n\n'
    assert decode(*[stream[i : i + 1] for i in range(len(stream))]) == decode(stream)


def test_an_event_without_its_blank_line_is_given_at_the_end():
    assert decode(b"data: last") == [Event("message", "last")]
    assert decode(b"data: last\n") == [Event("message", "last")]


def test_blank_lines_alone_make_no_event():
    assert decode(b"\n\n\r\n: ping\n\n") == []


def test_a_line_over_the_bound_is_refused():
    decoder = SSEDecoder(max_size=100)
    with pytest.raises(InvalidResponseError, match="larger than 100 bytes"):
        for _ in range(20):
            decoder.feed(b"data: " + b"x" * 10)


def test_an_event_over_the_bound_is_refused_even_in_short_lines():
    decoder = SSEDecoder(max_size=100)
    with pytest.raises(InvalidResponseError, match="max_response_bytes"):
        for _ in range(20):
            decoder.feed(b"data: xxxxxxxxxx\n")


def test_the_bound_holds_exactly():
    assert decode(b"data: " + b"x" * 90 + b"\n\n", max_size=100)[0].data == "x" * 90
    with pytest.raises(InvalidResponseError):
        decode(b"data: " + b"x" * 120 + b"\n\n", max_size=100)


def test_invalid_utf8_is_replaced_not_raised():
    assert decode(b"data: \xff\xfe ok\n\n") == [Event("message", "\ufffd\ufffd ok")]


def test_a_long_line_dripped_byte_by_byte_costs_linear_time():
    """The unfinished line is scanned once, not again with every byte (no quadratic cost)."""

    def drip(size: int) -> float:
        decoder = SSEDecoder(max_size=1 << 22)
        started = time.perf_counter()
        decoder.feed(b"data: ")
        for _ in range(size):
            decoder.feed(b"x")
        decoder.feed(b"\n\n")
        return time.perf_counter() - started

    small, large = min(drip(20_000) for _ in range(3)), min(drip(80_000) for _ in range(3))
    assert large < small * 10  # 4x the bytes; quadratic would be ~16x
