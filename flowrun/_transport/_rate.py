"""An alias's limits around each attempt: ``concurrency_limit`` (slots) and ``rate_limit`` (a token bucket).

**Rate.** The bucket starts full (``burst`` tokens) and refills at ``per_second``. A request takes a
token; when none is left it reserves the next one and waits for it, so callers on many threads
(``flowrun test --parallel``, a for-each's workers) or tasks are served in turn and no second
holds more than ``burst + per_second`` requests. A 429 answer with ``Retry-After`` pushes every
waiting and coming request back by that many seconds (``slow_down``): the partner said when it
takes requests again, and the burst is spent.

**Concurrency.** An attempt first takes one of the alias's ``max_in_flight`` slots, then its rate
token, and gives the slot back when the attempt ended (whatever its outcome). A request that finds
no free slot waits up to ``wait_s`` and then fails with ``InFlightWaitError``, unsent.

**Where limits live.** By default in this process: buckets and slots are kept by alias,
environment and limit in this module, so every executor and runner of the process shares them.
A Celery worker installs shared ones (``install_shared``, ``flowrun.celery._limits``): the same
algorithms on Redis, so that the limits hold across all worker processes. Steps through an alias
with neither limit never come here.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from flowrun._errors import InFlightWaitError
from flowrun._models._aliases import ConcurrencyLimit, RateLimit
from flowrun._transport._streams import ATTEMPT_DEADLINE_FACTOR

if TYPE_CHECKING:
    from flowrun._registry import ResolvedConnection

# A slot's lease outlives the attempt's own total deadline by this much (shared slots only).
LEASE_MARGIN_S = 5.0
_SLOT_POLL_S = (0.002, 0.05)  # first and longest pause between looks for a free slot


def lease_seconds(wait_s: float) -> float:
    """How long a shared slot is held at most: an attempt whose waits are bounded by ``wait_s``
    ends by ``ATTEMPT_DEADLINE_FACTOR`` times that (``_streams``), so a live holder never outlives it."""
    return ATTEMPT_DEADLINE_FACTOR * wait_s + LEASE_MARGIN_S


class Pacer:
    """The token bucket's waiting, over a state that ``_reserve``/``_kept``/``slow_down`` keep
    (in this process, or in Redis)."""

    def _reserve(self) -> tuple[float, int]:
        """Take a token: the seconds to wait until it is ours (0 when one was there), and the
        bucket's epoch, which a ``slow_down`` moves on."""
        raise NotImplementedError

    def _kept(self, epoch: int) -> bool:
        raise NotImplementedError

    def slow_down(self, seconds: float) -> None:
        """No request for ``seconds`` from now (a 429's Retry-After), then the steady rate: the
        burst is spent, and requests already waiting for their turn queue again."""
        raise NotImplementedError

    def acquire(self) -> None:
        while True:
            wait, epoch = self._reserve()
            if wait > 0:
                time.sleep(wait)
            if wait == 0 or self._kept(epoch):
                return
            # A 429 came in while we waited: the turn we had is gone, queue again.

    async def aacquire(self) -> None:
        import asyncio  # async callers have it already; a sync run (every REST step imports this) does not

        while True:
            wait, epoch = self._reserve()
            if wait > 0:
                await asyncio.sleep(wait)
            if wait == 0 or self._kept(epoch):
                return

    def answered(self, status: int | None, retry_after: str | None, cap: float) -> None:
        """Note an answer: a 429 with a Retry-After (capped at ``cap`` seconds) slows the bucket."""
        if status != 429:
            return
        from flowrun._transport._retry import retry_after_seconds

        seconds = retry_after_seconds(retry_after)
        if seconds:
            self.slow_down(min(seconds, cap))


class TokenBucket(Pacer):
    """The bucket of one process."""

    def __init__(self, limit: RateLimit) -> None:
        self.rate = float(limit.per_second)
        self.capacity = float(limit.burst)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()
        self._epoch = 0

    def _reserve(self) -> tuple[float, int]:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            return (0.0 if self._tokens >= 0 else -self._tokens / self.rate), self._epoch

    def _kept(self, epoch: int) -> bool:
        with self._lock:
            return epoch == self._epoch

    def slow_down(self, seconds: float) -> None:
        with self._lock:
            self._stamp = time.monotonic()
            # One token short of the wait: the first request to queue again goes in ``seconds``.
            self._tokens = 1.0 - seconds * self.rate
            self._epoch += 1


class Slots(Protocol):
    """An alias's ``max_in_flight`` slots. ``take`` returns what ``give_back`` needs, or raises
    ``InFlightWaitError`` after ``wait_s`` (or another ``StepFailure`` when the slots' store fails)."""

    def take(self, lease_s: float) -> Any: ...

    async def atake(self, lease_s: float) -> Any: ...

    def give_back(self, held: Any) -> None: ...


