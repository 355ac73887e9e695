"""A shared limiter's budgets in one SQLite file: the processes of one machine.

Each operation is one ``BEGIN IMMEDIATE`` transaction (one writer at a time, the others
wait up to ``busy_timeout``), and reads the time from SQLite inside it
(``julianday('now')``, millisecond resolution), so the windows run on one clock for every
process. WAL journal and ``synchronous=NORMAL``, as for the cache: a write costs no fsync
and survives a killed process. Needs a local file system.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ._limit_store import Booked, Learned, LimitStore
from ._slots import learned_after
from ._stores import connect_sqlite
from .errors import StoreUnavailableError

__all__ = ["SQLiteLimitStore"]

SCHEMA_VERSION = 1
BUSY_TIMEOUT = 30.0
NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_TABLES = {"bookings", "leases", "budgets"}
_SCHEMA = (
    "CREATE TABLE bookings (ticket TEXT PRIMARY KEY, budget TEXT NOT NULL, "
    "at REAL NOT NULL, tokens INTEGER NOT NULL)",
    "CREATE INDEX bookings_at ON bookings (budget, at)",
    "CREATE TABLE leases (lease TEXT PRIMARY KEY, budget TEXT NOT NULL, kind TEXT NOT NULL, "
    "expires REAL NOT NULL)",
    "CREATE INDEX leases_expires ON leases (budget, kind, expires)",
    "CREATE TABLE budgets (budget TEXT PRIMARY KEY, paused_until REAL, pause_type TEXT, "
    "learned REAL, round INTEGER NOT NULL DEFAULT 0)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_INHERITED: list[Any] = []  # a forked child's copies of the parent's connection: unused
T = TypeVar("T")


class SQLiteLimitStore(LimitStore):
    """Budgets in one SQLite file (see the module's docstring)."""

    def __init__(
        self, path: str, *, source: str = "limiter=", busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        self.path = self.location = os.path.abspath(path)
        self._source = source
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._db: sqlite3.Connection | None = self._connect()

    def __repr__(self) -> str:
        return f"SQLiteLimitStore({self.path!r})"

    # -- opening and failing

    def _error(self, exc: BaseException) -> StoreUnavailableError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            what = (
                f"stayed locked by another process for over {self._busy_timeout:g} s "
                "(a process stopped in the middle of a write?)"
            )
        elif "readonly" in text or "unable to open" in text or "disk I/O" in text:
            what = "cannot be written here: choose a file in a writable place"
        elif isinstance(exc, OSError):
            what = f"cannot be created ({exc.strerror or text}): choose a writable place"
        else:
            what = "is not a sigla limiter file, or is damaged: choose another file"
        return StoreUnavailableError(
            f"The shared limiter's file {self.path} (from {self._source}) {what} (SQLite: "
            f"{text}). sigla sends nothing without the shared budget it was told to use."
        )

    def _connect(self) -> sqlite3.Connection:
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        except OSError as exc:
            raise self._error(exc) from None
        db: sqlite3.Connection = connect_sqlite(
            self.path, self._busy_timeout, self._prepare, self._error, caught=(OSError,)
        )
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use the write-ahead log (mode {mode!r})")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"written by a newer sigla (schema {version})")
            if version == 0:
                if tables:
                    raise sqlite3.DatabaseError(f"it holds {', '.join(sorted(tables)[:5])}")
                for statement in _SCHEMA:
                    db.execute(statement)
            elif not tables >= _TABLES:
                raise sqlite3.DatabaseError(f"it holds {', '.join(sorted(tables)[:5])}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _transaction(self, work: Callable[[sqlite3.Connection, float], T]) -> T:
        """``work(db, now)`` in one IMMEDIATE transaction; ``now`` is SQLite's clock."""
        if self._pid != os.getpid():
            with self._lock:
                if self._db is not None:
                    _INHERITED.append(self._db)
                self._lock, self._pid = threading.Lock(), os.getpid()
                self._db = self._connect()
        with self._lock:
            db = self._db
            if db is None:
                raise StoreUnavailableError(f"{self!r} is closed.")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    now = float(db.execute(f"SELECT {NOW}").fetchone()[0])
                    result = work(db, now)
                    db.execute("COMMIT")
                    return result
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    # -- windows

    def book(
        self,
        budget: str,
        ticket: str,
        windows: Sequence[tuple[float, int, str]],
        keep: float,
        tokens: int,
        tokens_per_minute: int,
        token_span: float,
        allow: Mapping[str, float],
    ) -> Booked:
        def work(db: sqlite3.Connection, now: float) -> Booked:
            db.execute("DELETE FROM bookings WHERE budget = ? AND at < ?", (budget, now - keep))
            slot, which = now, "minute"
            for span, size, name in windows:
                row = db.execute(
                    "SELECT at FROM bookings WHERE budget = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
                    (budget, size - 1),
                ).fetchone()
                if row is not None and row[0] + span > slot:
                    slot, which = row[0] + span, name
            if tokens and tokens_per_minute:
                rows = db.execute(
                    "SELECT at, tokens FROM bookings WHERE budget = ? AND at >= ? AND tokens > 0 "
                    "ORDER BY at",
                    (budget, now - token_span),
                ).fetchall()
                used, at = sum(cost for _, cost in rows), now
                for when, cost in rows:
                    if used + tokens <= tokens_per_minute:
                        break
                    used -= cost
                    at = max(at, when + token_span)
                if at > slot:
                    slot, which = at, "minute (tokens)"
            wait = slot - now
            if wait > allow[which]:
                return Booked(False, wait, which)
            db.execute(
                "INSERT INTO bookings (ticket, budget, at, tokens) VALUES (?, ?, ?, ?)",
                (ticket, budget, slot, tokens),
            )
            return Booked(True, wait, which)

        return self._transaction(work)

    def cancel(self, budget: str, ticket: str) -> None:
        self._transaction(
            lambda db, now: db.execute(
                "DELETE FROM bookings WHERE budget = ? AND ticket = ?", (budget, ticket)
            )
        )

    def sent(self, budget: str, ticket: str) -> None:
        self._transaction(
            lambda db, now: db.execute(
                "UPDATE bookings SET at = ? WHERE budget = ? AND ticket = ? AND at < ?",
                (now, budget, ticket, now),
            )
        )

    def settle(self, budget: str, ticket: str, tokens: int) -> None:
        self._transaction(
            lambda db, now: db.execute(
                "UPDATE bookings SET tokens = ? WHERE budget = ? AND ticket = ?",
                (tokens, budget, ticket),
            )
        )

    # -- the pause, the learned concurrency

    def _budget_row(self, db: sqlite3.Connection, budget: str) -> tuple[Any, ...]:
        db.execute("INSERT OR IGNORE INTO budgets (budget) VALUES (?)", (budget,))
        row = db.execute(
            "SELECT paused_until, pause_type, learned, round FROM budgets WHERE budget = ?",
            (budget,),
        ).fetchone()
        return tuple(row)

    def pause(self, budget: str, seconds: float, limit_type: str | None) -> None:
        def work(db: sqlite3.Connection, now: float) -> None:
            until, _, _, _ = self._budget_row(db, budget)
            if until is None or now + seconds > until:
                db.execute(
                    "UPDATE budgets SET paused_until = ?, pause_type = ? WHERE budget = ?",
                    (now + seconds, limit_type, budget),
                )

        self._transaction(work)

    def paused(self, budget: str) -> tuple[float, str | None, float]:
        def work(db: sqlite3.Connection, now: float) -> tuple[float, str | None, float]:
            row = db.execute(
                "SELECT paused_until, pause_type FROM budgets WHERE budget = ?", (budget,)
            ).fetchone()
            if row is None or row[0] is None:
                return 0.0, None, float("-inf")
            return float(row[0]) - now, row[1], float(row[0])

        return self._transaction(work)

    def learn(
        self,
        budget: str,
        start: float,
        ceiling: int,
        *,
        succeeded: bool = False,
        sent_in_round: int | None = None,
        stated: int | None = None,
    ) -> Learned:
        def work(db: sqlite3.Connection, now: float) -> Learned:
            _, _, value, round_ = self._budget_row(db, budget)
            value = start if value is None else float(value)
            new, new_round = learned_after(value, round_, ceiling, succeeded, sent_in_round, stated)
            if (new, new_round) != (value, round_):
                db.execute(
                    "UPDATE budgets SET learned = ?, round = ? WHERE budget = ?",
                    (new, new_round, budget),
                )
            return Learned(new, new_round)

        return self._transaction(work)

    # -- leases

    def lease(
        self, budget: str, kind: str, lease: str, cap: int | None, ttl: float, start: float
    ) -> bool:
        def work(db: sqlite3.Connection, now: float) -> bool:
            db.execute(
                "DELETE FROM leases WHERE budget = ? AND kind = ? AND expires <= ?",
                (budget, kind, now),
            )
            limit = cap
            if limit is None:
                _, _, value, _ = self._budget_row(db, budget)
                limit = int(start if value is None else value)
            (held,) = db.execute(
                "SELECT COUNT(*) FROM leases WHERE budget = ? AND kind = ?", (budget, kind)
            ).fetchone()
            if held >= limit:
                return False
            db.execute(
                "INSERT INTO leases (lease, budget, kind, expires) VALUES (?, ?, ?, ?)",
                (lease, budget, kind, now + ttl),
            )
            return True

        return self._transaction(work)

    def release(self, budget: str, kind: str, lease: str) -> None:
        self._transaction(
            lambda db, now: db.execute(
                "DELETE FROM leases WHERE budget = ? AND kind = ? AND lease = ?",
                (budget, kind, lease),
            )
        )

    def renew(self, budget: str, kind: str, leases: Sequence[str], ttl: float) -> None:
        def work(db: sqlite3.Connection, now: float) -> None:
            db.executemany(
                "UPDATE leases SET expires = ? WHERE budget = ? AND kind = ? AND lease = ? "
                "AND expires > ?",
                [(now + ttl, budget, kind, lease, now) for lease in leases],
            )

        self._transaction(work)

    # -- looking

    def snapshot(self, budget: str) -> dict[str, Any]:
        def work(db: sqlite3.Connection, now: float) -> dict[str, Any]:
            (booked,) = db.execute(
                "SELECT COUNT(*) FROM bookings WHERE budget = ?", (budget,)
            ).fetchone()
            leases = dict(
                db.execute(
                    "SELECT kind, COUNT(*) FROM leases WHERE budget = ? AND expires > ? "
                    "GROUP BY kind",
                    (budget, now),
                ).fetchall()
            )
            row = db.execute(
                "SELECT paused_until, learned, round FROM budgets WHERE budget = ?", (budget,)
            ).fetchone()
            paused = max(0.0, float(row[0]) - now) if row and row[0] is not None else 0.0
            learned = row[1] if row else None
            return {"bookings": booked, "leases": leases, "paused_for": paused, "learned": learned}

        return self._transaction(work)

    def dump(self) -> list[tuple[Any, ...]]:
        """Every row of every table (tests look for credentials in them)."""

        def work(db: sqlite3.Connection, now: float) -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = []
            for table in sorted(_TABLES):
                rows += db.execute(f"SELECT * FROM {table}").fetchall()
            return rows

        return self._transaction(work)

    def ping(self) -> None:
        self._transaction(lambda db, now: None)

    def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None
            if db is not None and self._pid == os.getpid():
                db.close()
            elif db is not None:
                _INHERITED.append(db)

