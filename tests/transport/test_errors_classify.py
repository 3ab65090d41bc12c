"""Each TLS and connection failure, produced for real on loopback, is classified right and never retried."""

from __future__ import annotations

import socket
import ssl

import httpx
import pytest

from flowrun._errors import (
    ClientCertNotSentError,
    ClientCertRejectedError,
    ConnectionLostError,
    ConnectRefusedError,
    HostnameMismatchError,
    PlainHttpPortError,
    ProtocolError,
    ProtocolVersionError,
    RequestTimeoutError,
    ServerCertUntrustedError,
    TlsError,
    TransportError,
)
from flowrun._models._aliases import RetryPolicy
from flowrun._models._steps import RestStep
from flowrun._registry import Registry
from flowrun._rest import RestExecutor
from flowrun._transport._errors import classify, failed_before_sending
from flowrun.testing import PartnerServer, Pki, PkiFiles, issue_server
from tests.transport._support import RawServer, make_registry

RETRY = RetryPolicy(strategy="fixed", count=3, interval_s=0.01)


def run(registry: Registry) -> object:
    with RestExecutor(registry) as rest:
        return rest.run(RestStep(alias="partner", path="/accounts/7"))


def assert_tls_failure(result: object, kind: type[TlsError], *words: str) -> TlsError:
    error = result.error  # type: ignore[attr-defined]
    assert type(error) is kind, repr(error)
    assert len(result.attempts) == 1, "a TLS failure must not be retried"  # type: ignore[attr-defined]
    assert "alias 'partner'" in str(error)
    for word in words:
        assert word in str(error)
    return error


def test_server_cert_untrusted(partner: PartnerServer, pki_files: PkiFiles) -> None:
    registry = make_registry(pki_files, partner.url, trust=[pki_files.other_ca_pem], retry=RETRY)
    error = assert_tls_failure(run(registry), ServerCertUntrustedError, f"localhost:{partner.port}",
                               "CERTIFICATE_VERIFY_FAILED", "certificate")
    assert error.code == "tls.server_untrusted"
    assert partner.handshakes == 0
    # A diagnostic handshake read what the partner sends; the message names the root to trust.
    assert "it sent " in error.message and "CN=flowrun test root CA" in error.message
    assert "as a trust_store_cert of protocol profile" in (error.hint or "")


def test_server_cert_untrusted_with_its_root_trusted_is_left_to_openssl_words(pki: Pki, pki_files: PkiFiles) -> None:
    # A certificate for clients only, under the root the profile trusts: naming the root would
    # send the user to add what is already there.
    with PartnerServer(pki, server_identity=issue_server(pki, eku=("clientAuth",))) as partner:
        error = assert_tls_failure(run(make_registry(pki_files, partner.url, retry=RETRY)),
                                   ServerCertUntrustedError, "unsuitable certificate purpose")
    assert "it sent " not in error.message
    assert "CN=flowrun test root CA" not in (error.hint or "")


def test_hostname_mismatch(pki: Pki, pki_files: PkiFiles) -> None:
    with PartnerServer(pki, server_identity=issue_server(pki, hostnames=("partner.example",))) as partner:
        registry = make_registry(pki_files, partner.url, retry=RETRY)
        assert_tls_failure(run(registry), HostnameMismatchError, "Hostname mismatch")


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_client_cert_not_sent(pki: Pki, pki_files: PkiFiles, version: str) -> None:
    with PartnerServer(pki, tls_versions=(version,)) as partner:
        registry = make_registry(pki_files, partner.url, mutual=False, retry=RETRY)
        error = assert_tls_failure(run(registry), ClientCertNotSentError, "none is configured")
        # With TLS 1.2 the alert is ambiguous, so classification makes one diagnostic handshake more.
        assert partner.wait_until(lambda p: len(p.handshake_failures) == (2 if version == "1.2" else 1))
    reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED" if version == "1.3" else "SSLV3_ALERT_HANDSHAKE_FAILURE"
    assert reason in str(error)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_client_cert_rejected_by_a_server_trusting_another_ca(pki: Pki, pki_files: PkiFiles, version: str) -> None:
    with PartnerServer(pki, tls_versions=(version,), trusted_client_cas=[pki.other_ca.certificate]) as partner:
        registry = make_registry(pki_files, partner.url, retry=RETRY)
        error = assert_tls_failure(run(registry), ClientCertRejectedError, "did not accept the client certificate",
                                   pki.client.sha256, "CN=flowrun-demo-client")
        assert partner.wait_until(lambda p: len(p.handshake_failures) == 1)
    # TLS 1.3: the server's alert arrives after the request was written, as a read error.
    assert "TLSV1_ALERT_UNKNOWN_CA" in str(error)


