"""The progress bar of a batch: done/total, failures, retries, cached, and rate-limit waits.

A ``tqdm.auto`` bar on stderr (a terminal line, or a widget in a notebook). While it runs,
sigla's notices (retries, rate-limit waits: log records with ``sigla_notice``) become its
status instead of lines of their own, so the two never interleave.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from ._retry import describe_wait
from ._usage import UsageTotals
from .errors import LLMError, MissingDependencyError

__all__ = ["Progress", "wanted", "write_line"]

_shown: list[Progress] = []  # the bars on screen now, newest last


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def wanted(setting: bool | None) -> bool:
    """``progress=`` resolved: None shows a bar on a terminal's stderr or in a notebook."""
    if setting is not None:
        return bool(setting)
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):
        terminal = False
    return terminal or _in_notebook()


class _Notices(logging.Handler):
    def __init__(self, progress: Progress) -> None:
        super().__init__(logging.INFO)
        self._progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        kind = getattr(record, "sigla_notice", None)
        wait = describe_wait(getattr(record, "sigla_wait", 0.0))
        if kind == "rate_limit":
            limits = getattr(record, "sigla_limits", "")
            self._progress.status(f"waiting {wait}" + (f": {limits}" if limits else ""))
        elif kind == "retry":
            self._progress.status(f"retry in {wait}")


class Progress:
    """A bar over ``total`` items (None: unknown) fed by :meth:`done`; silent if not shown.

    Use it as a context manager: it shows the client's notices while the batch runs.
    ``usage`` is the client's totals, read for the retries and cached counts.
    """

    def __init__(self, setting: bool | None, total: int | None, usage: UsageTotals) -> None:
        self._usage = usage
        self._start = usage.snapshot()
        self._failed = 0
        self._bar: Any = None
        self._handler: _Notices | None = None
        self._level = logging.NOTSET
        if not wanted(setting):
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise MissingDependencyError(
                "progress=True needs tqdm: pip install tqdm (it comes with sigla's [llm] "
                "extra), or pass progress=False."
            ) from None
        self._bar = tqdm(total=total, unit="item", desc="sigla", file=sys.stderr, leave=True)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            _shown.append(self)
            logger = logging.getLogger("sigla")
            self._handler = _Notices(self)
            self._level = logger.level
            if not logger.isEnabledFor(logging.INFO):
                logger.setLevel(logging.INFO)
            logger.addHandler(self._handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self in _shown:
            _shown.remove(self)
        if self._handler is not None:
            logger = logging.getLogger("sigla")
            logger.removeHandler(self._handler)
            logger.setLevel(self._level)
            self._handler = None
        if self._bar is not None:
            self._bar.close()

    def done(self, result: object) -> None:
        """One item finished (an answer or an error)."""
        if isinstance(result, LLMError):
            self._failed += 1
        bar = self._bar
        if bar is None:
            return
        spent = self._usage.snapshot() - self._start
        bar.set_description("sigla", refresh=False)
        bar.set_postfix(
            failed=self._failed, retries=spent.retries, cached=spent.cached, refresh=False
        )
        bar.update(1)

    def status(self, text: str) -> None:
        """Say what the batch is waiting for (shown until the next item finishes)."""
        if self._bar is not None:
            self._bar.set_description(f"sigla ({text})")

    def write(self, text: str) -> None:
        """Print a line above the bar (or on stderr when there is none)."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)


def write_line(text: str) -> bool:
    """Print ``text`` above the bar on screen, if there is one; whether it did."""
    if not _shown:
        return False
    _shown[-1].write(text)
    return True
