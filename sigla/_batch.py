"""The batch engine behind ``GitHubLLM.map``, ``imap`` and ``amap``.

Many prompts, one client: workers (threads, or tasks on an event loop) take the next item
only when they are free, so memory stays bounded by the concurrency whatever the input's
size. Every item ends as its answer or its own error; an error that dooms every remaining
item (a rejected credential, a spent daily quota, a retired service, a missing model) stops
new submissions, and the items already on the wire finish (their answers are paid for).

How many requests are in flight:

- ``concurrency=N``: N workers.
- the service's concurrent-request cap is known (``limits``): one worker more than the cap.
  The cap itself is kept on the wire by the limiter (the transport's gate), so the extra
  worker has its next request built and waiting when a slot frees.
- unknown cap: the budget's learned concurrency (AIMD: halved on a concurrency 429, grown
  back on success), unless ``adaptive=False``, which runs :data:`FIXED_CONCURRENCY`.

Ctrl-C (or closing an ``imap`` early) stops submitting, shuts the sockets of the requests
on the wire, and re-raises at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable, Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any, Union

from ._admission import BATCH, Seat
from ._cancel import SCOPE, Cancelled, CancelScope
from ._progress import Progress
from ._slots import Slots
from ._text import shown
from .errors import (
    AuthenticationError,
    BatchError,
    ConfigurationError,
    GitHubModelsRetiredError,
    InvalidRequestError,
    LLMError,
    ModelNotFoundError,
    NotAttemptedError,
    RateLimitError,
)

if TYPE_CHECKING:
    from .llm import GitHubLLM

__all__ = ["FIXED_CONCURRENCY", "Prompt", "Result", "gather_results", "run_tasks", "run_threads"]

Prompt = Union[str, Sequence[Mapping[str, Any]]]  # noqa: UP007 (a runtime alias on 3.10)
Result = Union[str, LLMError]  # noqa: UP007

FIXED_CONCURRENCY = 4  # unknown cap and adaptive=False
_MOST_WORKERS = 256


def call_args(index: int, item: object, system: str | None) -> dict[str, Any]:
    """``chat``'s arguments for one prompt item: a string, or a list of message dicts.

    ``system`` goes first in a message list that has no system message of its own.
    """
    if isinstance(item, str):
        return {"prompt": item, "system": system}
    if isinstance(item, (list, tuple)) and all(isinstance(m, Mapping) for m in item):
        messages = list(item)
        if system is not None and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        return {"messages": messages}
    raise InvalidRequestError(
        f"Item {index}: a prompt is a string (the user message) or a list of message "
        f"dicts like {{'role': 'user', 'content': '...'}}, not {shown(item)}."
    )


_DOOMING = (ConfigurationError, AuthenticationError, ModelNotFoundError, GitHubModelsRetiredError)


def dooms(error: LLMError, max_retry_wait: float) -> bool:
    """Whether ``error`` would befall every remaining item too, so the batch must stop."""
    if isinstance(
        error,
        (ConfigurationError, AuthenticationError, ModelNotFoundError, GitHubModelsRetiredError),
    ):
        return True
    if isinstance(error, RateLimitError):
        if "day" in (error.limit_type or "").lower():
            return True
        return error.retry_after is not None and error.retry_after > max_retry_wait
    return False


def workers_for(
    llm: GitHubLLM, concurrency: int | None, adaptive: bool
) -> tuple[int, Slots | None]:
    """How many workers a batch runs, and the gate they pass (the learned concurrency)."""
    if concurrency is not None:
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not 1 <= concurrency <= _MOST_WORKERS
        ):
            raise InvalidRequestError(
                f"concurrency= must be an int from 1 to {_MOST_WORKERS}, or None to follow "
                f"the service's limit (or adapt to it), not {shown(concurrency)}."
            )
        return concurrency, None
    limiter = llm._attempts.limiter
    known = limiter.limits.concurrent_requests
    if known:
        return min(known + 1, _MOST_WORKERS), None
    if adaptive:
        learned = limiter.adaptive
        return min(learned.ceiling, _MOST_WORKERS), learned.slots
    return FIXED_CONCURRENCY, None


def _not_attempted(reason: LLMError) -> NotAttemptedError:
    return NotAttemptedError(
        f"Not sent: the batch stopped on {type(reason).__name__}: {reason.message}",
        reason=reason,
    )


class _Outcome:
    """What a run learned beyond the answers: the error that stopped it, if any.

    ``scope`` reaches the transport's gate through the workers' :data:`BATCH` seat: once
    stopped, no request of the run goes on the wire; cancelled, those on it are cut.
    """

    def __init__(self, max_retry_wait: float) -> None:
        self.max_retry_wait = max_retry_wait
        self.reason: LLMError | None = None
        self.stop = threading.Event()
        self.scope = CancelScope()

    def record(self, error: LLMError) -> None:
        if self.reason is None and dooms(error, self.max_retry_wait):
            self.reason = error
            self.stop.set()
            self.scope.stop()

    def unsent(self, item_error: Cancelled) -> Result:
        """The result of an item the stopped run did not send (Ctrl-C: re-raise)."""
        if self.reason is None or self.scope.cancelled:
            raise item_error
        return _not_attempted(self.reason)


# ---------------------------------------------------------------- threads


class _ThreadRun:
    """One sync batch: ``workers`` daemon threads pulling items, results through a queue."""

    _DONE = object()

    def __init__(
        self,
        llm: GitHubLLM,
        prompts: Iterable[object],
        system: str | None,
        params: dict[str, Any],
        workers: int,
        gate: Slots | None,
        progress: Progress,
    ) -> None:
        self._llm = llm
        self._source = enumerate(prompts)
        self._system = system
        self._params = params
        self._workers = workers
        self._gate = gate
        self._progress = progress
        self._lock = threading.Lock()
        self._results: queue.Queue[Any] = queue.Queue(maxsize=2 * workers)
        self.outcome = _Outcome(llm.settings.max_retry_wait)
        self.source_error: BaseException | None = None

    def _take(self) -> tuple[int, object] | None:
        with self._lock:
            if self.outcome.stop.is_set():
                return None
            try:
                return next(self._source)
            except StopIteration:
                return None
            except BaseException as error:  # the caller's iterable failed: stop, re-raise
                self.source_error = error
                self.outcome.stop.set()
                return None

    def _one(self, index: int, item: object) -> Result:
        try:
            args = call_args(index, item, self._system)
        except LLMError as error:
            return error
        try:
            return self._llm.chat(**args, **self._params)
        except LLMError as error:
            self.outcome.record(error)
            return error
        except Cancelled as stopped:
            return self.outcome.unsent(stopped)

    def _work(self) -> None:
        SCOPE.set(self.outcome.scope)  # a new thread starts in a context of its own
        BATCH.set(Seat(self._gate, self.outcome.scope))
        try:
            while (taken := self._take()) is not None:
                index, item = taken
                self._results.put((index, self._one(index, item)))
        except Cancelled:
            pass
        finally:
            self._results.put(self._DONE)

    def _drain(self, alive: int) -> None:
        while alive:
            if self._results.get() is self._DONE:
                alive -= 1

    def __iter__(self) -> Generator[tuple[int, Result], None, None]:
        for n in range(self._workers):
            threading.Thread(target=self._work, name=f"sigla-batch-{n}", daemon=True).start()
        alive = self._workers
        try:
            while alive:
                got = self._results.get()
                if got is self._DONE:
                    alive -= 1
                    continue
                self._progress.done(got[1])
                yield got
        except BaseException:  # Ctrl-C, or the caller stopped iterating: stop everything
            self.outcome.stop.set()
            self.outcome.scope.cancel()
            # Workers blocked on a full queue end only once it is read: read it out.
            threading.Thread(target=self._drain, args=(alive,), daemon=True).start()
            raise
        if self.source_error is not None:
            raise self.source_error


def run_threads(
    llm: GitHubLLM,
    prompts: Iterable[object],
    *,
    system: str | None,
    concurrency: int | None,
    adaptive: bool,
    progress: Progress,
    params: dict[str, Any],
) -> tuple[Generator[tuple[int, Result], None, None], _Outcome]:
    """Start a threaded batch: its ``(index, result)`` pairs as they finish, and its outcome.

    A sized input (``map``'s list) starts no more threads than it has items: a one-item
    batch (a capsule summarised per record on a data engine) would start and end several
    threads for nothing."""
    workers, gate = workers_for(llm, concurrency, adaptive)
    if isinstance(prompts, Sized):
        workers = max(1, min(workers, len(prompts)))
    run = _ThreadRun(llm, prompts, system, params, workers, gate, progress)
    return run.__iter__(), run.outcome


# ---------------------------------------------------------------- tasks


async def run_tasks(
    llm: GitHubLLM,
    prompts: Sequence[object],
    *,
    system: str | None,
    concurrency: int | None,
    adaptive: bool,
    progress: Progress,
    params: dict[str, Any],
) -> tuple[list[Result | None], _Outcome]:
    """Run a batch on the running event loop; results by index (None: never taken)."""
    import asyncio

    workers, gate = workers_for(llm, concurrency, adaptive)
    workers = max(1, min(workers, len(prompts)))
    outcome = _Outcome(llm.settings.max_retry_wait)
    results: list[Result | None] = [None] * len(prompts)
    items = iter(enumerate(prompts))

    async def one(index: int, item: object) -> Result:
        try:
            args = call_args(index, item, system)
        except LLMError as error:
            return error
        try:
            return await llm.achat(**args, **params)
        except LLMError as error:
            outcome.record(error)
            return error
        except Cancelled as stopped:
            return outcome.unsent(stopped)

    async def work() -> None:
        BATCH.set(Seat(gate, outcome.scope))  # each task runs in a copy of the context
        while not outcome.stop.is_set():
            taken = next(items, None)
            if taken is None:
                return
            index, item = taken
            results[index] = result = await one(index, item)
            progress.done(result)

    tasks = [asyncio.ensure_future(work()) for _ in range(min(workers, max(1, len(prompts))))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return results, outcome


# ---------------------------------------------------------------- results


def gather_results(
    results: Sequence[Result | None], outcome: _Outcome, return_exceptions: bool
) -> list[Any]:
    """``map``'s list: answers in input order, errors in place (or a :class:`BatchError`)."""
    reason = outcome.reason
    full: list[Result] = [
        r if r is not None else _not_attempted(reason or LLMError("not run")) for r in results
    ]
    failed = [r for r in full if isinstance(r, LLMError)]
    if return_exceptions or not failed:
        return full
    raise BatchError(_summary(full, failed, reason), results=full, reason=reason)


def _summary(full: list[Result], failed: list[LLMError], reason: LLMError | None) -> str:
    skipped = sum(isinstance(r, NotAttemptedError) for r in failed)
    kinds: dict[str, int] = {}
    for error in failed:
        if not isinstance(error, NotAttemptedError):
            kinds[type(error).__name__] = kinds.get(type(error).__name__, 0) + 1
    answered = len(full) - len(failed)
    parts = [
        f"{len(failed) - skipped} of {len(full)} items failed"
        + (f" ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if kinds else "")
        + f"; {answered} answers are kept in .results (aligned with the inputs)."
    ]
    if reason is not None:
        parts.append(
            f"The batch stopped early, {skipped} items not sent: {reason.message} "
            "Fix that and run the same map again; with the cache on (cache=True), the "
            "answers already received are not requested again."
        )
    return " ".join(parts)
