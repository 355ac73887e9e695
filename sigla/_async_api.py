"""The async twins of ``GitHubLLM``'s calls: the same steps, awaiting I/O.

A mixin of :class:`sigla.llm.GitHubLLM`, kept apart so that the client's module holds one
copy of each step; the parity test keeps the twins' signatures identical.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._core import (
    SSE_DONE,
    Completion,
    StreamAssembler,
    check_filtered,
    completion_from_sdk,
    parse_sse_event,
)
from ._retry import CallBudget
from ._streams import AsyncTextStream, Outcome, aclose_quietly
from ._translate import for_call, translating
from .errors import LLMError

if TYPE_CHECKING:
    from ._attempts import Attempts
    from ._config import Settings

__all__ = ["AsyncMethods"]

Messages = Sequence[Mapping[str, Any]]
StopArg = str | Sequence[str] | None


class AsyncMethods:
    """``acomplete``, ``achat`` and ``astream``: ``GitHubLLM``'s calls on an event loop."""

    if TYPE_CHECKING:  # what the client provides (sigla.llm.GitHubLLM)
        settings: Settings
        _attempts: Attempts

        def _prepare(
            self,
            prompt: str | None,
            system: str | None,
            messages: Messages | None,
            temperature: float | None,
            max_tokens: int | None,
            top_p: float | None,
            stop: StopArg,
            seed: int | None,
            model: str | None = None,
            response_format: Mapping[str, Any] | None = None,
        ) -> dict[str, Any]: ...

        def _cached(self, call: dict[str, Any]) -> tuple[str | None, Completion | None]: ...

        def _keep(self, key: str | None, completion: Completion) -> Completion: ...

        def _sdk(self) -> Any: ...

    async def acomplete(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: Messages | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: StopArg = None,
        seed: int | None = None,
        model: str | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Async twin of :meth:`complete`."""
        call = self._prepare(
            prompt,
            system,
            messages,
            temperature,
            max_tokens,
            top_p,
            stop,
            seed,
            model,
            response_format,
        )
        key, hit = self._cached(call)
        if hit is not None:
            return hit
        backend = self._sdk()

        attempts = self._attempts

        async def once(budget: CallBudget) -> Completion:
            async with attempts.admitted(call) as gate:
                with translating(for_call(self.settings, call)):
                    completion = completion_from_sdk(
                        await backend.acomplete(attempts.cut(call, budget), gate)
                    )
            attempts.succeeded(gate, completion.usage)
            return completion

        return self._keep(key, await attempts.arun(once, "chat"))

    async def achat(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: Messages | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: StopArg = None,
        seed: int | None = None,
        model: str | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> str:
        """Async twin of :meth:`chat`."""
        completion = await self.acomplete(
            prompt,
            system=system,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            stop=stop,
            seed=seed,
            model=model,
            response_format=response_format,
        )
        return check_filtered(completion).text

    def astream(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: Messages | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: StopArg = None,
        seed: int | None = None,
        model: str | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> AsyncTextStream:
        """Async twin of :meth:`stream`: ``async for piece in llm.astream(...)``."""
        call = self._prepare(
            prompt,
            system,
            messages,
            temperature,
            max_tokens,
            top_p,
            stop,
            seed,
            model,
            response_format,
        )
        return AsyncTextStream(lambda stream: self._astream(call, stream))

    async def _astream(self, call: dict[str, Any], sink: Outcome) -> AsyncIterator[str]:
        key, hit = self._cached(call)
        if hit is not None:
            sink.completion = check_filtered(hit)
            if hit.text:
                yield hit.text
            return
        backend = self._sdk()
        attempts = self._attempts
        budget = attempts.budget()
        attempt = 0
        while True:
            assembler = StreamAssembler()
            try:
                async with attempts.admitted(call) as gate:
                    with translating(for_call(self.settings, call), streaming=True):
                        events = backend.astream_events(
                            attempts.cut(call, budget), budget.deadline(), gate
                        )
                        try:
                            try:
                                async for event in events:
                                    data = parse_sse_event(event)
                                    if data is SSE_DONE:
                                        break
                                    piece = assembler.feed(data)
                                    del data
                                    if piece:
                                        yield piece
                            except Exception:
                                if assembler.finish_reason is None:
                                    raise
                                # Complete already: the server closed without its [DONE].
                            completion = self._keep(key, assembler.finish())
                            attempts.succeeded(gate, completion.usage)
                            sink.completion = check_filtered(completion)
                        except GeneratorExit:
                            # Closed by the event loop (asyncio.run's shutdown_asyncgens, or
                            # a dropped stream's finaliser): the loop closes `events` as
                            # well, and closing it here too would race with that.
                            if sink.closed_by_owner:
                                await aclose_quietly(events)
                            raise
                        except BaseException:
                            await aclose_quietly(events)
                            raise
                        else:
                            await aclose_quietly(events)
                return
            except LLMError as caught:
                error = caught
            await attempts.async_sleep(attempts.next(error, attempt, "stream", assembler, budget))
            attempt += 1
