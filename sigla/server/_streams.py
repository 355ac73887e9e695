"""The server's upstream calls, FastAPI-free: cancelled when the caller leaves; a stream
opened before the answer starts, closed however the answer ends; OpenAI's chunk framing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import aclosing
from typing import Any, TypeVar

import anyio

from ..errors import LLMError
from ._wire import completion_id, failure_of, openai_chunk, usage_json

__all__ = ["CallerGone", "Primed", "openai_events", "shielded_close", "unless_caller_leaves"]

logger = logging.getLogger("sigla.server")
T = TypeVar("T")
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class CallerGone(Exception):
    """The caller disconnected while its upstream call was waiting or running: the call
    was cancelled (its upstream connection closed, its limiter slot freed)."""


async def unless_caller_leaves(receive: Receive, work: Callable[[], Awaitable[T]]) -> T:
    """``await work()``, cancelled as soon as the caller disconnects.

    Until a response starts nothing else listens to the connection: without this, a caller
    that gives up while its request waits for a slot, or for a model's first token, would
    still have the upstream call made and paid for. ``receive`` is the request's ASGI
    receive: once the body is read, its next message is ``http.disconnect``, so the watch
    costs no polling. Exceptions of ``work`` pass through unchanged (no task group, whose
    exception groups would hide them from the app's handlers).
    """
    with anyio.CancelScope() as scope:

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            scope.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            return await work()
        finally:
            watcher.cancel()
    raise CallerGone("the caller disconnected before the answer")


async def shielded_close(stream: Any) -> None:
    """Close an upstream stream even while this task is being cancelled (the caller left)."""
    with anyio.CancelScope(shield=True):
        await stream.aclose()


class Primed:
    """An upstream stream whose first piece has arrived: failures before it are answered
    as HTTP errors (a 429 with Retry-After...), not as a 200 stream that errs at once."""

    def __init__(self, stream: Any, first: str | None, model: str, llm: Any) -> None:
        self.stream, self.first, self.model, self.llm = stream, first, model, llm

    @classmethod
    async def open(cls, llm: Any, model: str, **call: Any) -> Primed:
        stream = llm.astream(**call)
        try:
            first: str | None = await stream.__anext__()
        except StopAsyncIteration:
            first = None
        except BaseException:
            await shielded_close(stream)
            raise
        return cls(stream, first, model, llm)

    async def pieces(self) -> AsyncIterator[str]:
        if self.first is None:
            return
        yield self.first
        async for piece in self.stream:
            yield piece

    async def outcome(
        self, publish: Callable[[str, Any], None]
    ) -> AsyncGenerator[tuple[str, Any], None]:
        """What both stream routes send, whatever their framing: ``("delta", text)`` per
        piece, then ``("done", {"usage", "finish_reason"})`` or ``("error", Failure)`` if
        the upstream fails midway (never a silently short stream). However it ends, the
        upstream stream is closed and its spending published. Consume it inside
        ``contextlib.aclosing`` so a caller who leaves closes it at once."""
        try:
            async for piece in self.pieces():
                yield "delta", piece
            done = self.stream.completion
            yield (
                "done",
                {
                    "usage": usage_json(done.usage if done else None),
                    "finish_reason": (done.finish_reason if done else None) or "stop",
                },
            )
        except Exception as exc:
            if not isinstance(exc, LLMError):
                logger.error("unexpected failure in a stream", exc_info=exc)
            yield "error", failure_of(exc)
        finally:
            await shielded_close(self.stream)
            publish(self.model, self.llm.usage)


async def openai_events(
    primed: Primed, include_usage: bool, publish: Callable[[str, Any], None]
) -> AsyncIterator[str]:
    """OpenAI's stream framing: ``data: <chunk>`` events, ``data: [DONE]`` last; a failure
    midway is a ``data: {"error": ...}`` event (which the ``openai`` client raises), and
    then no ``[DONE]``."""
    ident, created, model = completion_id(), int(time.time()), primed.model

    def event(chunk: dict[str, Any]) -> str:
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event(openai_chunk(ident, created, model, {"role": "assistant", "content": ""}))
    async with aclosing(primed.outcome(publish)) as outcome:
        async for kind, value in outcome:
            if kind == "delta":
                yield event(openai_chunk(ident, created, model, {"content": value}))
            elif kind == "done":
                yield event(openai_chunk(ident, created, model, {}, value["finish_reason"]))
                if include_usage:
                    yield event(openai_chunk(ident, created, model, None, usage=value["usage"]))
                yield "data: [DONE]\n\n"
            else:
                yield event(value.openai_json())
