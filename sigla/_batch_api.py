"""``map``, ``imap`` and ``amap``: the batch methods of ``GitHubLLM`` (a mixin).

They take :meth:`~sigla.llm.GitHubLLM.chat`'s options for every item and drive the engine
of :mod:`sigla._batch`, which knows nothing of any face.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any, Literal, overload

from ._batch import Prompt, Result, gather_results, run_tasks, run_threads
from ._progress import Progress
from ._requests import check_model, check_response_format
from .errors import BatchError, LLMError

if TYPE_CHECKING:
    from .llm import GitHubLLM

__all__ = ["BatchMethods"]


class BatchMethods:
    """``map``, ``imap`` and ``amap``: many prompts through one client (``GitHubLLM``)."""

    @overload
    def map(
        self,
        prompts: Iterable[Prompt],
        *,
        system: str | None = ...,
        concurrency: int | None = ...,
        progress: bool | None = ...,
        return_exceptions: Literal[False] = ...,
        adaptive: bool = ...,
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        top_p: float | None = ...,
        stop: str | Sequence[str] | None = ...,
        seed: int | None = ...,
        model: str | None = ...,
        response_format: Mapping[str, Any] | None = ...,
    ) -> list[str]: ...

    @overload
    def map(
        self,
        prompts: Iterable[Prompt],
        *,
        system: str | None = ...,
        concurrency: int | None = ...,
        progress: bool | None = ...,
        return_exceptions: Literal[True],
        adaptive: bool = ...,
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        top_p: float | None = ...,
        stop: str | Sequence[str] | None = ...,
        seed: int | None = ...,
        model: str | None = ...,
        response_format: Mapping[str, Any] | None = ...,
    ) -> list[str | LLMError]: ...

    def map(
        self,
        prompts: Iterable[Prompt],
        *,
        system: str | None = None,
        concurrency: int | None = None,
        progress: bool | None = None,
        return_exceptions: bool = False,
        adaptive: bool = True,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        model: str | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """Answer every prompt, as fast as the service's limits allow; answers in input order.

        A prompt is a string (the user message) or a list of message dicts; the other
        options are :meth:`chat`'s, for every item. An item's own failure (input too
        large, filtered, a fault that outlived its retries) is kept in its place and the
        batch goes on; an error that dooms the rest (credential, spent daily quota,
        retirement, configuration) stops new requests and lets those on the wire finish.
        Then, if any item failed: with ``return_exceptions=True`` its error is in the list
        (a :class:`~sigla.errors.NotAttemptedError` for items never sent); otherwise a
        :class:`~sigla.errors.BatchError` is raised carrying ``.results``.

        ``concurrency``: requests in flight (None: the service's known limit, else learned
        from its 429s unless ``adaptive=False``). ``progress``: a bar on stderr (None: when
        stderr is a terminal or in a notebook).
        """
        items = list(prompts)
        params = _params(temperature, max_tokens, top_p, stop, seed, model, response_format)
        client = self._client()
        with Progress(progress, len(items), client.usage) as bar:
            pairs, outcome = run_threads(
                client,
                items,
                system=system,
                concurrency=concurrency,
                adaptive=adaptive,
                progress=bar,
                params=params,
            )
            results: list[Result | None] = [None] * len(items)
            try:
                for index, result in pairs:
                    results[index] = result
            finally:  # at once, even while a traceback keeps this frame (and `pairs`) alive
                pairs.close()
        return gather_results(results, outcome, return_exceptions)

    def imap(
        self,
        prompts: Iterable[Prompt],
        *,
        system: str | None = None,
        concurrency: int | None = None,
        progress: bool | None = None,
        adaptive: bool = True,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        model: str | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> Iterator[tuple[int, str | LLMError]]:
        """Yield ``(input index, answer or error)`` as each prompt finishes.

        Takes any iterable, a generator of a million prompts included: items are read only
        as workers free up, so memory stays bounded by the concurrency. Options as
        :meth:`map`. If an error dooms the rest, the items on the wire are yielded, then a
        :class:`~sigla.errors.BatchError` (``.reason``: that error) is raised; the input
        is not read further. Closing the iterator stops the batch: leaving a ``for`` loop
        early closes it when it is dropped; ``with contextlib.closing(llm.imap(...)) as
        pairs:`` closes it at once, even when an exception (Ctrl-C) leaves the loop.
        """
        params = _params(temperature, max_tokens, top_p, stop, seed, model, response_format)
        client = self._client()
        total = len(prompts) if isinstance(prompts, Sized) else None
        with Progress(progress, total, client.usage) as bar:
            pairs, outcome = run_threads(
                client,
                prompts,
                system=system,
                concurrency=concurrency,
                adaptive=adaptive,
                progress=bar,
                params=params,
            )
            yield from pairs
        if outcome.reason is not None:
            reason = outcome.reason
            raise BatchError(
                f"The batch stopped early on {type(reason).__name__}: {reason.message} "
                "The rest of the input was not read.",
                reason=reason,
            )

    @overload
    async def amap(
        self,
        prompts: Iterable[Prompt],
        *,
        system: str | None = ...,
        concurrency: int | None = ...,
        progress: bool | None = ...,
        return_exceptions: Literal[False] = ...,
        adaptive: bool = ...,
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        top_p: float | None = ...,
        stop: str | Sequence[str] | None = ...,
        seed: int | None = ...,
        model: str | None = ...,
        response_format: Mapping[str, Any] | None = ...,
    ) -> list[str]: ...

    @overload
    async def amap(
        self,
        prompts: Iterable[Prompt],
        *,
        system: str | None = ...,
        concurrency: int | None = ...,
        progress: bool | None = ...,
        return_exceptions: Literal[True],
        adaptive: bool = ...,
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        top_p: float | None = ...,
        stop: str | Sequence[str] | None = ...,
        seed: int | None = ...,
        model: str | None = ...,
        response_format: Mapping[str, Any] | None = ...,
    ) -> list[str | LLMError]: ...

    async def amap(
        self,
        prompts: Iterable[Prompt],
        *,
        system: str | None = None,
        concurrency: int | None = None,
        progress: bool | None = None,
        return_exceptions: bool = False,
        adaptive: bool = True,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        model: str | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """Async twin of :meth:`map`, on the running event loop (cancelling it cancels the
        requests on the wire)."""
        items = list(prompts)
        params = _params(temperature, max_tokens, top_p, stop, seed, model, response_format)
        client = self._client()
        with Progress(progress, len(items), client.usage) as bar:
            results, outcome = await run_tasks(
                client,
                items,
                system=system,
                concurrency=concurrency,
                adaptive=adaptive,
                progress=bar,
                params=params,
            )
        return gather_results(results, outcome, return_exceptions)

    def _client(self) -> GitHubLLM:
        return self  # type: ignore[return-value]


def _params(
    temperature: float | None,
    max_tokens: int | None,
    top_p: float | None,
    stop: str | Sequence[str] | None,
    seed: int | None,
    model: str | None,
    response_format: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The options every item gets; ``model`` and ``response_format`` are checked once here,
    so a bad one fails before any item is sent."""
    return {
        "temperature": temperature,
        "max_tokens": max_tokens,
        "top_p": top_p,
        "stop": stop,
        "seed": seed,
        "model": check_model(model),
        "response_format": check_response_format(response_format),
    }
