"""The response cache: finished answers stored under a digest of their request.

A request asked again (a batch run again after a crash, a notebook re-run) is answered
from the cache and sends nothing. Three pieces, each replaceable on its own:

- :func:`cache_key`: sha256 of the canonical JSON of provider, endpoint and the call
  that :func:`sigla._requests.build_call` builds, less the fields that only steer the
  transport (:data:`KEY_EXCLUDED`). Keys are opaque hex: no credential can show in them.
- :func:`open_cache`: the ``cache=`` setting resolved (argument, else ``SIGLA_CACHE_URL``,
  else off) and opened. Text becomes a store in one function, :func:`parse_cache_url`,
  through the table :data:`SCHEMES`; each backend joins that table and implements
  :class:`ResponseCache`.
- :class:`~sigla._cache_sqlite.SQLiteCache`: one SQLite file in WAL mode, shared by
  threads and processes on one machine.
- :class:`~sigla._cache_redis.RedisCache` (``redis://``, ``rediss://``): one Redis
  database shared by machines; needs the ``redis`` package (the ``redis`` extra).

A store that cannot serve, at opening or mid-run, raises
:class:`~sigla.errors.ConfigurationError` naming it (a URL's password masked): the call
never goes to the model without the cache it was told to use.

Only answers that finished (``finish_reason`` ``stop`` or ``length``) are stored, with their
usage; a filtered, refused or interrupted answer is asked again next time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from . import _constants as C
from ._core import Completion, Usage
from ._stores import masked_url, redis_location, sqlite_location, store_file
from ._text import shown
from .errors import ConfigurationError, InvalidRequestError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "CACHE_ENV",
    "KEY_EXCLUDED",
    "SCHEMES",
    "STORED_FINISH_REASONS",
    "CacheInfo",
    "CacheTarget",
    "ResponseCache",
    "cache_key",
    "default_cache_path",
    "masked_url",
    "open_cache",
    "open_target",
    "parse_cache_url",
    "resolve_cache",
]

logger = logging.getLogger("sigla")

CACHE_ENV = "SIGLA_CACHE_URL"
STORED_FINISH_REASONS = frozenset({"stop", "length"})

# Keyword arguments of mistralai's chat.complete/chat.stream that steer the transport, not
# the answer: leaving them out lets stream() and chat() of one request, or two runs with
# different timeouts, share an entry. Every other field is kept, so a field added to the
# call later changes the key (a miss) instead of being served another request's answer.
KEY_EXCLUDED = frozenset(
    {
        "timeout_ms",  # how long to wait (build_call sets it; the attempts cut it)
        "stream",  # how the answer travels; its text is the same
        "retries",  # the SDK's own retry policy (sigla passes none)
        "server_url",  # the endpoint, which is in the key already, without credentials
        "http_headers",  # transport headers, which may carry a credential
        "prompt_cache_key",  # a hint for the provider's prompt cache
    }
)
KEY_VERSION = 1  # in the hashed JSON: a new way of deriving keys never meets an old key
SCHEMA_VERSION = 1  # PRAGMA user_version of a sigla cache file; later versions migrate it

_ALLOWED = (
    "True (responses.sqlite in the user's cache directory), a file path, "
    "sqlite:///relative/path.sqlite, sqlite:////absolute/path.sqlite, "
    "redis://[:password@]host:port/db (rediss:// for TLS), or False/None for no cache"
)


# ---------------------------------------------------------------- the key


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise InvalidRequestError(
        f"A {type(value).__name__} in the request cannot be part of a cache key: "
        "messages and options hold JSON values (str, number, bool, None, list, dict)."
    )


def cache_key(*, provider: str, endpoint: str, call: Mapping[str, Any]) -> str:
    """The cache key of one request: sha256 hex of canonical JSON.

    ``call`` is :func:`~sigla._requests.build_call`'s result (model, messages, temperature,
    max_tokens, top_p, stop, random_seed, and any field added later) less
    :data:`KEY_EXCLUDED`. ``endpoint`` is ``Settings.endpoint``, which holds no credential
    (userinfo and query are kept apart as secrets). Canonical means sorted keys, no
    whitespace, UTF-8 text as is, and ``temperature``/``top_p`` as floats (1 and 1.0 ask
    the same); message order and role matter, dict key order does not.

    >>> cache_key(provider="github", endpoint="https://e", call={"model": "m", "messages": []})[:8]
    '8186e7b7'
    """
    request = {name: value for name, value in call.items() if name not in KEY_EXCLUDED}
    for name in ("temperature", "top_p"):
        value = request.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            request[name] = float(value)
    text = json.dumps(
        {"v": KEY_VERSION, "provider": provider, "endpoint": endpoint, "call": request},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_plain,
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------- stored values


def _encode(completion: Completion) -> str:
    usage = completion.usage
    return json.dumps(
        {
            "text": completion.text,
            "finish_reason": completion.finish_reason,
            "usage": None
            if usage is None
            else {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            "model": completion.model,
            "id": completion.id,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _optional_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"expected a str or null, got {type(value).__name__}")


def _decode(value: str) -> Completion:
    """A stored value as a :class:`Completion`; ``ValueError`` when it is not one."""
    data = json.loads(value)
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise ValueError("not a stored answer")
    raw = data.get("usage")
    usage = None
    if raw is not None:
        numbers = [raw.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")]
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
            raise ValueError("usage holds a value that is not a token count")
        usage = Usage(*numbers)
    return Completion(
        text=data["text"],
        finish_reason=_optional_str(data.get("finish_reason")),
        usage=usage,
        model=_optional_str(data.get("model")),
        id=_optional_str(data.get("id")),
    )


# ---------------------------------------------------------------- the interface

_Cache = TypeVar("_Cache", bound="ResponseCache")


@dataclass(frozen=True)
class CacheInfo:
    """What a cache holds: where, how many answers, how large, stored from when to when."""

    location: str  # the file's absolute path, or the store's URL with its password masked
    entries: int
    size_bytes: int  # on disk, the database and its write-ahead log
    oldest: datetime | None  # UTC; None when empty
    newest: datetime | None


class ResponseCache(ABC):
    """A store of finished answers by :func:`cache_key`, shared by threads and processes.

    ``put`` keeps only finished answers; a backend implements ``_load``/``_store``,
    ``info``, ``clear`` and ``close``.

    >>> with open_cache("answers.sqlite") as cache:  # doctest: +SKIP
    ...     cache.put(key, completion)
    ...     cache.get(key)
    """

    @abstractmethod
    def _load(self, key: str) -> str | None:
        """The stored value of ``key``, or None."""

    @abstractmethod
    def _store(self, key: str, value: str, created: float) -> None:
        """Store (or replace) the value of ``key``, stamped with ``created`` (Unix time)."""

    @abstractmethod
    def info(self) -> CacheInfo:
        """Where the cache is, how many answers it holds, how large it is, and their ages."""

    @abstractmethod
    def clear(self) -> int:
        """Remove every answer; returns how many there were."""

    @abstractmethod
    def close(self) -> None:
        """Release the store; closing twice is fine, using it afterwards is an error."""

    def get(self, key: str) -> Completion | None:
        """The answer stored for ``key``, or None (a value that does not decode is a miss)."""
        value = self._load(key)
        if value is None:
            return None
        try:
            return _decode(value)
        except (ValueError, TypeError, AttributeError) as exc:
            logger.warning("sigla: ignored a damaged cache entry in %r (%s)", self, exc)
            return None

    def put(self, key: str, completion: Completion) -> bool:
        """Store a finished answer (``finish_reason`` stop or length); returns whether stored."""
        if completion.finish_reason not in STORED_FINISH_REASONS:
            return False
        self._store(key, _encode(completion), self._now())
        return True

    def _now(self) -> float:
        return time.time()

    def __enter__(self: _Cache) -> _Cache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---------------------------------------------------------------- where


class CacheTarget(NamedTuple):
    """A resolved cache setting: which backend, where, and which setting said so."""

    scheme: str  # a key of SCHEMES
    location: str  # sqlite: an absolute file path; redis: the URL, password included
    source: str  # "cache=", "SIGLA_CACHE_URL", "--cache"...: for messages

    @property
    def shown(self) -> str:
        """The location as messages and the CLI show it: a URL's password masked."""
        return masked_url(self.location)


