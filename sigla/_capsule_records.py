"""One summary per record, for data engines: :func:`summarize_record` and
:func:`summarize_batch`, exported by :mod:`sigla.capsules`.

Ray Data's ``map_batches``, a Dask bag's ``map``, a Spark pandas UDF call a plain function
per record or per batch and must not fail a whole partition for one bad record: these wrap
:func:`~sigla.capsules.summarize_capsules` so that a record's own failure becomes an error
value next to it, and only an error that would befall every record raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._batch import dooms, workers_for
from ._records import (
    field_of,
    join_batch,
    plain,
    result_fields,
    result_names,
    run_each,
    split_batch,
    with_fields,
)
from .errors import BatchError, InvalidRequestError, LLMError
from .llm import GitHubLLM

__all__ = ["summarize_batch", "summarize_record"]



def _record_capsules(record: object, field: str | None) -> list[object]:
    """The capsules of one record: the record itself, or the list in ``record[field]``;
    an empty cell of a DataFrame row (NaN) reads as an absent field."""
    if field is None:
        if not isinstance(record, Mapping):
            raise InvalidRequestError(
                "A capsule record is a mapping with 'text' or 'content' (and optional 'id', "
                f"'title', 'score'), not a {type(record).__name__}; pass field= to name a "
                "field that holds a list of capsules."
            )
        return [{name: plain(value) for name, value in record.items()}]
    value = field_of(record, field, "a list of capsules")
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidRequestError(
            f"The record's {field!r} holds a {type(value).__name__}: expected a list of capsules."
        )
    return [
        {name: plain(v) for name, v in item.items()} if isinstance(item, Mapping) else item
        for item in value
    ]


def summarize_record(
    record: object,
    llm: GitHubLLM | None = None,
    *,
    field: str | None = None,
    max_input_tokens: int | None = None,
    prompt: str | None = None,
    reduce_prompt: str | None = None,
) -> dict[str, Any]:
    """A new dict: ``record``'s fields, ``summary`` (or None), ``error`` (the message of the
    :mod:`sigla.errors` error that kept it from being summarised, or None) and
    ``error_type`` (that error's class name, or None).

    The plain function a data engine calls per record (Ray Data's ``map``, a
    ``dask.bag``'s ``.map``). With ``field=None`` the record is one capsule (``text`` or
    ``content``, optional ``id``, ``title``, ``score``) and gets its own summary; with
    ``field="capsules"`` the record holds a list of capsules (a group: one topic, one
    document) that :func:`summarize_capsules` merges into one summary, map-reduce
    included. The other options are :func:`summarize_capsules`'s. A bad capsule or a
    failed request is an error value; an error that would befall every record (a
    refused credential, a spent daily quota, an unreachable shared store) raises.
    """
    from .capsules import summarize_capsules  # not at import: capsules imports this module

    llm = GitHubLLM() if llm is None else llm
    try:
        summary: str | LLMError = summarize_capsules(
            _record_capsules(record, field),
            llm=llm,
            max_input_tokens=max_input_tokens,
            prompt=prompt,
            reduce_prompt=reduce_prompt,
            progress=False,
        )
    except BatchError as error:
        if error.reason is not None:
            raise
        summary = error.errors[0][1] if error.errors else error
    except LLMError as error:
        if dooms(error, llm.settings.max_retry_wait):
            raise
        summary = error
    return with_fields(record, result_fields("summary", summary))


def summarize_batch(
    batch: Any,
    llm: GitHubLLM | None = None,
    *,
    field: str | None = None,
    concurrency: int | None = None,
    max_input_tokens: int | None = None,
    prompt: str | None = None,
    reduce_prompt: str | None = None,
) -> Any:
    """``batch`` with ``summary``, ``error`` and ``error_type`` set for every record by
    :func:`summarize_record`, in the shape it came in: a pandas DataFrame (a copy), a dict
    of columns (Ray Data's batches) or a list of records.

    ``concurrency`` records are summarised at once (None: one more than the service's
    known concurrent-request cap, else 4); the client's limiter keeps the requests under
    its limits in any case. An error that stops every record raises
    :class:`~sigla.errors.BatchError` (``.reason``: that error).
    """
    llm = GitHubLLM() if llm is None else llm
    shape, rows = split_batch(batch)
    workers, _ = workers_for(llm, concurrency, adaptive=False)
    options: dict[str, Any] = {
        "field": field,
        "max_input_tokens": max_input_tokens,
        "prompt": prompt,
        "reduce_prompt": reduce_prompt,
    }
    done = run_each(lambda row: summarize_record(row, llm, **options), rows, workers)
    return join_batch(batch, shape, rows, done, result_names("summary"))
