"""``chat_record`` and ``chat_batch``: ``GitHubLLM`` as the plain function a data engine
calls (Dask's ``map_partitions``, Ray Data's ``map``/``map_batches``, Spark's
``mapInPandas``), a mixin of :class:`sigla.llm.GitHubLLM`.

A record goes in, the record with ``answer``, ``error`` and ``error_type`` comes out. One
bad record (no prompt, a prompt too large, a filtered answer) is an error value in its
row, never an exception that fails the engine's task, which the engine would retry for
nothing. An error that would befall every record (a refused credential, a spent daily
quota, an unreachable shared store) does raise: the task fails, and the engine's retry,
served from a shared cache, does not pay again for what was answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._batch import Prompt, call_args, dooms
from ._records import (
    fatal,
    field_of,
    join_batch,
    result_fields,
    result_names,
    split_batch,
    stopped,
    with_fields,
)
from ._text import shown
from .errors import InvalidRequestError, LLMError

if TYPE_CHECKING:
    from .llm import GitHubLLM

__all__ = ["ANSWER", "RecordMethods"]

ANSWER = "answer"


def prompt_of(record: object, field: str) -> Prompt:
    """The prompt in ``record[field]``: a non-blank string, or a list of message dicts."""
    value = field_of(record, field, "the prompt")
    if isinstance(value, str):
        if not value.strip():
            raise InvalidRequestError(f"The record's {field!r} is blank.")
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(m, dict) for m in value):
        return list(value)
    raise InvalidRequestError(
        f"The record's {field!r} is {shown(value)}: expected a str (the user message) or a "
        "list of message dicts like {'role': 'user', 'content': '...'}."
    )


class RecordMethods:
    """``chat_record`` and ``chat_batch``: one client (``GitHubLLM``) over an engine's data."""

    def chat_record(
        self,
        record: object,
        *,
        field: str = "prompt",
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """A new dict: ``record``'s fields, ``answer`` (the model's answer to
        ``record[field]``, or None), ``error`` (the message of the :mod:`sigla.errors`
        error that kept it from being answered, or None) and ``error_type`` (that error's
        class name, or None).

        For Ray Data's ``ds.map(llm.chat_record)`` or a ``dask.bag``'s ``.map``. The prompt
        is a string (the user message) or a list of message dicts; the options are
        :meth:`chat`'s. A record that is not a mapping, lacks ``field`` or holds no usable
        prompt gets an error value, as does a request that fails on its own; only an
        error that would befall every record is raised (see :mod:`sigla._record_api`), and
        nothing but sigla's errors ever becomes a value.
        """
        try:
            call = call_args(0, prompt_of(record, field), system)
            answer: str | LLMError = self._client().chat(
                **call,
                temperature=temperature,
                max_tokens=max_tokens,
                top_p=top_p,
                stop=stop,
                seed=seed,
            )
        except LLMError as error:
            if dooms(error, self._client().settings.max_retry_wait):
                raise
            answer = error
        return with_fields(record, result_fields(ANSWER, answer))

    def chat_batch(
        self,
        batch: Any,
        *,
        field: str = "prompt",
        concurrency: int | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Any:
        """``batch`` with ``answer``, ``error`` and ``error_type`` added to every record, in
        the shape it came in:

        - a pandas DataFrame (Dask's ``map_partitions``, Spark's ``mapInPandas``, Ray's
          ``batch_format="pandas"``): a copy with the three columns (dtype object);
        - a dict of equally long columns (Ray Data's default batch format): a dict with
          the three columns added, NumPy arrays if the input held arrays, else lists;
        - a list of records: a list of new dicts, as :meth:`chat_record` returns.

        The prompts go through :meth:`map` (``return_exceptions=True``, no progress bar)
        so they run ``concurrency`` at a time under the client's limits, and each
        record's own failure is its error value. An error that stops the whole batch
        (see :mod:`sigla._record_api`) raises :class:`~sigla.errors.BatchError` with that
        ``reason``. pandas is never imported here.
        """
        shape, rows = split_batch(batch)
        results: list[str | LLMError] = []
        sent: list[int] = []
        prompts: list[Prompt] = []
        for index, row in enumerate(rows):
            try:
                prompts.append(prompt_of(row, field))
            except InvalidRequestError as error:
                results.append(error)
                continue
            results.append("")  # filled in below
            sent.append(index)
        client = self._client()
        if prompts:
            answers = client.map(
                prompts,
                system=system,
                concurrency=concurrency,
                progress=False,
                return_exceptions=True,
                temperature=temperature,
                max_tokens=max_tokens,
                top_p=top_p,
                stop=stop,
                seed=seed,
            )
            for index, answer in zip(sent, answers, strict=True):
                results[index] = answer
            reason = fatal(answers, client.settings.max_retry_wait)
            if reason is not None:
                raise stopped(reason, results)
        added = [result_fields(ANSWER, result) for result in results]
        return join_batch(batch, shape, rows, added, result_names(ANSWER))

    def _client(self) -> GitHubLLM:
        return self  # type: ignore[return-value]
