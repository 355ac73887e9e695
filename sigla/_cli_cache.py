"""``sigla cache info`` and ``sigla cache clear``: the response cache from the command line.

``cli.py`` wires them with ``add_cache_commands(main, _command)``, so these commands end
every failure as its other commands do (one ``sigla: error:`` line, exit 2 for a bad
setting). The cache module is imported only when one of them runs.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from datetime import datetime

    from ._cache import CacheTarget

__all__ = ["add_cache_commands", "cache_clear", "cache_info", "doctor_rows"]

Command = Callable[..., Any]

_CACHE_HELP = (
    "The cache: a file path, sqlite:///PATH (sqlite:////ABSOLUTE/PATH) or "
    "redis://[:PASSWORD@]HOST:PORT/DB (default: SIGLA_CACHE_URL)."
)


def _ways_to_configure(default: str) -> list[str]:
    return [
        "No response cache is configured. Name one with:",
        "  --cache PATH|URL        for this command (sqlite:///PATH, redis://HOST:PORT/DB)",
        "  SIGLA_CACHE_URL=PATH    for every sigla program run with it",
        "  GitHubLLM(cache=True)   in code: the default file below",
        f"default file  {default}",
    ]


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    power = min(int(math.log(count, 1024)), 3)
    return f"{count / 1024**power:.1f} {('KiB', 'MiB', 'GiB')[power - 1]} ({count} bytes)"


def _stamp(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _report(target: CacheTarget) -> list[str]:
    """What a cache holds, one row each; a file that does not exist is not created."""
    from ._cache import open_target

    rows = [f"cache         {target.shown}   (from {target.source})"]
    if target.scheme == "sqlite" and not os.path.exists(target.location):
        return [*rows, "entries       0 (no file there yet)"]
    with open_target(target) as cache:
        info = cache.info()
    return [
        *rows,
        f"entries       {info.entries}",
        f"size          {_size(info.size_bytes)}",
        f"oldest        {_stamp(info.oldest)}",
        f"newest        {_stamp(info.newest)}",
    ]


def cache_info(setting: str | None) -> None:
    """Print where the cache is, how many answers it holds, its size and their ages."""
    from ._cache import CacheTarget, default_cache_path, resolve_cache

    target = resolve_cache(setting, argument="--cache")
    if target is not None:
        click.echo("\n".join(_report(target)))
        return
    default = default_cache_path()
    lines = _ways_to_configure(default)
    if os.path.exists(default):
        lines.extend(_report(CacheTarget("sqlite", default, "cache=True"))[1:])
    click.echo("\n".join(lines))


def doctor_rows(setting: str | None) -> tuple[list[str], bool]:
    """``sigla doctor``'s cache lines (the setting, where it came from, whether the store
    opens and answers a lookup) and whether they found it working. Off is fine."""
    from ._cache import open_target, resolve_cache
    from .errors import ConfigurationError

    try:
        target = resolve_cache(setting, argument="--cache")
    except ConfigurationError as error:
        return [f"cache         FAILED: {error}"], False
    if target is None:
        return ["cache         none (set SIGLA_CACHE_URL, or pass --cache, to keep answers)"], True
    rows = [f"cache         {target.shown}   (from {target.source})"]
    if target.scheme == "sqlite" and not os.path.exists(target.location):
        return [*rows, "cache check   OK: no file there yet (the first answer creates it)"], True
    try:
        with open_target(target) as cache:
            cache.get("0" * 64)  # a lookup proves the credentials may read, not only connect
    except ConfigurationError as error:
        return [*rows, f"cache check   FAILED: {error}"], False
    return [*rows, "cache check   OK: it opens and answers a lookup"], True


def limiter_doctor_rows(
    setting: str | None, endpoint: str, model: str, who: str | None
) -> tuple[list[str], bool]:
    """``sigla doctor``'s limiter lines: the shared store (or none), where the setting came
    from, and whether the store answers, with what it holds for the budget of ``endpoint``,
    ``model`` and the credential's digest ``who``. Opening an SQLite file creates it:
    harmless, it is where the first request would put it."""
    from ._shared_limits import budget_name, open_store, resolve_limiter
    from .errors import ConfigurationError

    try:
        target = resolve_limiter(setting, argument="--limiter")
    except ConfigurationError as error:
        return [f"limiter       FAILED: {error}"], False
    if target is None:
        return [
            "limiter       this process only (set SIGLA_LIMITER_URL, or pass --limiter, to "
            "share the budget with other processes)"
        ], True
    rows = [f"limiter       {target.shown}   (from {target.source})"]
    try:
        state = open_store(target).snapshot(budget_name(endpoint, model, who))
    except ConfigurationError as error:
        return [*rows, f"limiter check FAILED: {error}"], False
    leases = sum(state["leases"].values())
    paused = f"paused for {state['paused_for']:.0f} s" if state["paused_for"] > 0 else "not paused"
    return [
        *rows,
        f"limiter check OK: it answers; this budget holds {state['bookings']} recent "
        f"bookings and {leases} requests in flight, {paused}",
    ], True


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def cache_clear(setting: str | None, yes: bool) -> None:
    """Remove every answer from the cache, after asking (unless ``yes``)."""
    from ._cache import default_cache_path, open_target, resolve_cache

    target = resolve_cache(setting, argument="--cache")
    if target is None:
        raise click.UsageError(
            "No response cache is configured: name it with --cache PATH or SIGLA_CACHE_URL "
            f"(cache=True's file is {default_cache_path()})."
        )
    if target.scheme == "sqlite" and not os.path.exists(target.location):
        click.echo(f"No cache file at {target.location}: nothing to clear.")
        return
    with open_target(target) as cache:
        entries = cache.info().entries
        if not yes:
            if not _stdin_is_terminal():
                raise click.UsageError(
                    f"Clearing removes {entries} entries from {target.shown}: pass --yes "
                    "to clear without being asked (stdin is not a terminal)."
                )
            question = f"Remove all {entries} entries from {target.shown}?"
            if not click.confirm(question, default=False):
                click.echo("Nothing removed.")
                return
        removed = cache.clear()
    click.echo(f"Removed {removed} entries from {target.shown}.")


def add_cache_commands(group: click.Group, command: Callable[[Command], Command]) -> None:
    """Add ``cache info`` and ``cache clear`` to ``group``, each wrapped by ``command``
    (the CLI's decorator that gives -v/-q and turns errors into one line)."""

    @group.group(name="cache")
    def cache() -> None:
        """Inspect or empty the response cache (answers stored with cache=)."""

    @cache.command(name="info")
    @click.option("--cache", "setting", metavar="URL", help=_CACHE_HELP)
    @command
    def info(setting: str | None) -> None:
        """Show where the cache is, how many answers it holds, its size and their ages."""
        cache_info(setting)

    @cache.command(name="clear")
    @click.option("--cache", "setting", metavar="URL", help=_CACHE_HELP)
    @click.option("-y", "--yes", is_flag=True, help="Clear without asking.")
    @command
    def clear(setting: str | None, yes: bool) -> None:
        """Remove every answer from the cache and print how many there were."""
        cache_clear(setting, yes)
