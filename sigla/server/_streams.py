"""The server's streams, FastAPI-free: an upstream stream opened before the answer starts,
closed however the answer ends, and OpenAI's chunk framing of it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from ..errors import LLMError
from ._wire import completion_id, failure_of, openai_chunk, usage_json

__all__ = ["Primed", "openai_events", "shielded_close"]

logger = logging.getLogger("sigla.server")


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


async def openai_events(
    primed: Primed, include_usage: bool, publish: Callable[[str, Any], None]
) -> AsyncIterator[str]:
    """OpenAI's stream framing: ``data: <chunk>`` events, ``data: [DONE]`` last; a failure
    midway is a ``data: {"error": ...}`` event (which the ``openai`` client raises), and
    then no ``[DONE]``."""
    ident, created, model = completion_id(), int(time.time()), primed.model

    def event(chunk: dict[str, Any]) -> str:
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    try:
        yield event(openai_chunk(ident, created, model, {"role": "assistant", "content": ""}))
        async for piece in primed.pieces():
            yield event(openai_chunk(ident, created, model, {"content": piece}))
        done = primed.stream.completion
        finish = (done.finish_reason if done else None) or "stop"
        yield event(openai_chunk(ident, created, model, {}, finish))
        if include_usage:
            yield event(
                openai_chunk(
                    ident, created, model, None, usage=usage_json(done.usage if done else None)
                )
            )
        yield "data: [DONE]\n\n"
    except Exception as exc:
        if not isinstance(exc, LLMError):
            logger.error("unexpected failure in a stream", exc_info=exc)
        yield event(failure_of(exc).openai_json())
    finally:
        await shielded_close(primed.stream)
        publish(model, primed.llm.usage)
