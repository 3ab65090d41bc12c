"""Pacing requests to an alias's ``rate_limit``: one token bucket per alias, per process.

The bucket starts full (``burst`` tokens) and refills at ``per_second``. A request takes a
token; when none is left it reserves the next one and waits for it, so callers on many threads
(``flowrun test --parallel``, a for-each's workers) or tasks are served in turn and no second
holds more than ``burst + per_second`` requests. A 429 answer with ``Retry-After`` pushes every
waiting and coming request back by that many seconds (``slow_down``): the partner said when it
takes requests again, and the burst is spent.

Buckets are kept by alias, environment and limit in this module, so every executor and runner
of the process shares them. Steps through an alias without a rate limit never come here.
"""

from __future__ import annotations

import threading
import time

from flowrun._models._aliases import RateLimit


class TokenBucket:
    def __init__(self, limit: RateLimit) -> None:
        self.rate = float(limit.per_second)
        self.capacity = float(limit.burst)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()
        self._epoch = 0

    def _reserve(self) -> tuple[float, int]:
        """Take a token: the seconds to wait until it is ours (0 when one was there), and the
        bucket's epoch, which a ``slow_down`` moves on."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            return (0.0 if self._tokens >= 0 else -self._tokens / self.rate), self._epoch

    def _kept(self, epoch: int) -> bool:
        with self._lock:
            return epoch == self._epoch

    def acquire(self) -> None:
        while True:
            wait, epoch = self._reserve()
            if wait > 0:
                time.sleep(wait)
            if wait == 0 or self._kept(epoch):
                return
            # A 429 came in while we waited: the turn we had is gone, queue again.

    async def aacquire(self) -> None:
        import asyncio

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

    def slow_down(self, seconds: float) -> None:
        """No request for ``seconds`` from now (a 429's Retry-After), then the steady rate: the
        burst is spent, and requests already waiting for their turn queue again."""
        with self._lock:
            self._stamp = time.monotonic()
            # One token short of the wait: the first request to queue again goes in ``seconds``.
            self._tokens = 1.0 - seconds * self.rate
            self._epoch += 1


_buckets: dict[tuple[str, str | None, RateLimit], TokenBucket] = {}
_buckets_lock = threading.Lock()


def bucket_for(alias: str, env: str | None, limit: RateLimit) -> TokenBucket:
    """The process's bucket for an alias (and environment) with this limit."""
    key = (alias, env, limit)
    with _buckets_lock:
        bucket = _buckets.get(key)
        if bucket is None:
            bucket = _buckets[key] = TokenBucket(limit)
        return bucket
