"""Retry policies on top of tenacity.

What is retried:

* a status in ``policy.on_status``;
* a transport failure (connection refused, timeout, connection lost) when
  ``policy.on_transport_errors`` is on;
* never a TLS failure (certificate, trust, protocol version): retrying cannot fix it and
  hammers the partner with handshakes;
* for non-idempotent methods (POST, PATCH) only failures before the request was sent
  (connect errors), unless ``policy.retry_non_idempotent``.

Waits: ``fixed`` (interval), ``exponential`` (interval * 2^(n-1), capped at max_interval_s,
plus up to one interval of random jitter), ``retry_after`` (the Retry-After header in seconds or
as an HTTP date; the interval when absent or not a finite number; never more than
``max_interval_s``, so ``nan``, ``inf``, ``1e308`` or a negative value can neither stall nor crash
a run). No retry starts once ``max_elapsed_s`` would be exceeded by the coming wait: the last
outcome is returned instead.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

import attrs

from flowrun._errors import (
    FlowrunError,
    ProtocolError,
    ProxyAuthRequiredError,
    ProxyRefusedError,
    TlsError,
    TransportError,
)
from flowrun._models._aliases import RetryPolicy
from flowrun._models._record import RecordRepr
from flowrun._models._results import Attempt

if TYPE_CHECKING:
    import tenacity
from flowrun._models._steps import IDEMPOTENT_METHODS

T = TypeVar("T")


@attrs.define(repr=False)
class Outcome(RecordRepr, Generic[T]):
    """What one attempt produced: a response (``status``, ``value``) or an ``error``."""

    value: T | None = None
    status: int | None = None
    retry_after: str | None = None
    error: FlowrunError | None = None
    # False only when the request certainly never reached the partner.
    sent: bool = True
    # Frees what ``value`` holds (a temporary file) when the outcome is dropped for a retry.
    cleanup: Callable[[], None] | None = None

    def discard(self) -> None:
        if self.cleanup is not None:
            self.cleanup()
            self.cleanup = None


def retriable_error(error: FlowrunError) -> bool:
    # A proxy's 403 or 407 answers the same on every attempt.
    return isinstance(error, TransportError) and not isinstance(
        error, TlsError | ProtocolError | ProxyRefusedError | ProxyAuthRequiredError)


def should_retry(policy: RetryPolicy, method: str, outcome: Outcome[T]) -> bool:
    idempotent = method in IDEMPOTENT_METHODS or policy.retry_non_idempotent
    if outcome.error is not None:
        if not policy.on_transport_errors or not retriable_error(outcome.error):
            return False
        return idempotent or not outcome.sent
    return outcome.status in policy.on_status and idempotent


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        # "nan" and "inf" parse as floats; neither is a wait.
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000": a date in UTC without a zone
            when = when.replace(tzinfo=datetime.UTC)
        return max(when.timestamp() - (time.time() if now is None else now), 0.0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class PolicyWait:
    """The wait before retry ``n`` (tenacity's ``attempt_number`` of the attempt that failed).

    A plain callable, not a ``tenacity.wait`` subclass: tenacity is imported only when a step
    really can be retried, which keeps it off the start-up path."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def backoff(self, attempt_number: int) -> float:
        policy = self._policy
        if policy.strategy != "exponential":
            return policy.interval_s
        exponent = min(max(attempt_number - 1, 0), 62)
        wait = min(policy.interval_s * 2.0**exponent, policy.max_interval_s)
        if policy.jitter:
            # Spread the clients that failed together; never beyond the cap.
            wait = min(wait + random.uniform(0.0, policy.interval_s), policy.max_interval_s)
        return wait

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        if self._policy.strategy == "retry_after" and retry_state.outcome is not None:
            outcome = retry_state.outcome.result()
            seconds = retry_after_seconds(outcome.retry_after) if isinstance(outcome, Outcome) else None
            if seconds is not None:
                # The partner asks; the policy bounds what it may ask for.
                return min(seconds, self._policy.max_interval_s)
        return self.backoff(retry_state.attempt_number)


def _discard(retry_state: tenacity.RetryCallState) -> None:
    if retry_state.outcome is not None and not retry_state.outcome.failed:
        outcome = retry_state.outcome.result()
        if isinstance(outcome, Outcome):
            outcome.discard()


def _last(retry_state: tenacity.RetryCallState) -> object:
    assert retry_state.outcome is not None
    return retry_state.outcome.result()


def _retrying_kwargs(policy: RetryPolicy, method: str, spent_s: float = 0.0) -> dict[str, object]:
    """tenacity's settings; ``spent_s``: what the first attempt, made before tenacity, took."""
    import tenacity

    return {
        "stop": tenacity.stop_after_attempt(policy.attempts)
        | tenacity.stop_before_delay(policy.max_elapsed_s - spent_s),
        "wait": PolicyWait(policy),
        "retry": tenacity.retry_if_result(lambda outcome: should_retry(policy, method, outcome)),
        "before_sleep": _discard,
        "retry_error_callback": _last,
        "reraise": True,
    }


def _record(records: list[Attempt], started: float, began: float, outcome: Outcome[T]) -> None:
    records.append(Attempt(number=len(records) + 1, started_at=started,
                           duration_ms=(time.perf_counter() - began) * 1000.0,
                           status=outcome.status, error=outcome.error))


def _first(attempt: Callable[[], Outcome[T]]) -> tuple[Outcome[T], Attempt, float]:
    started, began = time.time(), time.perf_counter()
    outcome = attempt()
    spent = time.perf_counter() - began
    return outcome, Attempt(1, started, spent * 1000.0, outcome.status, outcome.error), spent


def _replaying(first: Outcome[T], records: list[Attempt],
               attempt: Callable[[], Outcome[T]]) -> Callable[[], Outcome[T]]:
    """tenacity's function: its first call hands over the attempt already made, then attempts."""
    pending = [first]

    def once() -> Outcome[T]:
        if pending:
            return pending.pop()
        started, began = time.time(), time.perf_counter()
        result = attempt()
        _record(records, started, began, result)
        return result

    return once


def run_with_retry(policy: RetryPolicy, method: str,
                   attempt: Callable[[], Outcome[T]]) -> tuple[Outcome[T], tuple[Attempt, ...]]:
    """Run ``attempt`` under ``policy``; the last outcome and every attempt made.

    tenacity is entered only once the first attempt failed in a way the policy retries: most
    calls succeed at once, and building tenacity's machinery for them costs ~5% of a request."""
    outcome, record, spent = _first(attempt)
    if policy.attempts <= 1 or not should_retry(policy, method, outcome):
        return outcome, (record,)
    import tenacity

    records = [record]
    retrying = tenacity.Retrying(**_retrying_kwargs(policy, method, spent))  # type: ignore[arg-type]
    outcome = retrying(_replaying(outcome, records, attempt))
    return outcome, tuple(records)


async def arun_with_retry(policy: RetryPolicy, method: str,
                          attempt: Callable[[], Awaitable[Outcome[T]]]) -> tuple[Outcome[T], tuple[Attempt, ...]]:
    started, began = time.time(), time.perf_counter()
    outcome = await attempt()
    spent = time.perf_counter() - began
    record = Attempt(1, started, spent * 1000.0, outcome.status, outcome.error)
    if policy.attempts <= 1 or not should_retry(policy, method, outcome):
        return outcome, (record,)
    return await aretry_after_first(policy, method, attempt, outcome, record, spent)


async def aretry_after_first(policy: RetryPolicy, method: str, attempt: Callable[[], Awaitable[Outcome[T]]],
                             outcome: Outcome[T], record: Attempt,
                             spent: float) -> tuple[Outcome[T], tuple[Attempt, ...]]:
    """``arun_with_retry`` once its first attempt (``outcome``, ``record``, ``spent`` seconds) is
    one the policy retries: a caller that made the first attempt itself awaits no frame of ours
    for the calls that need no retry."""
    records = [record]
    pending = [outcome]

    async def once() -> Outcome[T]:
        if pending:
            return pending.pop()
        started, began = time.time(), time.perf_counter()
        result = await attempt()
        _record(records, started, began, result)
        return result

    import tenacity

    retrying = tenacity.AsyncRetrying(**_retrying_kwargs(policy, method, spent))  # type: ignore[arg-type]
    outcome = await retrying(once)
    return outcome, tuple(records)
