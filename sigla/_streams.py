"""The objects ``GitHubLLM.stream()`` and ``astream()`` return, and stream-ending helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from ._core import Completion
from .errors import ContentFilteredError, LLMError, StreamError

__all__ = ["TextStream", "AsyncTextStream", "Outcome", "aclose_quietly", "broken_stream"]


class Outcome:
    """Where a stream's generator leaves the finished :class:`Completion`.

    A box of its own, not the stream object: a generator holding its own stream would make
    a reference cycle, and an abandoned stream would then stay open until the cyclic GC ran.
    """

    __slots__ = ("closed_by_owner", "completion")

    def __init__(self) -> None:
        self.completion: Completion | None = None
        self.closed_by_owner = False  # aclose() came from the stream's owner, not the loop


class TextStream(Iterator[str]):
    """The pieces of a streamed answer, yielded as they arrive (``for piece in stream``).

    Once it has ended, ``completion`` holds the whole answer with its ``finish_reason`` and
    ``usage``. ``close()``, leaving a ``with`` block, or dropping the stream (``break`` out
    of a ``for`` loop) stops it and closes the connection.
    """

    def __init__(self, pieces: Callable[[Outcome], Iterator[str]]) -> None:
        self._outcome = Outcome()
        self._pieces = pieces(self._outcome)

    @property
    def completion(self) -> Completion | None:
        """The whole answer once the stream has ended, else None."""
        return self._outcome.completion

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Stop the stream and close its connection."""
        self._pieces.close()  # type: ignore[attr-defined]

    def __enter__(self) -> TextStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncTextStream(AsyncIterator[str]):
    """Async twin of :class:`TextStream`: ``async for piece in stream``; ``await aclose()``."""

    def __init__(self, pieces: Callable[[Outcome], AsyncIterator[str]]) -> None:
        self._outcome = Outcome()
        self._pieces = pieces(self._outcome)

    @property
    def completion(self) -> Completion | None:
        """The whole answer once the stream has ended, else None."""
        return self._outcome.completion

    async def __anext__(self) -> str:
        return await self._pieces.__anext__()

    async def aclose(self) -> None:
        """Stop the stream and close its connection."""
        self._outcome.closed_by_owner = True
        await self._pieces.aclose()  # type: ignore[attr-defined]

    async def __aenter__(self) -> AsyncTextStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def aclose_quietly(generator: Any) -> None:
    """Close an async generator unless it is being closed already.

    When ``asyncio.run`` ends with a stream still open, ``shutdown_asyncgens()`` closes every
    async generator at once, ours and the inner ones; closing one that is mid-close raises
    "aclose(): asynchronous generator is already running".
    """
    if not generator.ag_running:
        await generator.aclose()


def broken_stream(error: LLMError, text: str) -> LLMError:
    """Once pieces reached the caller, any failure is a :class:`StreamError` with the text.

    A timeout or a reset after the first piece is a cut stream: ``except StreamError``
    must catch it, and what was received must not be lost. The message says how much
    arrived; the text itself is on the error's ``text`` attribute.
    """
    if isinstance(error, ContentFilteredError):
        error.text = error.text or text
        return error
    said = f"The stream broke after {len(text)} characters: {error}"
    if isinstance(error, StreamError):
        error.text = error.text or text
        if "characters" not in error.message:
            error.message = said
            error.args = (said,)
        return error
    return StreamError(said, text=text)
