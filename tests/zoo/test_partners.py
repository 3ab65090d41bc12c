"""Every zoo partner, every case, TLS 1.3 and TLS 1.2: ``flowrun alias test`` and a REST step of
``flowrun run`` give the same, right error code and hint, whether the partner refuses with a TLS
alert, an HTTP page, or a silent close. ``docs/partners.md`` is the table of what was observed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from flowrun._cli import main
from tests.zoo._servers import NGINX_CONFIGS, VERSIONS, Partner
from tests.zoo._setup import CASES, ClientStores, write_case
from tests.zoo.conftest import Zoo

pytestmark = pytest.mark.usefixtures("secrets_env", "fresh_tls_cache")

PARTNERS = (*NGINX_CONFIGS, "apache", "haproxy", "jsse", "openssl")

# What flowrun must report (None: the request got through and the step passes).
EXPECTED: dict[str, str | None] = {
    "good": None,
    "client_ca_untrusted": "tls.client_cert_rejected",
    "no_client_cert": "tls.client_cert_not_sent",
    "client_cert_expired": "tls.client_cert_expired",
    "server_untrusted": "tls.server_untrusted",
    "wrong_host": "tls.hostname_mismatch",
    "version_mismatch": "tls.protocol_version",
}
# nginx with optional_no_ca hands the verdict to the application: an unknown CA or no certificate
# gets through (the application sees $ssl_client_verify); an expired one is still refused.
OPTIONAL_NO_CA = {"client_ca_untrusted": None, "no_client_cert": None}
# What the application behind optional_no_ca is told, per case.
CLIENT_VERIFY = {"good": "SUCCESS", "client_ca_untrusted": "FAILED:", "no_client_cert": "NONE"}
# The words that show the partner's own answer made it into the message.
NGINX_WORDS = {
    "nginx": {"client_ca_untrusted": "The SSL certificate error", "client_cert_expired": "The SSL certificate error",
              "no_client_cert": "No required SSL certificate was sent"},
    "nginx_optional_no_ca": {"client_cert_expired": "The SSL certificate error"},
    "nginx_error_page": {"client_ca_untrusted": "HTTP 495", "client_cert_expired": "HTTP 495",
                         "no_client_cert": "HTTP 496"},
}


def expected(partner: str, case: str) -> str | None:
    if partner == "nginx_optional_no_ca" and case in OPTIONAL_NO_CA:
        return OPTIONAL_NO_CA[case]
    return EXPECTED[case]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(list(argv))
    out, _ = capsys.readouterr()
    return code, json.loads(out)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("partner_name", PARTNERS)
def test_alias_test_and_rest_step_agree(zoo: Zoo, client_stores: ClientStores, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                        partner_name: str, case: str, version: str) -> None:
    partner = zoo.partner(partner_name)
    outputs = {"verify": "body.verify"} if partner_name.startswith("nginx") else None
    setup = write_case(tmp_path, case, partner.ports, version, client_stores, outputs=outputs)
    if not setup.mutual:
        # An alias without mutual TLS trusts the system store only: the partner's root stands in for it.
        monkeypatch.setattr("flowrun._tls._context.system_trust_locations",
                            lambda: (str(client_stores.server_root), None))
    # s_server -www answers GET only (a HEAD waits for ever).
    method = ("--method", "GET") if partner_name == "openssl" else ()
    code, probe = cli(capsys, "alias", "test", "partner", "--aliases", str(setup.aliases), "--json",
                      *setup.connect_to, *method)
    run_code, run = cli(capsys, "run", str(setup.flow), "--aliases", str(setup.aliases), "--json",
                        *setup.connect_to)
    step = run["steps"][0]
    want = expected(partner_name, case)
    context = f"{partner_name} {case} TLS {version}\nalias test: {probe}\nrun: {run}\n{partner.log_tail()}"

    if want is None:
        assert (code, probe["ok"], probe["http_status"]) == (0, True, 200), context
        assert (run_code, step["status"], step["http_status"]) == (0, "passed", 200), context
        assert probe["tls"]["version"] == f"TLSv{version}", context
        if partner_name == "nginx_optional_no_ca":
            assert run["outputs"]["verify"].startswith(CLIENT_VERIFY[case]), context
        return
    error = probe["error"]
    assert (code, probe["ok"], error["code"]) == (1, False, want), context
    assert (run_code, step["status"], step["error"]["code"]) == (1, "failed", want), context
    assert step["error"].get("hint") == error.get("hint"), context
    assert "alias 'partner'" in error["message"], context
    word = NGINX_WORDS.get(partner_name, {}).get(case)
    if word is not None:
        assert word in error["message"] and word in step["error"]["message"], context
    _check_details(partner, case, version, error, client_stores, context)


def _check_details(partner: Partner, case: str, version: str, error: dict[str, Any], stores: ClientStores,
                   context: str) -> None:
    message = error["message"]
    if case == "client_ca_untrusted":
        assert "CN=flowrun-demo-client" in message, context  # the certificate we sent, named
    elif case == "client_cert_expired":
        assert "CN=zoo-expired" in message and "expired" in message, context
    elif case == "no_client_cert":
        assert "none is configured" in message or "no client certificate is configured" in message, context
    elif case == "server_untrusted":
        # The diagnostic handshake read what the partner sends: leaf and intermediate (most), or the
        # root too (Java's keystore chain). Either way the message names the root and the hint asks for it.
        root = x509.load_pem_x509_certificate(stores.server_root.read_bytes())
        subject, hint = root.subject.rfc4514_string(), error["hint"]
        if partner.name == "jsse":
            assert f"it sent 3 certificates, up to the self-signed root '{subject}'" in message, context
            fingerprint = root.fingerprint(hashes.SHA256()).hex(":").upper()
            assert hint.startswith(f"add the root '{subject}' (SHA-256 {fingerprint}; "), context
        else:
            assert f"it sent 2 certificates, the last one issued by '{subject}', which it did not send" in message, \
                context
            assert hint.startswith(f"add '{subject}' (the issuer of the last certificate the partner sent"), context
    elif case == "wrong_host":
        assert "partner.zoo.example" in message and "--connect-to" in message, context
    elif case == "version_mismatch":
        other = next(v for v in VERSIONS if v != version)
        assert f"refuses TLS {version}" in message and f"accepts TLS {other}" in message, context
        assert "tls_versions" in error["hint"], context
