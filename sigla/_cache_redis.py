"""The response cache in a Redis database, shared by every process and machine that reaches it.

The only importer of ``redis`` (redis-py, the ``redis`` extra), and only when a
``redis://`` or ``rediss://`` (TLS) cache is opened. One hash per answer under
:data:`PREFIX` + :func:`~sigla._cache.cache_key`: field ``v`` holds the base class's JSON
of a :class:`~sigla._core.Completion`, field ``c`` when it was stored (Unix time). A hash,
not a string plus a sorted-set index of times: one ``HSET`` writes both fields at once, so
there is nothing to keep in step, and an entry that the operator's eviction policy (or a
``DEL``) removes goes whole. The price is :meth:`RedisCache.info`, which walks the prefix
with ``SCAN``: O(entries), fine for a command run by hand.

Every redis-py failure becomes a :class:`~sigla.errors.ConfigurationError` in one place
(:meth:`RedisCache._translated`), naming the URL with its password masked and saying what
to do. Not an ``APIConnectionError``: that one is about the model service and is retried;
a cache that cannot serve is a setting to fix (start the store, fix the URL, or turn the
cache off), and a batch stops on it at once instead of failing every item one timeout at
a time.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

from . import _constants as C
from ._cache import SCHEMA_VERSION, CacheInfo, ResponseCache
from ._stores import connect_redis, import_redis, masked_url, redis_problem
from .errors import ConfigurationError

__all__ = ["PREFIX", "RedisCache"]

logger = logging.getLogger("sigla")

PREFIX = f"sigla:cache:v{SCHEMA_VERSION}:"  # a later format gets a prefix of its own
_BATCH = 500  # keys per SCAN page, pipeline and UNLINK in info() and clear()


def _utc(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, tz=timezone.utc)


class RedisCache(ResponseCache):
    """The cache in one Redis database, shared by threads, processes and machines.

    ``url`` is ``redis://[[user]:password@]host:port/db`` (``rediss://`` for TLS; redis-py's
    query options such as ``?ssl_cert_reqs=none`` apply). Opening checks that the store
    answers (PING) with the credentials given; each command then waits at most ``timeout``
    seconds. The password is needed to reconnect, so a pickled cache carries the URL, as a
    pickled client carries a ``token=``; ``repr`` and every message mask it.

    >>> cache = RedisCache("redis://:s3cret@cache.internal:6379/1")  # doctest: +SKIP
    >>> cache
    RedisCache('redis://:***@cache.internal:6379/1')
    """

    def __init__(
        self,
        url: str,
        timeout: float = C.CACHE_REDIS_TIMEOUT,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.location = masked_url(url)
        self._timeout = timeout
        self._clock = clock
        password = urlsplit(url).password
        self._secrets = [password, unquote(password)] if password else []
        self._redis = import_redis("cache")
        self._client: Any = self._connect()

    def __repr__(self) -> str:
        return f"RedisCache({self.location!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its URL: the copy opens its own connections (spawned processes)."""
        return (RedisCache, (self.url, self._timeout))

    def _now(self) -> float:
        return self._clock()

    # -- errors: the one place where redis-py's exceptions are translated

    def _error(self, exc: BaseException) -> ConfigurationError:
        what = redis_problem(self._redis, exc, self._timeout, self._secrets)
        off = "or turn the cache off (cache=False, or unset SIGLA_CACHE_URL)"
        return ConfigurationError(f"The Redis cache at {self.location} {what}, {off}.")

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (self._redis.RedisError, ValueError, OSError) as exc:
            raise self._error(exc) from None

    # -- opening

    def _connect(self) -> Any:
        with self._translated():
            return connect_redis(self._redis, self.url, self._timeout)

    def _live(self) -> Any:
        client = self._client
        if client is None:
            raise ConfigurationError(f"{self!r} is closed: open the cache again to use it.")
        return client

    # -- use

    def _load(self, key: str) -> str | None:
        client = self._live()
        with self._translated():
            raw = client.hget(PREFIX + key, "v")
        if raw is None:
            return None
        try:
            return bytes(raw).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            logger.warning("sigla: ignored a damaged cache entry in %r (%s)", self, exc)
            return None

    def _store(self, key: str, value: str, created: float) -> None:
        client = self._live()
        fields = {"v": value.encode("utf-8", "surrogatepass"), "c": repr(created)}
        with self._translated():
            client.hset(PREFIX + key, mapping=fields)

    def _keys(self) -> Iterator[list[bytes]]:
        """The prefix's keys, a page at a time, each key once (SCAN may repeat one)."""
        client, seen, page = self._live(), set(), []
        with self._translated():
            for name in client.scan_iter(match=PREFIX + "*", count=_BATCH):
                if name not in seen:
                    seen.add(name)
                    page.append(name)
                    if len(page) == _BATCH:
                        yield page
                        page = []
        if page:
            yield page

    def _sizes(self, names: list[bytes]) -> list[Any]:
        """Each entry's stored time and bytes: MEMORY USAGE, else (not allowed) the value's."""
        client = self._live()
        with self._translated():
            try:
                pipe = client.pipeline(transaction=False)
                for name in names:
                    pipe.hget(name, "c")
                    pipe.memory_usage(name)
                return list(pipe.execute())
            except self._redis.ResponseError:  # a managed Redis may forbid MEMORY
                pipe = client.pipeline(transaction=False)
                for name in names:
                    pipe.hget(name, "c")
                    pipe.hstrlen(name, "v")
                return list(pipe.execute())

    def info(self) -> CacheInfo:
        """The URL (password masked), how many answers, their approximate size in memory,
        and their ages; one SCAN over the prefix."""
        entries, size = 0, 0
        oldest: float | None = None
        newest: float | None = None
        for names in self._keys():
            replies = self._sizes(names)
            for created, used in zip(replies[::2], replies[1::2], strict=True):
                if created is None:  # removed meanwhile, or not one of ours
                    continue
                try:
                    stamp = float(created)
                except ValueError:
                    continue
                entries += 1
                size += int(used or 0)
                oldest = stamp if oldest is None else min(oldest, stamp)
                newest = stamp if newest is None else max(newest, stamp)
        return CacheInfo(self.location, entries, size, _utc(oldest), _utc(newest))

    def clear(self) -> int:
        """Remove every answer under the prefix, a batch at a time; returns how many.

        Other keys of the database are left alone.
        """
        client, removed = self._live(), 0
        for names in self._keys():
            with self._translated():
                removed += int(client.unlink(*names))
        return removed

    def close(self) -> None:
        """Close the connections; closing twice is fine."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # a store already gone has nothing to close
                client.close()
