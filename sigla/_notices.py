"""Notices: what sigla says on stderr while it waits (retries, rate-limit waits).

The library logs each of them on the "sigla" logger with ``sigla_notice`` and ``sigla_wait``
on the record; a face (the command line today, a progress bar later) shows them through
:func:`notices`, which owns the one place they reach the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Literal

import click

from ._progress import write_line

__all__ = ["Verbosity", "notices", "print_notice", "stderr_is_terminal"]

Verbosity = Literal["quiet", "auto", "verbose"]


def print_notice(text: str) -> None:
    """The one place a notice reaches the terminal: one ``sigla: …`` line on stderr.

    A batch's progress bar owns the terminal while it runs: the line goes above it.
    """
    if not write_line(f"sigla: {text}"):  # a batch's bar owns the terminal while it runs
        click.echo(f"sigla: {text}", err=True)


class _NoticeHandler(logging.Handler):
    """Hands the "sigla" logger's notices (records with ``sigla_notice``: retries and
    rate-limit waits) and warnings to ``show``; with ``everything``, every record."""

    def __init__(self, show: Callable[[str], None], *, everything: bool) -> None:
        super().__init__(logging.INFO)
        self._show = show
        self._everything = everything

    def emit(self, record: logging.LogRecord) -> None:
        notice = getattr(record, "sigla_notice", None)
        warning = record.levelno >= logging.WARNING
        if not (notice or warning or self._everything):
            return
        try:
            text = " ".join(record.getMessage().split())
            if warning:
                text = f"{record.levelname.lower()}: {text}"
            elif notice:
                text += "…"  # the wait starts now
            self._show(text)
        except OSError:  # stderr is gone; a notice is not worth failing the command for
            pass
        except Exception:
            self.handleError(record)


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return False


@contextlib.contextmanager
def notices(verbosity: Verbosity, show: Callable[[str], None] = print_notice) -> Iterator[None]:
    """Show sigla's notices through ``show`` while the block runs, then remove the handler.

    ``auto`` shows them when stderr is a terminal; ``verbose`` always, with every INFO
    record of the "sigla" logger; ``quiet`` never.
    """
    if verbosity == "quiet" or (verbosity == "auto" and not stderr_is_terminal()):
        yield
        return
    logger = logging.getLogger("sigla")
    handler = _NoticeHandler(show, everything=verbosity == "verbose")
    level = logger.level
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