def test_protocol_version_mismatch(pki: Pki, pki_files: PkiFiles) -> None:
    with PartnerServer(pki, tls_versions=("1.3",)) as partner:
        registry = make_registry(pki_files, partner.url, retry=RETRY, tls_versions=("1.2",))
        assert_tls_failure(run(registry), ProtocolVersionError)


def test_plain_http_port(pki_files: PkiFiles) -> None:
    with RawServer() as plain:
        registry = make_registry(pki_files, plain.url().replace("http://", "https://"), retry=RETRY)
        assert_tls_failure(run(registry), PlainHttpPortError, "does not speak TLS", "WRONG_VERSION_NUMBER")


def test_connection_refused_is_classified_and_retried_per_policy(pki_files: PkiFiles) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run(make_registry(pki_files, f"https://localhost:{port}", retry=RETRY))
    error = result.error  # type: ignore[attr-defined]
    assert isinstance(error, ConnectRefusedError)
    assert f"localhost:{port}" in str(error) and "alias 'partner'" in str(error)
    # Not a TLS failure: connect errors are retried (the request never left).
    assert len(result.attempts) == 4  # type: ignore[attr-defined]


def test_tls_failures_are_never_before_sending_and_never_retriable(partner: PartnerServer,
                                                                   pki_files: PkiFiles) -> None:
    registry = make_registry(pki_files, partner.url, trust=[pki_files.other_ca_pem])
    context = registry.resolve("partner").ssl_context
    with httpx.Client(verify=context, trust_env=False) as client, pytest.raises(httpx.ConnectError) as caught:
        client.get(partner.url)
    assert not failed_before_sending(caught.value)
    assert isinstance(classify(caught.value, url=partner.url), ServerCertUntrustedError)


# --- classify on its own ---------------------------------------------------------------------------


def test_classify_without_an_ssl_cause() -> None:
    url = "https://partner.example:8443/x"
    cases = [
        (httpx.ConnectTimeout("t"), RequestTimeoutError, "connecting"),
        (httpx.ReadTimeout("t"), RequestTimeoutError, "waiting for the answer"),
        (httpx.WriteTimeout("t"), RequestTimeoutError, "sending"),
        (httpx.PoolTimeout("t"), RequestTimeoutError, "pool"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), ConnectionLostError, ""),
        (httpx.RemoteProtocolError("illegal header"), ProtocolError, "not valid HTTP"),
        (httpx.ReadError("x"), ConnectionLostError, "lost"),
        (ConnectionResetError(104, "reset"), ConnectionLostError, ""),
        (ConnectionRefusedError(111, "refused"), ConnectRefusedError, ""),
        (httpx.UnsupportedProtocol("ftp"), ProtocolError, ""),
    ]
    for exc, kind, words in cases:
        error = classify(exc, url=url)
        assert type(error) is kind, (exc, error)
        assert "partner.example:8443" in str(error)
        assert words in str(error)
    assert failed_before_sending(httpx.ConnectTimeout("t"))
    assert not failed_before_sending(httpx.ReadTimeout("t"))


def test_classify_finds_the_ssl_error_in_the_cause_chain() -> None:
    inner = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required")
    inner.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"  # type: ignore[misc]
    try:
        try:
            raise inner
        except ssl.SSLError as exc:
            raise httpx.ReadError("tls alert") from exc
    except httpx.ReadError as outer:
        error = classify(outer, url="https://h:1")
    assert isinstance(error, ClientCertNotSentError)
    assert isinstance(classify(error), TransportError) and classify(error) is error