class _Scheme(NamedTuple):
    parse: Callable[[str, str], str]  # (URL, source) -> location
    open: Callable[[CacheTarget], ResponseCache]


def _file(text: str, source: str) -> str:
    return store_file(text, source, "cache", C.CACHE_FILE_NAME)


def _sqlite_location(url: str, source: str) -> str:
    return sqlite_location(url, source, "cache", C.CACHE_FILE_NAME)


def _open_sqlite(target: CacheTarget) -> ResponseCache:
    from ._cache_sqlite import SQLiteCache  # imports sqlite3: only when a cache is used

    return SQLiteCache(target.location)


def _redis_location(url: str, source: str) -> str:
    return redis_location(url, source, "cache")


def _open_redis(target: CacheTarget) -> ResponseCache:
    from ._cache_redis import RedisCache  # imports redis: only when such a cache is used

    return RedisCache(target.location)


# Each backend joins here: its scheme, its URL parser, its opener (importing its client).
SCHEMES: dict[str, _Scheme] = {
    "sqlite": _Scheme(_sqlite_location, _open_sqlite),
    "redis": _Scheme(_redis_location, _open_redis),
    "rediss": _Scheme(_redis_location, _open_redis),
}

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_SWITCHES = frozenset({"1", "0", "true", "false", "yes", "no", "on", "off", "none"})


