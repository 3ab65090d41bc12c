"""Retry policies against real servers: statuses, Retry-After, resets, timeouts, non-idempotent methods."""

from __future__ import annotations

import email.utils
import socket
import ssl
import time

import pytest
import tenacity

from flowrun._errors import (
    ConnectionLostError,
    ConnectRefusedError,
    RequestTimeoutError,
    UnexpectedStatusError,
)
from flowrun._models._aliases import RetryPolicy
from flowrun._models._steps import Body, RestStep
from flowrun._rest import RestExecutor
from flowrun._transport._retry import Outcome, PolicyWait, retry_after_seconds, should_retry
from flowrun.testing import PartnerServer, PkiFiles
from tests.transport._support import RawRequest, RawServer, Reply, Reset, make_registry

FAST = RetryPolicy(strategy="fixed", count=3, interval_s=0.01)


def run(url: str, pki_files: PkiFiles, step: RestStep, retry: RetryPolicy = FAST):
    with RestExecutor(make_registry(pki_files, url, retry=retry)) as rest:
        return rest.run(step)


def test_503_then_200_is_retried(partner: PartnerServer, pki_files: PkiFiles) -> None:
    result = run(partner.url, pki_files, RestStep(alias="partner", path="/flaky/a", query={"fail": 2}))
    assert result.status == "passed", result.error
    assert [a.status for a in result.attempts] == [503, 503, 200]
    assert [a.number for a in result.attempts] == [1, 2, 3]
    assert all(a.error is None for a in result.attempts)
    assert partner.attempts("flaky", "a") == 3


def test_retries_stop_after_count_and_the_last_status_fails_the_step(partner: PartnerServer,
                                                                     pki_files: PkiFiles) -> None:
    result = run(partner.url, pki_files, RestStep(alias="partner", path="/flaky/b", query={"fail": 10}))
    assert isinstance(result.error, UnexpectedStatusError)
    assert result.error.status == 503
    assert len(result.attempts) == 4
    assert partner.attempts("flaky", "b") == 4


def test_status_not_in_on_status_is_not_retried(partner: PartnerServer, pki_files: PkiFiles) -> None:
    result = run(partner.url, pki_files, RestStep(alias="partner", path="/flaky/c", query={"status": 500}))
    assert [a.status for a in result.attempts] == [500]


def test_step_retry_policy_overrides_the_alias(partner: PartnerServer, pki_files: PkiFiles) -> None:
    step = RestStep(alias="partner", path="/flaky/d", query={"fail": 5}, retry_policy=RetryPolicy())
    assert len(run(partner.url, pki_files, step).attempts) == 1


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_429_with_retry_after_is_honoured(partner: PartnerServer, pki_files: PkiFiles, form: str) -> None:
    policy = RetryPolicy(strategy="retry_after", count=2, interval_s=30.0, max_elapsed_s=20.0)
    step = RestStep(alias="partner", path=f"/retry-after/{form}", query={"after": 1, "form": form})
    result = run(partner.url, pki_files, step, policy)
    assert result.status == "passed", result.error
    assert [a.status for a in result.attempts] == [429, 200]
    # The wait came from the header (1 s), not from the 30 s interval.
    waited = result.attempts[1].started_at - result.attempts[0].started_at
    assert waited < 25


def test_retry_after_beyond_max_elapsed_gives_up(partner: PartnerServer, pki_files: PkiFiles) -> None:
    policy = RetryPolicy(strategy="retry_after", count=3, max_elapsed_s=5.0)
    result = run(partner.url, pki_files, RestStep(alias="partner", path="/retry-after/far", query={"after": 3600}),
                 policy)
    assert isinstance(result.error, UnexpectedStatusError) and result.error.status == 429
    assert len(result.attempts) == 1


def test_post_is_not_retried_after_the_request_was_sent(partner: PartnerServer, pki_files: PkiFiles) -> None:
    step = RestStep(alias="partner", method="POST", path="/flaky/post", body=Body("json", {"a": 1}))
    result = run(partner.url, pki_files, step)
    assert [a.status for a in result.attempts] == [503]
    assert partner.attempts("flaky", "post") == 1


def test_post_is_retried_when_the_step_opts_in(partner: PartnerServer, pki_files: PkiFiles) -> None:
    policy = RetryPolicy(strategy="fixed", count=2, interval_s=0.01, retry_non_idempotent=True)
    step = RestStep(alias="partner", method="POST", path="/flaky/post2", body=Body("json", {"a": 1}))
    result = run(partner.url, pki_files, step, policy)
    assert [a.status for a in result.attempts] == [503, 200]


