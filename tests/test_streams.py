"""Closing a stream stops its download at once: ``close()``/``aclose()``, ``with`` blocks.

Each stream here would take 20 s to arrive in full (400 chunks, 50 ms apart), so a close
that does nothing, or leaves the connection downloading, shows up as a request still in
flight long after the close, and as most chunks sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from conftest import TOKEN

from sigla.llm import GitHubLLM
from sigla.testing import FakeGitHubModels

CHUNKS = [f"w{i} " for i in range(400)]


@pytest.fixture
def slow() -> Iterator[FakeGitHubModels]:
    with FakeGitHubModels(chunk_delay=0.05) as server:
        server.reply("".join(CHUNKS), chunks=CHUNKS)
        yield server


def _stopped_soon(server: FakeGitHubModels, within: float = 1.5) -> bool:
    """Whether the double saw the client go away within ``within`` seconds."""
    deadline = time.monotonic() + within
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.in_flight == 0 and len(server.last_request.chunk_times) < 100


def _llm(server: FakeGitHubModels) -> GitHubLLM:
    return GitHubLLM(endpoint=server.url, token=TOKEN)


def test_close_stops_the_download(slow):
    stream = _llm(slow).stream("hi")
    assert next(stream) == "w0 "
    stream.close()
    assert _stopped_soon(slow)
    assert stream.completion is None


def test_leaving_a_with_block_stops_the_download(slow):
    with _llm(slow).stream("hi") as stream:
        assert next(stream) == "w0 "
    assert _stopped_soon(slow)
    del stream  # held until here, so only the with block can have closed it


def test_aclose_stops_the_download(slow):
    async def main() -> bool:
        stream = _llm(slow).astream("hi")
        assert await stream.__anext__() == "w0 "
        await stream.aclose()
        stopped = await asyncio.to_thread(_stopped_soon, slow)
        del stream
        return stopped

    assert asyncio.run(main())


def test_aclose_closes_the_connection_before_it_returns(slow):
    """Not on a later turn of the event loop, which the owner may block (or never run)."""

    async def main() -> bool:
        stream = _llm(slow).astream("hi")
        assert await stream.__anext__() == "w0 "
        await stream.aclose()
        return _stopped_soon(slow)  # blocks the loop: nothing left pending can run

    assert asyncio.run(main())


def test_leaving_an_async_with_block_stops_the_download(slow):
    async def main() -> bool:
        async with _llm(slow).astream("hi") as stream:
            assert await stream.__anext__() == "w0 "
        stopped = await asyncio.to_thread(_stopped_soon, slow)
        del stream
        return stopped

    assert asyncio.run(main())


def test_a_stream_left_open_when_its_loop_ends_is_closed_quietly(slow, recwarn):
    """The loop (not the owner) closes it: no 'already running' error, no warning."""

    async def main() -> None:
        stream = _llm(slow).astream("hi")
        assert await stream.__anext__() == "w0 "
        main.stream = stream  # type: ignore[attr-defined]  # kept alive past the loop

    asyncio.run(main())
    assert _stopped_soon(slow)
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


# -- the helpers that end streams


def test_aclose_quietly_closes_a_suspended_generator_at_once():
    from sigla._streams import aclose_quietly

    closed: list[bool] = []

    async def events():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    async def main() -> None:
        generator = events()
        assert await generator.__anext__() == 1
        await aclose_quietly(generator)
        assert closed == [True]  # now, not when the generator is collected
        del generator

    asyncio.run(main())


def test_a_failure_after_text_becomes_a_stream_error_saying_how_much_arrived():
    from sigla._streams import broken_stream
    from sigla.errors import APITimeoutError, StreamError

    error = broken_stream(APITimeoutError("no answer within timeout=1 s"), "abc")
    assert isinstance(error, StreamError) and error.text == "abc"
    assert str(error) == error.message
    assert error.message.startswith("The stream broke after 3 characters: no answer")


def test_a_stream_error_is_told_how_much_arrived_once():
    from sigla._streams import broken_stream
    from sigla.errors import StreamError

    cut = broken_stream(StreamError("connection closed"), "abcd")
    assert cut.message == str(cut) == "The stream broke after 4 characters: connection closed"
    said = "The stream ended without a finish_reason (4 characters received)."
    kept = broken_stream(StreamError(said, text="abcd"), "abcd")
    assert str(kept) == kept.message == said  # it said so already: not twice


def test_a_filtered_stream_keeps_the_text_that_arrived():
    from sigla._streams import broken_stream
    from sigla.errors import ContentFilteredError

    error = broken_stream(ContentFilteredError("filtered"), "Once upon")
    assert isinstance(error, ContentFilteredError) and error.text == "Once upon"
    kept = broken_stream(ContentFilteredError("filtered", text="Once upon a"), "Once upon")
    assert kept.text == "Once upon a"


def test_many_streams_may_be_open_at_once_to_one_endpoint(slow):
    """Each open stream holds a connection; the pool must not cap them at httpcore's 10."""
    llm = GitHubLLM(endpoint=slow.url, token=TOKEN, timeout=3, max_retries=0)
    streams = [llm.stream("hi") for _ in range(24)]
    try:
        assert all(next(stream) for stream in streams)
    finally:
        for stream in streams:
            stream.close()
