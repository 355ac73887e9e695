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
