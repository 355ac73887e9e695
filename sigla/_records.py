"""Records and batches in the shapes data engines hand to a function, for the per-record API.

``GitHubLLM.chat_record``/``chat_batch`` and ``sigla.capsules.summarize_record``/
``summarize_batch`` take what an engine gives a user function and give back the same shape:

- a record: a mapping of fields (Ray Data's ``map``, a ``dask.bag`` element, a plain dict);
- a batch, as one of
  - a pandas ``DataFrame`` (Dask's ``map_partitions``, Spark's ``mapInPandas``, Ray's
    ``batch_format="pandas"``),
  - a dict of columns (Ray's default batch format: NumPy arrays; lists work too),
  - a list of records.

Each record comes back with the fields it had plus the result's (``answer`` or
``summary``) and ``error``/``error_type``; a record that cannot be read gets an error value
here, so one bad record never fails an engine's task. pandas and NumPy are never imported
here: a batch can only be a DataFrame if the caller's process has imported pandas already.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from ._batch import dooms
from ._text import shown
from .errors import BatchError, InvalidRequestError, LLMError, NotAttemptedError

__all__ = [
    "ERROR",
    "ERROR_TYPE",
    "Shape",
    "fatal",
    "field_of",
    "join_batch",
    "missing",
    "plain",
    "result_fields",
    "result_names",
    "run_each",
    "split_batch",
    "stopped",
    "with_fields",
]

ERROR, ERROR_TYPE = "error", "error_type"
T = TypeVar("T")
R = TypeVar("R")
Shape = Literal["dataframe", "columns", "records"]


def result_names(name: str) -> tuple[str, str, str]:
    """The fields a result adds to a record: ``name`` (the result), ``error``, ``error_type``."""
    return (name, ERROR, ERROR_TYPE)


def result_fields(name: str, value: str | LLMError | None) -> dict[str, Any]:
    """``{name: answer, error: None, error_type: None}``, or the error's value."""
    if isinstance(value, LLMError):
        return {name: None, ERROR: value.message, ERROR_TYPE: type(value).__name__}
    return {name: value, ERROR: None, ERROR_TYPE: None}


