"""A shared limiter's budgets in a Redis database: processes on many machines.

Each operation is one Lua script, atomic in Redis, reading the time from Redis itself
(``TIME``), so machines whose clocks differ count one window. A budget's keys share the
prefix ``sigla:limits:v1:{budget}:`` (the braces keep them in one cluster slot):

- ``b``: sorted set of bookings by time; ``t``: hash of their estimated tokens;
- ``l:c`` / ``l:a``: sorted sets of leases (the known cap's, the learned one's) by expiry;
- ``s``: hash of the pause (``p`` until, ``pt`` its limit type) and the learned
  concurrency (``v`` value, ``r`` round).

Every key gets an expiry past the longest window, so a budget nobody uses vanishes.
Numbers come back from Lua as strings: Redis would truncate a Lua number to an integer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from ._limit_store import Booked, Learned, LimitStore
from ._stores import connect_redis, import_redis, masked_url, redis_problem
from .errors import StoreUnavailableError

__all__ = ["RedisLimitStore"]

PREFIX = "sigla:limits:v1:"
TIMEOUT = 5.0
_STATE_TTL = 2 * 86_400  # seconds the pause and learned concurrency outlive their last use

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
"""

# KEYS: b, t. ARGV: ticket, keep, tokens, tpm, token_span, the longest wait allowed when
# the minute, the day, the tokens decide; then per window: span, size, name.
_BOOK = (
    _NOW
    + """
local ticket, keep = ARGV[1], tonumber(ARGV[2])
local tokens, tpm, token_span = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - keep))
if #old > 0 then
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
end
local slot, which = now, 'minute'
local allow = {}
allow['minute'], allow['day'], allow['minute (tokens)'] =
  tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
for i = 9, #ARGV, 3 do
  local span, size, name = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2]
  local kth = redis.call('ZREVRANGE', KEYS[1], size - 1, size - 1, 'WITHSCORES')
  if #kth == 2 and tonumber(kth[2]) + span > slot then
    slot, which = tonumber(kth[2]) + span, name
  end
end
if tokens > 0 and tpm > 0 then
  local recent = redis.call('ZRANGEBYSCORE', KEYS[1], now - token_span, '+inf', 'WITHSCORES')
  local whens, costs, used = {}, {}, 0
  for j = 1, #recent, 2 do
    local cost = tonumber(redis.call('HGET', KEYS[2], recent[j]) or '0')
    if cost > 0 then
      whens[#whens + 1] = tonumber(recent[j + 1])
      costs[#costs + 1] = cost
      used = used + cost
    end
  end
  local at = now
  for j = 1, #whens do
    if used + tokens <= tpm then break end
    used = used - costs[j]
    if whens[j] + token_span > at then at = whens[j] + token_span end
  end
  if at > slot then slot, which = at, 'minute (tokens)' end
end
local wait = slot - now
if wait > allow[which] then
  return {0, string.format('%.6f', wait), which}
end
redis.call('ZADD', KEYS[1], string.format('%.6f', slot), ticket)
if tokens > 0 and tpm > 0 then redis.call('HSET', KEYS[2], ticket, tokens) end
local ttl = math.ceil(keep) + 60
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {1, string.format('%.6f', wait), which}
"""
)

# KEYS: b. ARGV: ticket.
_SENT = (
    _NOW
    + """
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if at and tonumber(at) < now then
  redis.call('ZADD', KEYS[1], 'XX', string.format('%.6f', now), ARGV[1])
end
return 1
"""
)

# KEYS: s. ARGV: seconds, limit type, state ttl.
_PAUSE = (
    _NOW
    + """
local till = now + tonumber(ARGV[1])
local held = tonumber(redis.call('HGET', KEYS[1], 'p') or '-1')
if till > held then
  redis.call('HSET', KEYS[1], 'p', string.format('%.6f', till), 'pt', ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

# KEYS: s.
_PAUSED = (
    _NOW
    + """
local got = redis.call('HMGET', KEYS[1], 'p', 'pt')
if not got[1] then return {'0', false, '-inf'} end
return {string.format('%.6f', tonumber(got[1]) - now), got[2], got[1]}
"""
)

# KEYS: s. ARGV: start, ceiling, event ('', 'ok', 'over'), sent_in_round, stated, ttl.
_LEARN = """
local got = redis.call('HMGET', KEYS[1], 'v', 'r')
local value = tonumber(got[1] or ARGV[1])
local round = tonumber(got[2] or '0')
local ceiling = tonumber(ARGV[2])
local event, stated = ARGV[3], tonumber(ARGV[5])
local new, new_round = value, round
if stated then
  new, new_round = math.max(1, math.min(stated, ceiling)), round + 1
elseif event == 'over' then
  if tonumber(ARGV[4]) == round then new, new_round = math.max(1, value / 2), round + 1 end
elseif event == 'ok' and value < ceiling then
  new = math.min(ceiling, value + 1 / value)
end
if new ~= value or new_round ~= round then
  redis.call('HSET', KEYS[1], 'v', string.format('%.17g', new), 'r', new_round)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
end
return {string.format('%.17g', new), new_round}
"""

# KEYS: l:<kind>, s. ARGV: lease, cap ('' for the learned one), ttl, start.
_LEASE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local cap = tonumber(ARGV[2])
if not cap then
  cap = math.floor(tonumber(redis.call('HGET', KEYS[2], 'v') or ARGV[4]))
end
if redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], string.format('%.6f', now + ttl), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(ttl) + 60)
return 1
"""
)

