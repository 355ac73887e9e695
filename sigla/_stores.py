"""What the shared stores (the response cache, the shared limiter) have in common: their
URLs, and Redis's errors as something to act on.

Both ``cache=`` and ``limiter=`` name a store by URL (``sqlite:///path``, ``redis://host``)
and both must say, when it cannot serve, which store (its password masked) and what to
do. ``what`` in each function is the word for the store in messages (``cache``,
``limiter``). No client library is imported here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from ._text import shown
from .errors import ConfigurationError, MissingDependencyError

__all__ = [
    "masked_url",
    "store_file",
    "sqlite_location",
    "redis_location",
    "import_redis",
    "redis_problem",
    "connect_redis",
    "connect_sqlite",
]

_USERINFO = re.compile(r"(?P<scheme>://)(?P<user>[^/@:?#]*)(?P<password>:[^/@]*)?@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|pass|pwd|token)=)[^&#]*")


def masked_url(url: str) -> str:
    """A URL as it may be shown: its password (and a ``?password=``) as ``***``.

    ``redis://:s3cret@h:6379/1`` → ``redis://:***@h:6379/1``; ``redis://u:s3cret@h`` →
    ``redis://u:***@h``; a lone ``redis://s3cret@h`` (a user, or a password written
    without its colon) → ``redis://***@h``. A path without ``://`` comes back as is.
    """

    def userinfo(match: re.Match[str]) -> str:
        if match.group("password") is None:
            return f"{match.group('scheme')}***@" if match.group("user") else match.group(0)
        return f"{match.group('scheme')}{match.group('user')}:***@"

    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(userinfo, url, count=1))


def store_file(text: str, source: str, what: str, file_name: str) -> str:
    """A store's file path: ``~`` expanded, made absolute (processes may differ in cwd)."""
    path = os.path.abspath(os.path.expanduser(text))
    if os.path.isdir(path):
        raise ConfigurationError(
            f"The {what} {shown(text)} (from {source}) is a directory: name a file, e.g. "
            f"{os.path.join(path, file_name)}."
        )
    return path


def sqlite_location(url: str, source: str, what: str, file_name: str) -> str:
    """``sqlite:///rel.db`` → ``rel.db``; ``sqlite:////abs.db`` → ``/abs.db``.

    SQLAlchemy's convention: what follows ``sqlite:///`` is the path, so a fourth slash
    makes it absolute (and ``sqlite:///C:/x.db`` works on Windows).
    """
    rest = url[len("sqlite://") :]
    example = f"e.g. sqlite:///{file_name}, or sqlite:////tmp/{file_name} for /tmp"
    if not rest.startswith("/"):
        raise ConfigurationError(
            f"The {what} URL {shown(url)} (from {source}) has a host; an SQLite URL has "
            f"three slashes before its path ({example})."
        )
    path = rest[1:]
    if not path or "?" in path or path == ":memory:":
        raise ConfigurationError(
            f"The {what} URL {shown(url)} (from {source}) names no file (a query or "
            f":memory: is not a store that outlives the process; {example})."
        )
    return store_file(path, source, what, file_name)


def redis_location(url: str, source: str, what: str) -> str:
    """``redis://[[user]:password@]host[:port][/db]`` as given, once checked (rediss: TLS)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (ValueError when not a number from 0 to 65535)
        db = parts.path[1:]
        good = bool(parts.hostname) and (db == "" or (db.isascii() and db.isdigit()))
    except ValueError:
        good = False
    if not good:
        raise ConfigurationError(
            f"The {what} URL {shown(masked_url(url))} (from {source}) is not a Redis URL with "
            "a host, a port and a database number (e.g. redis://localhost:6379/0, "
            "or redis://:PASSWORD@redis.internal:6379/1)."
        )
    return url


def import_redis(what: str) -> Any:
    """redis-py, or the error that says how to install it."""
    try:
        import redis
    except ImportError:
        raise MissingDependencyError(
            f'A redis:// {what} needs the redis package (redis>=5): `pip install "redis>=5"`, '
            'or, from sigla\'s source tree, `pip install -e ".[redis]"`.'
        ) from None
    return redis


def redis_problem(redis: Any, exc: BaseException, timeout: float, secrets: list[str]) -> str:
    """What went wrong with a Redis store, in words to act on (its password masked)."""
    errors = redis.exceptions
    said = " ".join(str(exc).split()) or type(exc).__name__
    for secret in secrets:  # redis-py's messages hold none; this keeps it so
        said = said.replace(secret, "***")
    text = said.upper()
    if isinstance(exc, (errors.AuthenticationError, errors.NoPermissionError)) or any(
        word in text for word in ("NOAUTH", "WRONGPASS", "INVALID PASSWORD", "NOPERM")
    ):
        return f"refused sigla's credentials ({said}): check the user and password in the URL"
    if isinstance(exc, errors.TimeoutError):
        return (
            f"did not answer within {timeout:g} s ({said}): check that it runs and "
            "that this machine reaches it"
        )
    if isinstance(exc, errors.ConnectionError):
        return f"cannot be reached ({said}): start it, or fix the host and port in the URL"
    if isinstance(exc, ValueError):
        return f"cannot be opened: {said}. Fix the URL"
    return f"cannot serve ({said}): fix the store"


def connect_redis(redis: Any, url: str, timeout: float) -> Any:
    """A redis-py client that has answered PING; each command waits at most ``timeout``."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        # One immediate reconnect covers a pooled connection the server closed while
        # idle; redis-py's default backoff would hide a down store for seconds.
        retry=Retry(NoBackoff(), 1),
    )
    try:
        client.ping()
    except BaseException:
        client.close()
        raise
    return client


def connect_sqlite(
    path: str,
    busy_timeout: float,
    prepare: Callable[[Any], None],
    failed: Callable[[Exception], Exception],
    caught: tuple[type[Exception], ...] = (),
) -> Any:
    """An SQLite connection for several threads (autocommit: each store takes its own
    transactions) that ``prepare`` has checked; closed again if anything fails, and a
    failure of SQLite or of ``caught`` becomes ``failed(exc)``, naming the store."""
    import sqlite3  # only when a store is opened: `import sigla.llm` stays cheap

    catch: tuple[type[Exception], ...] = (sqlite3.Error, *caught)
    db = None
    try:
        db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        prepare(db)
    except catch as exc:
        if db is not None:
            db.close()
        raise failed(exc) from None
    except BaseException:
        if db is not None:
            db.close()
        raise
    return db