def parse_cache_url(text: str, source: str) -> CacheTarget:
    """A cache URL or a file path as the backend that serves it: the one parser of them.

    A text that starts ``scheme://`` is a URL of a scheme in :data:`SCHEMES`; any other
    text is a file path. ``source`` names the setting in messages (``SIGLA_CACHE_URL``).
    """
    stripped = text.strip()
    if not stripped:
        raise ConfigurationError(f"The cache setting (from {source}) is empty: give {_ALLOWED}.")
    if stripped.lower() in _SWITCHES:  # not a file named "1": a switch that means nothing
        raise ConfigurationError(
            f"The cache setting {shown(text)} (from {source}) looks like a switch, but it "
            f"names where to store answers: a file path or sqlite:///path (cache=True in "
            f"code means responses.sqlite in the user's cache directory)."
        )
    match = _URL.match(stripped)
    if match is None:
        return CacheTarget("sqlite", _file(stripped, source), source)
    name = match.group(1).lower()
    scheme = SCHEMES.get(name)
    if scheme is None:
        known = ", ".join(f"{known}://" for known in sorted(SCHEMES))
        raise ConfigurationError(
            f"The cache URL {shown(masked_url(stripped))} (from {source}) has the unknown "
            f"scheme {name!r}: the known schemes are {known}; or give a plain file path."
        )
    return CacheTarget(name, scheme.parse(stripped, source), source)


def default_cache_path() -> str:
    """``cache=True``'s file: ``responses.sqlite`` in the user's cache directory.

    ``~/.cache/sigla`` on Linux (``$XDG_CACHE_HOME/sigla`` when set),
    ``~/Library/Caches/sigla`` on macOS, ``%LOCALAPPDATA%\\sigla\\Cache`` on Windows.
    """
    import platformdirs  # only when asked: `import sigla.llm` stays cheap

    folder = platformdirs.user_cache_dir("sigla", appauthor=False)
    return os.path.join(folder, C.CACHE_FILE_NAME)


def resolve_cache(
    setting: bool | str | os.PathLike[str] | None,
    *,
    environ: Mapping[str, str] = os.environ,
    argument: str = "cache=",
) -> CacheTarget | None:
    """Where answers go, without opening anything: None when the cache is off.

    ``None``: ``SIGLA_CACHE_URL`` when set and not blank, else off. ``True``: the
    :func:`default_cache_path`. ``False``: off. A str: a URL or a path
    (:func:`parse_cache_url`). A path object: that file. ``argument`` names the setting
    in messages (``--cache`` on the command line).
    """
    if setting is None:
        raw = environ.get(CACHE_ENV, "")
        return parse_cache_url(raw, CACHE_ENV) if raw.strip() else None
    if setting is False:
        return None
    if setting is True:
        return CacheTarget("sqlite", default_cache_path(), f"{argument}True")
    if isinstance(setting, str):
        return parse_cache_url(setting, argument)
    if isinstance(setting, os.PathLike):
        path = os.fspath(setting)
        if isinstance(path, str) and path.strip():
            return CacheTarget("sqlite", _file(path, argument), argument)
    raise ConfigurationError(f"{argument} must be {_ALLOWED}; got {shown(setting)}.")


def open_target(target: CacheTarget) -> ResponseCache:
    """Open the store a :class:`CacheTarget` names (creating the file and its folders)."""
    try:
        return SCHEMES[target.scheme].open(target)
    except ConfigurationError as exc:  # the same class (MissingDependencyError stays one)
        said = exc.message.rstrip(".")
        raise type(exc)(f"{said} (the cache is set by {target.source}).") from None


def open_cache(
    setting: bool | str | os.PathLike[str] | None,
    *,
    environ: Mapping[str, str] = os.environ,
    argument: str = "cache=",
) -> ResponseCache | None:
    """The cache a ``cache=`` setting names, opened; None when it is off.

    ``open_cache(True)``, ``open_cache("answers.sqlite")``,
    ``open_cache("sqlite:////var/cache/answers.sqlite")``, ``open_cache(None)`` (reads
    ``SIGLA_CACHE_URL``). A bad setting, or a file that cannot serve, raises
    :class:`~sigla.errors.ConfigurationError` saying what is allowed.
    """
    target = resolve_cache(setting, environ=environ, argument=argument)
    return None if target is None else open_target(target)
