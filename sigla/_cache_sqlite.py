"""The response cache in one SQLite file, shared by threads and by processes.

The only importer of ``sqlite3``. The format is one table, ``responses (key, value,
created)``, whose values are the JSON of a :class:`~sigla._core.Completion`; ``PRAGMA
user_version`` holds :data:`~sigla._cache.SCHEMA_VERSION`, so that a later sigla can
migrate an older file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from . import _constants as C
from ._cache import SCHEMA_VERSION, CacheInfo, ResponseCache
from ._stores import connect_sqlite
from .errors import ConfigurationError

__all__ = ["SQLiteCache"]

logger = logging.getLogger("sigla")

# A rowid table, not WITHOUT ROWID: SQLite advises the latter only for rows under ~200
# bytes, and answers are often kilobytes.
_SCHEMA = (
    "CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE INDEX responses_created ON responses (created)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_SELECT = "SELECT value FROM responses WHERE key = ?"
_UPSERT = "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)"
_INFO = "SELECT COUNT(*), MIN(created), MAX(created) FROM responses"
_DELETE = "DELETE FROM responses"

# Connections a forked child inherited: SQLite forbids using them there, and closing them
# could touch the parent's locks, so the child keeps them unused until it exits.
_INHERITED: list[Any] = []


def _utc(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, tz=timezone.utc)


class SQLiteCache(ResponseCache):
    """The cache in one SQLite file, safe for threads and for several processes at once.

    WAL journal (readers never wait, one writer at a time), each write one short
    transaction, ``busy_timeout`` so a writer waits its turn rather than failing,
    ``synchronous=NORMAL`` so a write costs no fsync yet survives a killed process (not
    a power cut). One connection per process behind a lock: a hit takes microseconds, so
    threads hardly queue. Needs a local file system (WAL uses shared memory).

    >>> cache = SQLiteCache("/tmp/answers.sqlite")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        busy_timeout: float = C.CACHE_BUSY_TIMEOUT,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._db: sqlite3.Connection | None = self._connect()

    def __repr__(self) -> str:
        return f"SQLiteCache({self.path!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its path: the copy opens its own connection (spawned processes)."""
        return (SQLiteCache, (self.path, self._busy_timeout))

    def _now(self) -> float:
        return self._clock()

    # -- opening

    def _connect(self) -> sqlite3.Connection:
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot create the cache's folder {folder} ({exc.strerror}): "
                "choose a cache file in a writable place."
            ) from None
        if os.path.isdir(self.path):
            raise ConfigurationError(
                f"The cache {self.path} is a directory: name a file, e.g. "
                f"{os.path.join(self.path, C.CACHE_FILE_NAME)}."
            )
        db: sqlite3.Connection = connect_sqlite(
            self.path, self._busy_timeout, self._prepare, self._error
        )
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Check (and on a new file create) the schema; switch to WAL."""
        version = db.execute("PRAGMA user_version").fetchone()[0]  # fails on a non-database
        self._check_version(version)
        if version == 0:
            db.execute("PRAGMA auto_vacuum = FULL")  # clear() gives the space back (new files)
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigurationError(
                f"The cache file {self.path} cannot use SQLite's write-ahead log (journal "
                f"mode {mode!r}), which several processes need: put it on a local disk."
            )
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN IMMEDIATE")  # also proves, at once, that the file is writable
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            if version == 0:
                tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
                if tables:
                    raise ConfigurationError(
                        f"{self.path} is an SQLite database of something else (it holds "
                        f"{', '.join(sorted(tables)[:5])}), not a sigla cache: choose "
                        "another file."
                    )
                for statement in _SCHEMA:
                    db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"The cache file {self.path} was written by a newer sigla (schema {version}, "
                f"this one reads {SCHEMA_VERSION}): upgrade sigla or choose another file."
            )

    def _error(self, exc: Exception) -> ConfigurationError:
        """An SQLite failure as the error the caller can act on, naming the file."""
        text = str(exc)
        if "locked" in text or "busy" in text:
            what = (
                f"stayed locked by another process for over {self._busy_timeout:g} s "
                "(a process stopped in the middle of a write?)"
            )
        elif "readonly" in text or "unable to open" in text or "disk I/O" in text:
            what = "cannot be written here: choose a cache file in a writable place"
        elif "full" in text:
            what = "cannot grow: the disk is full"
        else:
            what = (
                "is not a sigla cache, or is damaged: delete it (with its -wal and -shm "
                "files) or choose another file"
            )
        return ConfigurationError(f"The cache file {self.path} {what} (SQLite: {text}).")

    # -- use

    def _connection(self) -> sqlite3.Connection:
        """The open connection (the caller holds the lock)."""
        db = self._db
        if db is None:
            raise ConfigurationError(f"{self!r} is closed: open the cache again to use it.")
        return db

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """One statement, a transaction of its own; its rows, or ``[rowcount]`` for a change."""
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            db = self._connection()
            try:
                cursor = db.execute(sql, params)
                rows = cursor.fetchall()
                return rows if cursor.description is not None else [cursor.rowcount]
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def _after_fork(self) -> None:
        """A forked child's own connection and lock (the parent's lock may be copied held)."""
        self._lock = threading.Lock()
        if self._db is not None:
            _INHERITED.append(self._db)
            self._db = self._connect()
        self._pid = os.getpid()

    def _load(self, key: str) -> str | None:
        rows = self._run(_SELECT, (key,))
        return rows[0][0] if rows else None

    def _store(self, key: str, value: str, created: float) -> None:
        self._run(_UPSERT, (key, value, created))

    def info(self) -> CacheInfo:
        """Where the file is, how many answers it holds, its size on disk, their ages."""
        ((entries, oldest, newest),) = self._run(_INFO)
        size = 0
        for name in (self.path, self.path + "-wal"):
            with contextlib.suppress(OSError):  # no log yet, or deleted meanwhile
                size += os.path.getsize(name)
        return CacheInfo(self.path, entries, size, _utc(oldest), _utc(newest))

    def clear(self) -> int:
        """Remove every answer (other processes see an empty cache); returns how many."""
        (removed,) = self._run(_DELETE)
        try:  # hand the freed pages back to the disk now; readers may delay it, harmlessly
            self._run("PRAGMA wal_checkpoint(TRUNCATE)")
        except ConfigurationError as exc:
            logger.info("sigla: the cache file keeps its size until later: %s", exc)
        return int(removed)

    def close(self) -> None:
        """Close the connection; closing twice is fine."""
        with self._lock:
            db, self._db = self._db, None
            if db is not None and self._pid == os.getpid():
                db.close()
            elif db is not None:
                _INHERITED.append(db)