def waited_too_long(alias: str, env: str | None, limit: ConcurrencyLimit, where: str) -> InFlightWaitError:
    name = f"'{alias}'" + (f" (environment {env})" if env else "")
    return InFlightWaitError(
        f"alias {name} had its {limit.max_in_flight} request(s) in flight {where} for all of "
        f"concurrency_limit.wait_s ({limit.wait_s:g} s): this request was not sent")


class LocalSlots:
    """The slots of one process (threads and event loops alike)."""

    def __init__(self, alias: str, env: str | None, limit: ConcurrencyLimit) -> None:
        self.alias, self.env, self.limit = alias, env, limit
        self._free = limit.max_in_flight
        self._changed = threading.Condition()

    def take(self, lease_s: float) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._free > 0, timeout=self.limit.wait_s):
                raise waited_too_long(self.alias, self.env, self.limit, "in this process")
            self._free -= 1

    async def atake(self, lease_s: float) -> None:
        # Never block the event loop on the condition: look again after short, growing pauses.
        import asyncio

        deadline = time.monotonic() + self.limit.wait_s
        pause, longest = _SLOT_POLL_S
        while True:
            with self._changed:
                if self._free > 0:
                    self._free -= 1
                    return
            if time.monotonic() >= deadline:
                raise waited_too_long(self.alias, self.env, self.limit, "in this process")
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)

    def give_back(self, held: Any) -> None:
        with self._changed:
            self._free += 1
            self._changed.notify()


class Limits(Protocol):
    """Where an alias's bucket and slots come from: this process (``LocalLimits``) or a shared store."""

    def bucket(self, alias: str, env: str | None, limit: RateLimit) -> Pacer: ...

    def slots(self, alias: str, env: str | None, limit: ConcurrencyLimit) -> Slots: ...


class LocalLimits:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str | None, RateLimit], TokenBucket] = {}
        self._slots: dict[tuple[str, str | None, ConcurrencyLimit], LocalSlots] = {}

    def bucket(self, alias: str, env: str | None, limit: RateLimit) -> TokenBucket:
        key = (alias, env, limit)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(limit)
            return bucket

    def slots(self, alias: str, env: str | None, limit: ConcurrencyLimit) -> LocalSlots:
        key = (alias, env, limit)
        with self._lock:
            slots = self._slots.get(key)
            if slots is None:
                slots = self._slots[key] = LocalSlots(alias, env, limit)
            return slots


class Gate:
    """One alias's limits around an attempt: ``enter`` (a slot, then a token), the attempt,
    ``leave`` (the slot back), ``answered`` (a 429 slows the bucket)."""

    def __init__(self, bucket: Pacer | None, slots: Slots | None) -> None:
        self.bucket = bucket
        self.slots = slots

    def enter(self, lease_s: float) -> Any:
        held = self.slots.take(lease_s) if self.slots is not None else None
        if self.bucket is not None:
            try:
                self.bucket.acquire()
            except BaseException:
                self.leave(held)
                raise
        return held

    async def aenter(self, lease_s: float) -> Any:
        held = await self.slots.atake(lease_s) if self.slots is not None else None
        if self.bucket is not None:
            try:
                await self.bucket.aacquire()
            except BaseException:
                self.leave(held)
                raise
        return held

    def leave(self, held: Any) -> None:
        if self.slots is not None:
            self.slots.give_back(held)

    def answered(self, status: int | None, retry_after: str | None, cap: float) -> None:
        if self.bucket is not None:
            self.bucket.answered(status, retry_after, cap)


_LOCAL = LocalLimits()
_SHARED: list[Limits] = []  # at most one: what ``install_shared`` put in place


def install_shared(limits: Limits | None) -> None:
    """Use ``limits`` (e.g. Redis, across processes) for the routes made from now on; None: this
    process's own again."""
    _SHARED[:] = [limits] if limits is not None else []


def _limits() -> Limits:
    return _SHARED[0] if _SHARED else _LOCAL


def bucket_for(alias: str, env: str | None, limit: RateLimit) -> Pacer:
    """The bucket for an alias (and environment) with this limit."""
    return _limits().bucket(alias, env, limit)


def gate_for(resolved: ResolvedConnection) -> Gate | None:
    """The gate of a resolved alias; None when it has neither limit."""
    rate, concurrency = resolved.rate_limit, resolved.concurrency_limit
    if rate is None and concurrency is None:
        return None
    limits = _limits()
    return Gate(limits.bucket(resolved.alias, resolved.env, rate) if rate is not None else None,
                limits.slots(resolved.alias, resolved.env, concurrency) if concurrency is not None else None)


__all__ = ["Gate", "LocalLimits", "Pacer", "TokenBucket", "bucket_for", "gate_for", "install_shared", "lease_seconds"]