def test_connection_reset_is_retried_for_get_but_not_for_post(tls_server_context: ssl.SSLContext,
                                                              pki_files: PkiFiles) -> None:
    def reset_first_twice(request: RawRequest) -> Reset | Reply:
        return Reset() if len(server.requests) <= 2 else Reply(200, b"{}")

    with RawServer(reset_first_twice, ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias="partner", path="/get"))
        assert result.status == "passed", result.error
        assert [type(a.error) for a in result.attempts] == [ConnectionLostError, ConnectionLostError, type(None)]
        assert result.attempts[-1].status == 200

    with RawServer(lambda request: Reset(), ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias="partner", method="POST", path="/post",
                                                       body=Body("text", "x")))
        assert isinstance(result.error, ConnectionLostError)
        assert len(result.attempts) == 1
        assert len(server.requests) == 1


def test_post_is_retried_when_the_connection_was_refused(pki_files: PkiFiles) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    step = RestStep(alias="partner", method="POST", body=Body("text", "x"))
    result = run(f"https://localhost:{port}", pki_files, step, RetryPolicy(strategy="fixed", count=2,
                                                                           interval_s=0.01))
    assert isinstance(result.error, ConnectRefusedError)
    assert len(result.attempts) == 3
    assert all(isinstance(a.error, ConnectRefusedError) for a in result.attempts)


def test_slow_response_times_out(partner: PartnerServer, pki_files: PkiFiles) -> None:
    step = RestStep(alias="partner", path="/slow", query={"ms": 3000}, timeout_s=0.3,
                    retry_policy=RetryPolicy(strategy="fixed", count=1, interval_s=0.01))
    result = run(partner.url, pki_files, step)
    assert isinstance(result.error, RequestTimeoutError)
    assert "waiting for the answer" in str(result.error)
    assert len(result.attempts) == 2


def test_transport_errors_are_not_retried_when_the_policy_says_so(tls_server_context: ssl.SSLContext,
                                                                   pki_files: PkiFiles) -> None:
    policy = RetryPolicy(strategy="fixed", count=3, interval_s=0.01, on_transport_errors=False)
    with RawServer(lambda request: Reset(), ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias="partner"), policy)
    assert isinstance(result.error, ConnectionLostError)
    assert len(result.attempts) == 1


# --- the policy on its own ---------------------------------------------------------------------------


def test_retry_after_parsing() -> None:
    now = time.time()
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(" 0 ") == 0.0
    assert retry_after_seconds("-5") == 0.0
    date = email.utils.formatdate(now + 120, usegmt=True)
    assert retry_after_seconds(date, now=now) == pytest.approx(120, abs=1)
    assert retry_after_seconds(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
def test_retry_after_that_is_no_finite_number_is_ignored(value: str) -> None:
    assert retry_after_seconds(value) is None


def test_retry_after_of_an_absurd_date_is_ignored() -> None:
    assert retry_after_seconds("Fri, 31 Dec 99999 23:59:59 GMT") is None
    assert retry_after_seconds("Mon, 01 Jan 0001 00:00:00 GMT") == 0.0


@pytest.mark.parametrize(("header", "wait"), [("1e308", 2.5), ("-7", 0.0), ("nan", 0.25), ("inf", 0.25),
                                              ("3", 2.5), ("1", 1.0)])
def test_retry_after_waits_are_capped_by_max_interval(header: str, wait: float) -> None:
    policy = RetryPolicy(strategy="retry_after", count=3, interval_s=0.25, max_interval_s=2.5)
    assert PolicyWait(policy)(_state(1, Outcome(status=429, retry_after=header))) == wait


@pytest.mark.parametrize("header", ["nan", "inf", "-inf", "1e308", "-1", "99999999999999999999"])
def test_a_hostile_retry_after_ends_in_a_retry_not_a_crash(tls_server_context: ssl.SSLContext,
                                                           pki_files: PkiFiles, header: str) -> None:
    def first_busy(request: RawRequest) -> Reply:
        if len(server.requests) <= 1:
            return Reply(503, b"busy", (("Retry-After", header),))
        return Reply(200, b'{"ok": true}')

    policy = RetryPolicy(strategy="retry_after", count=1, interval_s=0.01, max_interval_s=0.05)
    with RawServer(first_busy, ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias="partner", path="/busy"), policy)
    assert result.status == "passed", result.error
    assert [a.status for a in result.attempts] == [503, 200]