# KEYS: l:<kind>. ARGV: ttl, leases...
_RENEW = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  local expires = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if expires and tonumber(expires) > now then
    redis.call('ZADD', KEYS[1], 'XX', string.format('%.6f', now + ttl), ARGV[i])
  end
end
redis.call('EXPIRE', KEYS[1], math.ceil(ttl) + 60)
return 1
"""
)


class RedisLimitStore(LimitStore):
    """Budgets in one Redis database (see the module's docstring)."""

    def __init__(self, url: str, *, source: str = "limiter=", timeout: float = TIMEOUT) -> None:
        self.url = url
        self.location = masked_url(url)
        self._source = source
        self._timeout = timeout
        password = urlsplit(url).password
        self._secrets = [password, unquote(password)] if password else []
        self._redis = import_redis("limiter")
        with self._translated():
            self._client: Any = connect_redis(self._redis, url, timeout)
            self._scripts = {
                name: self._client.register_script(body)
                for name, body in (
                    ("book", _BOOK),
                    ("sent", _SENT),
                    ("pause", _PAUSE),
                    ("paused", _PAUSED),
                    ("learn", _LEARN),
                    ("lease", _LEASE),
                    ("renew", _RENEW),
                )
            }

    def __repr__(self) -> str:
        return f"RedisLimitStore({self.location!r})"

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (self._redis.RedisError, ValueError, OSError) as exc:
            what = redis_problem(self._redis, exc, self._timeout, self._secrets)
            raise StoreUnavailableError(
                f"The shared limiter's Redis at {self.location} (from {self._source}) {what}. "
                "sigla sends nothing without the shared budget it was told to use."
            ) from None

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        with self._translated():
            return self._scripts[name](keys=keys, args=args)

    @staticmethod
    def _key(budget: str, part: str) -> str:
        return f"{PREFIX}{{{budget}}}:{part}"

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
        args: list[Any] = [ticket, repr(keep), tokens, tokens_per_minute, repr(token_span)]
        args += [repr(allow[name]) for name in ("minute", "day", "minute (tokens)")]
        for span, size, name in windows:
            args += [repr(span), size, name]
        booked, wait, which = self._run(
            "book", [self._key(budget, "b"), self._key(budget, "t")], args
        )
        return Booked(bool(booked), float(wait), _text(which))

    def cancel(self, budget: str, ticket: str) -> None:
        with self._translated():
            pipe = self._client.pipeline(transaction=True)
            pipe.zrem(self._key(budget, "b"), ticket)
            pipe.hdel(self._key(budget, "t"), ticket)
            pipe.execute()

    def sent(self, budget: str, ticket: str) -> None:
        self._run("sent", [self._key(budget, "b")], [ticket])

    def settle(self, budget: str, ticket: str, tokens: int) -> None:
        with self._translated():
            key = self._key(budget, "t")
            if tokens:
                self._client.hset(key, ticket, tokens)
            else:
                self._client.hdel(key, ticket)

    # -- the pause, the learned concurrency

    def pause(self, budget: str, seconds: float, limit_type: str | None) -> None:
        self._run(
            "pause", [self._key(budget, "s")], [repr(seconds), limit_type or "", _STATE_TTL]
        )

    def paused(self, budget: str) -> tuple[float, str | None, float]:
        left, limit_type, until = self._run("paused", [self._key(budget, "s")], [])
        shown = (_text(limit_type) or None) if limit_type else None
        return float(left), shown, float(until)

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
        event = "over" if sent_in_round is not None else "ok" if succeeded else ""
        value, round_ = self._run(
            "learn",
            [self._key(budget, "s")],
            [
                repr(start),
                ceiling,
                event,
                "" if sent_in_round is None else sent_in_round,
                "" if stated is None else stated,
                _STATE_TTL,
            ],
        )
        return Learned(float(value), int(round_))

    # -- leases

    def lease(
        self, budget: str, kind: str, lease: str, cap: int | None, ttl: float, start: float
    ) -> bool:
        taken = self._run(
            "lease",
            [self._key(budget, f"l:{kind}"), self._key(budget, "s")],
            [lease, "" if cap is None else cap, repr(ttl), repr(start)],
        )
        return bool(taken)

    def release(self, budget: str, kind: str, lease: str) -> None:
        with self._translated():
            self._client.zrem(self._key(budget, f"l:{kind}"), lease)

    def renew(self, budget: str, kind: str, leases: Sequence[str], ttl: float) -> None:
        self._run("renew", [self._key(budget, f"l:{kind}")], [repr(ttl), *leases])

    # -- looking

    def snapshot(self, budget: str) -> dict[str, Any]:
        with self._translated():
            (seconds, micros) = self._client.time()
            now = seconds + micros / 1e6
            booked = self._client.zcard(self._key(budget, "b"))
            leases = {
                kind: self._client.zcount(self._key(budget, f"l:{kind}"), f"({now}", "+inf")
                for kind in ("a", "c")
            }
            learned = self._client.hget(self._key(budget, "s"), "v")
        left, _, _ = self.paused(budget)
        return {
            "bookings": booked,
            "leases": {kind: n for kind, n in leases.items() if n},
            "paused_for": max(0.0, left),
            "learned": None if learned is None else float(learned),
        }

    def ping(self) -> None:
        with self._translated():
            self._client.ping()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
