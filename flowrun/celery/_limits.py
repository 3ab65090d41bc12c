"""An alias's ``rate_limit`` and ``concurrency_limit`` shared by every worker process, in Redis.

A worker process installs ``RedisLimits`` (``flowrun._transport._rate.install_shared``) on the
Redis of the app's result backend (the broker's Redis unless a backend URL was given), so the
limits hold across all workers of all machines that use that Redis, not per process. Each state
change is one Lua script, atomic on the server, on Redis's own clock (``TIME``): workers' clocks
need not agree.

Keys (``<ns>`` is the app's limits namespace, ``default`` unless ``create_app(limits_namespace=)``
names another; ``<env>`` is empty for an alias with one connection)::

    flowrun:limit:<ns>:<alias>:<env>:rate    hash {tokens, stamp, epoch}: the token bucket
    flowrun:limit:<ns>:<alias>:<env>:slots   sorted set: holder id -> lease end (Redis time, s)

Names and numbers only: no URL, credential or request data. A holder id is
``<host>:<pid>:<random>``. The bucket's key expires once it would be full again (plus a minute);
the slots' key when its last lease ends.

A slot is a lease, not a lock: it ends by itself ``lease_seconds`` after it was taken (the
attempt's own total deadline plus a margin), so a worker killed with ``kill -9`` while it held
one holds it no longer than that. Looking for a free slot drops ended leases first. A live worker
gives its slot back as soon as its attempt ends.

When Redis fails, ``take`` and ``acquire`` raise ``LimitStoreError`` (the step fails, unsent:
going past a partner's limit is worse than a failed step); giving a slot back or slowing the
bucket after a 429 are best effort (the lease ends by itself; the next request meets the error).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from typing import Any

from flowrun._errors import LimitStoreError
from flowrun._models._aliases import ConcurrencyLimit, RateLimit
from flowrun._transport._rate import Pacer, waited_too_long

__all__ = ["RedisBucket", "RedisLimits", "RedisSlots", "limit_key"]

_TAKE_TOKEN = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp', 'epoch')
local tokens = tonumber(state[1]) or capacity
local stamp = tonumber(state[2]) or now
local epoch = tonumber(state[3]) or 0
if ARGV[3] == 'slow' then
  tokens = 1 - tonumber(ARGV[4]) * rate
  epoch = epoch + 1
else
  tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate) - 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'stamp', string.format('%.17g', now),
           'epoch', epoch)
redis.call('PEXPIRE', KEYS[1], math.ceil(((capacity - tokens) / rate + 60) * 1000))
local wait = 0
if tokens < 0 then wait = -tokens / rate end
return {string.format('%.17g', wait), epoch}
"""

_TAKE_SLOT = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], string.format('%.17g', now + tonumber(ARGV[2])), ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2]) * 1000) + 1000)
return 1
"""

_SLOT_POLL_S = (0.002, 0.05)  # first and longest pause between looks for a free slot


def limit_key(namespace: str, alias: str, env: str | None, kind: str) -> str:
    return f"flowrun:limit:{namespace}:{alias}:{env or ''}:{kind}"


def _store_failed(alias: str, what: str, exc: Exception) -> LimitStoreError:
    # The exception's class only: redis-py's messages may quote the URL it was given.
    return LimitStoreError(f"alias '{alias}': the Redis that holds the workers' shared limits failed while {what} "
                           f"({type(exc).__name__}): the request was not sent")


class RedisBucket(Pacer):
    def __init__(self, client: Any, key: str, alias: str, limit: RateLimit) -> None:
        self.key, self.alias = key, alias
        self.rate, self.capacity = float(limit.per_second), float(limit.burst)
        self._script = client.register_script(_TAKE_TOKEN)
        self._client = client

    def _run(self, *args: Any) -> tuple[float, int]:
        import redis

        try:
            wait, epoch = self._script(keys=[self.key], args=[self.rate, self.capacity, *args])
        except redis.exceptions.RedisError as exc:
            raise _store_failed(self.alias, "taking a rate_limit token", exc) from None
        return float(wait), int(epoch)

    def _reserve(self) -> tuple[float, int]:
        return self._run("take", 0)

    def _kept(self, epoch: int) -> bool:
        import redis

        try:
            current = self._client.hget(self.key, "epoch")
        except redis.exceptions.RedisError as exc:
            raise _store_failed(self.alias, "taking a rate_limit token", exc) from None
        return current is None or int(current) == epoch

    def slow_down(self, seconds: float) -> None:
        with contextlib.suppress(LimitStoreError):  # best effort: the next request meets the failure itself
            self._run("slow", seconds)


class RedisSlots:
    def __init__(self, client: Any, key: str, alias: str, env: str | None, limit: ConcurrencyLimit) -> None:
        self.key, self.alias, self.env, self.limit = key, alias, env, limit
        self._script = client.register_script(_TAKE_SLOT)
        self._client = client
        self._holder = f"{socket.gethostname()}:{os.getpid()}"

    def _try(self, holder: str, lease_s: float) -> bool:
        import redis

        try:
            return bool(self._script(keys=[self.key], args=[self.limit.max_in_flight, lease_s, holder]))
        except redis.exceptions.RedisError as exc:
            raise _store_failed(self.alias, "taking a concurrency_limit slot", exc) from None

    def _waited(self) -> Exception:
        return waited_too_long(self.alias, self.env, self.limit, "across the workers")

    def take(self, lease_s: float) -> str:
        holder = f"{self._holder}:{uuid.uuid4().hex}"
        deadline = time.monotonic() + self.limit.wait_s
        pause, longest = _SLOT_POLL_S
        while not self._try(holder, lease_s):
            if time.monotonic() >= deadline:
                raise self._waited()
            time.sleep(pause)
            pause = min(pause * 2, longest)
        return holder

    async def atake(self, lease_s: float) -> str:
        import asyncio

        holder = f"{self._holder}:{uuid.uuid4().hex}"
        deadline = time.monotonic() + self.limit.wait_s
        pause, longest = _SLOT_POLL_S
        while not self._try(holder, lease_s):
            if time.monotonic() >= deadline:
                raise self._waited()
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)
        return holder

    def give_back(self, held: Any) -> None:
        import redis

        with contextlib.suppress(redis.exceptions.RedisError):  # the lease ends by itself
            self._client.zrem(self.key, held)


class RedisLimits:
    """The buckets and slots of one Redis, under one namespace (``flowrun._transport._rate.Limits``)."""

    def __init__(self, client: Any, namespace: str = "default") -> None:
        self.client = client
        self.namespace = namespace
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str | None, RateLimit], RedisBucket] = {}
        self._slots: dict[tuple[str, str | None, ConcurrencyLimit], RedisSlots] = {}

    def bucket(self, alias: str, env: str | None, limit: RateLimit) -> RedisBucket:
        with self._lock:
            bucket = self._buckets.get((alias, env, limit))
            if bucket is None:
                key = limit_key(self.namespace, alias, env, "rate")
                bucket = self._buckets[(alias, env, limit)] = RedisBucket(self.client, key, alias, limit)
            return bucket

    def slots(self, alias: str, env: str | None, limit: ConcurrencyLimit) -> RedisSlots:
        with self._lock:
            slots = self._slots.get((alias, env, limit))
            if slots is None:
                key = limit_key(self.namespace, alias, env, "slots")
                slots = self._slots[(alias, env, limit)] = RedisSlots(self.client, key, alias, env, limit)
            return slots