def _state(number: int, outcome: Outcome[object]) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = number
    state.set_result(outcome)
    return state


def test_waits_per_strategy() -> None:
    fixed = PolicyWait(RetryPolicy(strategy="fixed", count=5, interval_s=2.0))
    assert [fixed(_state(n, Outcome(status=503))) for n in (1, 2, 3)] == [2.0, 2.0, 2.0]
    exponential = PolicyWait(RetryPolicy(strategy="exponential", count=9, interval_s=0.5, max_interval_s=3.0,
                                         jitter=False))
    assert [exponential(_state(n, Outcome(status=503))) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = PolicyWait(RetryPolicy(strategy="exponential", count=9, interval_s=0.5, max_interval_s=3.0))
    for n, base in ((1, 0.5), (2, 1.0), (6, 3.0)):
        wait = jittered(_state(n, Outcome(status=503)))
        assert base <= wait <= min(base + 0.5, 3.0)
    after = PolicyWait(RetryPolicy(strategy="retry_after", count=3, interval_s=4.0))
    assert after(_state(1, Outcome(status=429, retry_after="9"))) == 9.0
    assert after(_state(1, Outcome(status=429))) == 4.0


def test_should_retry_rules() -> None:
    policy = RetryPolicy(strategy="fixed", count=1)
    from flowrun._errors import ServerCertUntrustedError

    assert should_retry(policy, "GET", Outcome(status=503))
    assert not should_retry(policy, "GET", Outcome(status=500))
    assert not should_retry(policy, "POST", Outcome(status=503))
    assert not should_retry(policy, "PATCH", Outcome(error=ConnectionLostError("x"), sent=True))
    assert should_retry(policy, "POST", Outcome(error=ConnectRefusedError("x"), sent=False))
    assert should_retry(policy, "PUT", Outcome(error=RequestTimeoutError("x")))
    assert not should_retry(policy, "GET", Outcome(error=ServerCertUntrustedError("x"), sent=False))
    assert not should_retry(policy, "GET", Outcome(error=UnexpectedStatusError("x")))


class _CountedRetrying(tenacity.Retrying):
    entered = 0

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        type(self).entered += 1
        return super().__call__(*args, **kwargs)


def test_tenacity_is_entered_only_after_a_first_failure(partner: PartnerServer, pki_files: PkiFiles,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tenacity, "Retrying", _CountedRetrying)
    with RestExecutor(make_registry(pki_files, partner.url, retry=FAST)) as rest:
        ok = [rest.run(RestStep(alias="partner", path="/accounts/7")) for _ in range(3)]
        assert _CountedRetrying.entered == 0
        flaky = rest.run(RestStep(alias="partner", path="/flaky/first", query={"fail": 1}))
    assert all(r.status == "passed" and len(r.attempts) == 1 for r in ok)
    assert _CountedRetrying.entered == 1
    # The attempt made before tenacity counts as its first: numbers, statuses and the count hold.
    assert [(a.number, a.status) for a in flaky.attempts] == [(1, 503), (2, 200)]
    assert partner.attempts("flaky", "first") == 2


def test_max_elapsed_counts_the_attempt_made_before_tenacity(tls_server_context: ssl.SSLContext,
                                                            pki_files: PkiFiles) -> None:
    # Each answer takes ~0.3 s; with max_elapsed_s 0.5 one retry fits (0.3 + 0.01 < 0.5), a second does not.
    def slow(request: RawRequest) -> Reply:
        time.sleep(0.3)
        return Reply(503, b"busy")

    policy = RetryPolicy(strategy="fixed", count=5, interval_s=0.01, max_elapsed_s=0.5)
    with RawServer(slow, ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias="partner", path="/slow"), retry=policy)
    assert [a.status for a in result.attempts] == [503, 503]


def test_the_async_executor_retries_after_a_first_failure_too(partner: PartnerServer, pki_files: PkiFiles) -> None:
    import asyncio

    from flowrun._rest import AsyncRestExecutor

    async def main() -> list:
        async with AsyncRestExecutor(make_registry(pki_files, partner.url, retry=FAST)) as rest:
            return [await rest.run(RestStep(alias="partner", path=path, query=query))
                    for path, query in (("/accounts/7", {}), ("/flaky/async", {"fail": 2}))]

    ok, flaky = asyncio.run(main())
    assert [(a.number, a.status) for a in ok.attempts] == [(1, 200)]
    assert [(a.number, a.status) for a in flaky.attempts] == [(1, 503), (2, 503), (3, 200)]
    assert partner.attempts("flaky", "async") == 3