def with_fields(record: object, added: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``record``'s fields (none if it is not a mapping) then ``added``'s."""
    base = dict(record) if isinstance(record, Mapping) else {}
    base.update(added)
    return base


def missing(value: object) -> bool:
    """Whether ``value`` is an empty cell: None, or a float NaN (pandas' missing value)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def plain(value: object) -> object:
    """A cell of a DataFrame or array as plain Python: None for a missing value, and a
    NumPy scalar as its Python twin (``numpy.int64(3)`` is not an ``int``)."""
    if missing(value):
        return None
    if type(value).__module__ == "numpy" and not _is_ndarray(value):
        item = getattr(value, "item", None)
        if callable(item):
            return item()
    return value


def fatal(results: Sequence[object], max_retry_wait: float) -> LLMError | None:
    """The error among ``results`` that would befall every record (a refused credential, a
    spent daily quota, an unreachable store...), if one stopped the work, else None.

    An engine's task should fail on it (and be retried later) rather than write the same
    error into every row.
    """
    for result in results:
        if isinstance(result, NotAttemptedError) and result.reason is not None:
            return result.reason
    for result in results:
        if isinstance(result, LLMError) and dooms(result, max_retry_wait):
            return result
    return None


def stopped(reason: LLMError, results: list[str | LLMError]) -> BatchError:
    """The error a batch function raises when ``reason`` stopped it."""
    answered = sum(not isinstance(r, LLMError) for r in results)
    return BatchError(
        f"The batch stopped on {type(reason).__name__}: {reason.message} "
        f"{answered} of {len(results)} records were answered before it; with a shared "
        "cache (cache=), running the task again does not pay for them twice.",
        results=results,
        reason=reason,
    )


def field_of(record: object, field: str, what: str) -> object:
    """The value of ``field`` in ``record``; an :class:`InvalidRequestError` saying what is
    wrong if ``record`` is not a mapping or the field is absent or empty."""
    if not isinstance(record, Mapping):
        raise InvalidRequestError(
            f"A record is a mapping of fields with {what} in {field!r}, not {shown(record)}."
        )
    if field not in record:
        keys = ", ".join(repr(k)[:30] for k in list(record)[:8]) or "none"
        raise InvalidRequestError(f"The record has no {field!r} field (its fields: {keys}).")
    value = record[field]
    if missing(value):
        raise InvalidRequestError(f"The record's {field!r} is empty ({value!r}).")
    return value


def run_each(work: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[work(item) for item in items]`` on up to ``workers`` threads, results in order.

    The first exception is raised once the calls already running have finished; the
    calls not started yet never start.
    """
    if workers <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor  # only when a batch runs

    pool = ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="sigla-records")
    try:
        futures = [pool.submit(work, item) for item in items]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- batches


def _is_dataframe(batch: object) -> bool:
    pandas = sys.modules.get("pandas")  # a DataFrame means pandas is imported already
    return pandas is not None and isinstance(batch, pandas.DataFrame)


def _is_ndarray(column: object) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(column, numpy.ndarray)


def split_batch(batch: object) -> tuple[Shape, list[object]]:
    """The batch's shape and its records in order (each a dict, or whatever a list held)."""
    if _is_dataframe(batch):
        frame: Any = batch
        columns = [str(c) for c in frame.columns]
        rows = frame.itertuples(index=False, name=None)
        return "dataframe", [
            {name: plain(v) for name, v in zip(columns, row, strict=True)} for row in rows
        ]
    if isinstance(batch, Mapping):
        lengths = {name: len(column) for name, column in batch.items()}
        if len(set(lengths.values())) > 1:
            raise InvalidRequestError(
                f"A dict batch holds columns of equal length; these differ: {lengths}."
            )
        size = next(iter(lengths.values()), 0)
        return "columns", [{name: plain(batch[name][i]) for name in batch} for i in range(size)]
    if isinstance(batch, Iterable) and not isinstance(batch, (str, bytes, bytearray)):
        return "records", list(batch)  # a dask.bag partition may be an iterator
    raise InvalidRequestError(
        "A batch is a pandas DataFrame, a dict of equally long columns (Ray's default "
        f"format) or a list of records, not {shown(batch)}."
    )


def join_batch(
    batch: Any,
    shape: Shape,
    rows: Sequence[object],
    added: Sequence[Mapping[str, Any]],
    names: Sequence[str],
) -> Any:
    """``batch`` in its own shape with the fields ``names`` of ``added`` (one mapping per
    record) set; an empty batch gets the columns too.

    A DataFrame and a dict of columns are copied, never changed in place (an engine may
    hold the input for a retry); existing columns of the same names are replaced.
    """
    if shape == "records":
        return [
            with_fields(row, {name: extra[name] for name in names})
            for row, extra in zip(rows, added, strict=True)
        ]
    values = {name: [extra[name] for extra in added] for name in names}
    if shape == "dataframe":
        out = batch.copy()
        for name in names:
            out[name] = _object_column(batch, values[name])
        return out
    out_columns = dict(batch)
    arrays = any(_is_ndarray(column) for column in batch.values())
    make: Callable[[list[Any]], Any] = _object_array if arrays else list
    for name in names:
        out_columns[name] = make(values[name])
    return out_columns


def _object_column(frame: Any, values: list[Any]) -> Any:
    """A pandas Series of dtype object on ``frame``'s index: None stays None (not NaN)."""
    pandas = sys.modules["pandas"]
    return pandas.Series(values, index=frame.index, dtype=object)


def _object_array(values: list[Any]) -> Any:
    """A NumPy array of dtype object (Ray's batch columns are arrays; None stays None)."""
    numpy = sys.modules["numpy"]
    array = numpy.empty(len(values), dtype=object)
    array[:] = values
    return array
