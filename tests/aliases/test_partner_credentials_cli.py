"""The new credential types from alias files through the command line: ``validate``, ``alias show``,
``alias test`` (the token call's outcome, never the token) and ``run`` of a flow against partners
that verify the JWT assertion, the password grant and the HMAC signature."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from flowrun._cli import main
from flowrun.testing import Pki, PkiFiles
from tests.aliases._setup import mtls_records, write_aliases
from tests.hostile.test_redaction import forms
from tests.transport import _auth_partner as p
from tests.transport._support import RawServer
from tests.transport.conftest import server_context

pytestmark = pytest.mark.usefixtures("secrets_env")


@pytest.fixture
def partner(pki: Pki) -> Iterator[tuple[p.AuthPartner, RawServer]]:
    auth = p.AuthPartner(pki.client.certificate, client_cert_sha256=pki.client.sha256)
    with RawServer(auth, ssl_context=server_context(pki)) as server:
        auth.port = server.port
        yield auth, server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


CREDENTIALS: dict[str, dict[str, Any]] = {
    "jwt": {"type": "oauth2_private_key_jwt", "client_id": p.CLIENT_ID, "scope": "accounts"},
    "bearer_grant": {"type": "oauth2_jwt_bearer", "issuer": p.ISSUER, "subject": p.SUBJECT},
    "password": {"type": "oauth2_password", "client_id": p.CLIENT_ID, "client_secret": {"env": "PW_CLIENT_SECRET"},
                 "username": p.USERNAME, "password": {"env": "PW_PASSWORD"}},
    "aws": {"type": "aws_sigv4", "service": p.AWS_SERVICE, "region": p.AWS_REGION,
            "access_key_id": {"env": "AWS_KEY_ID"}, "secret_access_key": {"env": "AWS_SECRET"},
            "session_token": {"env": "AWS_TOKEN"}},
    "signed": {"type": "hmac", "key": {"env": "HMAC_KEY"}, "key_id": p.HMAC_KEY_ID, "header": "X-Signature",
               "header_format": 'keyId="{key_id}",sig="{signature}"', "date_header": "X-Date",
               "date_format": "iso8601",
               "canonical": "{method}\n{path}\n{query}\n{date}\n{body_hash}\n{header.Content-Type}"},
}


def directory(tmp_path: Path, files: PkiFiles, port: int, credential: str, **extra: Any) -> Path:
    records = mtls_records(files, port=port)
    records[-1]["connection"]["credential"] = credential
    records[-1]["connection"]["base_path"] = ""
    fields = {**CREDENTIALS[credential], **extra}
    if fields["type"].startswith("oauth2_"):
        fields.setdefault("token_url", f"https://localhost:{port}/token")
    records.append({"kind": "credential", "name": credential, **fields})
    return write_aliases(tmp_path / "aliases", records)


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW_CLIENT_SECRET", p.CLIENT_SECRET)
    monkeypatch.setenv("PW_PASSWORD", p.PASSWORD)
    monkeypatch.setenv("HMAC_KEY", p.HMAC_KEY)
    monkeypatch.setenv("AWS_KEY_ID", p.AWS_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET", p.AWS_SECRET_KEY)
    monkeypatch.setenv("AWS_TOKEN", p.AWS_SESSION_TOKEN)


def write_flow(tmp_path: Path, path: str, method: str = "GET") -> Path:
    flow = {"name": "partner_call", "steps": [
        {"id": "call", "type": "rest", "alias": "partner", "method": method, "path": path,
         **({"body": {"json": {"amount": 5}}} if method != "GET" else {}),
         "response": {"expect_status": [200], "outputs": {"ok": "body.ok"}}}]}
    target = tmp_path / "flow.json"
    target.write_text(json.dumps(flow), encoding="utf-8")
    return target


@pytest.mark.parametrize(("credential", "issued"), [
    ("jwt", f"issued to client {p.CLIENT_ID}"),
    ("bearer_grant", f"issued to subject {p.SUBJECT}"),
    ("password", f"issued to user {p.USERNAME}"),
])
def test_flow_authenticates_over_mtls_then_calls_the_api(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         pki: Pki, pki_files: PkiFiles,
                                                         partner: tuple[p.AuthPartner, RawServer],
                                                         credential: str, issued: str) -> None:
    auth, server = partner
    aliases = directory(tmp_path, pki_files, server.port, credential)
    code, out, err = run(capsys, "run", str(write_flow(tmp_path, "/api/accounts")), "--aliases", str(aliases),
                         "--json")
    assert code == 0, out + err
    assert json.loads(out)["status"] == "passed"
    assert auth.verdicts == [("/token", issued), ("/api/accounts", "ok")]
    assert all(r.client_cert_sha256 == pki.client.sha256 for r in server.requests)
    for token in auth.tokens():
        assert token not in out + err


def test_flow_signs_with_hmac(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki_files: PkiFiles,
                              partner: tuple[p.AuthPartner, RawServer]) -> None:
    auth, server = partner
    aliases = directory(tmp_path, pki_files, server.port, "signed")
    code, out, err = run(capsys, "run", str(write_flow(tmp_path, "/hmac/payments", "POST")), "--aliases",
                         str(aliases), "-v")
    assert code == 0, out + err
    assert auth.verdicts == [("/hmac/payments", "ok")]
    assert server.requests[0].header("X-Signature") not in out + err


@pytest.mark.parametrize(("credential", "path"), [
    ("jwt", "/api/echo"), ("bearer_grant", "/api/echo"), ("password", "/api/echo"), ("signed", "/hmac/echo"),
    ("aws", "/sigv4/echo"),
])
def test_no_secret_token_assertion_or_signature_in_any_output(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, pki_files: PkiFiles,
        partner: tuple[p.AuthPartner, RawServer], credential: str, path: str) -> None:
    auth, server = partner
    aliases = directory(tmp_path, pki_files, server.port, credential)
    report = tmp_path / "report.xml"
    flow = str(write_flow(tmp_path, path, "POST"))
    code, out, err = run(capsys, "run", flow, "--aliases", str(aliases), "-v", "--show-body", "--report", str(report))
    assert code == 0, out + err
    code, json_out, json_err = run(capsys, "run", flow, "--aliases", str(aliases), "--json")
    assert code == 0, json_out + json_err
    assert auth.verdicts[-1] == (path, "ok")
    output = out + err + json_out + json_err + report.read_text(encoding="utf-8")
    assert "Content-Type" in output  # the echo is shown
    sent = [value for request in server.requests for name, value in request.headers
            if name.lower() in ("authorization", "x-signature", "x-amz-security-token")]
    sent += [value for request in server.requests if request.target == "/token"
             for name, value in parse_qsl(request.body.decode()) if name in ("client_assertion", "assertion",
                                                                            "password")]
    planted = [*auth.tokens(), *sent, p.CLIENT_SECRET, p.PASSWORD, p.HMAC_KEY, p.AWS_SECRET_KEY,
               p.AWS_SESSION_TOKEN, p.AWS_ACCESS_KEY]
    assert len(sent) >= 1
    leaked = [secret for secret in planted for form in forms(secret) if form in output]
    assert not leaked, output[:3000]


def test_alias_test_shows_the_token_call_without_the_token(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                           pki_files: PkiFiles,
                                                           partner: tuple[p.AuthPartner, RawServer]) -> None:
    auth, server = partner
    aliases = directory(tmp_path, pki_files, server.port, "jwt")
    code, out, _ = run(capsys, "alias", "test", "partner", "--aliases", str(aliases))
    assert code == 0, out
    assert f"token call          POST https://localhost:{server.port}/token (with our client certificate)" in out
    assert "ok: a token was issued, expires in 3600 s" in out
    code, out, _ = run(capsys, "alias", "test", "partner", "--aliases", str(aliases), "--json")
    report = json.loads(out)
    assert report["token"] == {"url": f"https://localhost:{server.port}/token", "ok": True,
                               "client_certificate": True, "expires_in_s": 3600.0, "error": None}
    assert len(auth.tokens()) == 2
    for token in auth.tokens():
        assert token not in out


def test_alias_test_reports_a_refused_token_call(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 pki_files: PkiFiles,
                                                 partner: tuple[p.AuthPartner, RawServer],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, server = partner
    monkeypatch.setenv("PW_PASSWORD", "wrong-password-Q7")
    aliases = directory(tmp_path, pki_files, server.port, "password")
    code, out, _ = run(capsys, "alias", "test", "partner", "--aliases", str(aliases))
    assert code == 1
    assert (f"FAILED [auth]: token endpoint https://localhost:{server.port}/token (credential 'password') "
            "answered HTTP 400: invalid_grant (bad user credentials)") in out
    assert "hint: check username, password" in out
    assert "wrong-password-Q7" not in out


def test_validate_and_show(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki_files: PkiFiles) -> None:
    aliases = directory(tmp_path, pki_files, 8443, "bearer_grant", kid="k-1", algorithm="ES256")
    code, out, err = run(capsys, "validate", "--aliases", str(aliases))
    assert code == 0, out + err
    code, out, _ = run(capsys, "alias", "show", "partner", "--aliases", str(aliases), "--json")
    (connection,) = json.loads(out)["connections"]
    shown = connection["credential"]
    assert shown == {"name": "bearer_grant", "type": "oauth2_jwt_bearer",
                     "token_url": "https://localhost:8443/token", "issuer": p.ISSUER, "subject": p.SUBJECT,
                     "kid": "k-1", "algorithm": "ES256"}


@pytest.mark.parametrize(("credential", "extra", "message"), [
    ("jwt", {"algorithm": "HS256"}, "at /4/algorithm: 'algorithm' must be one of \"RS256\""),
    ("jwt", {"client_secret": "x"}, "at /4/client_secret: unknown field 'client_secret'"),
    ("bearer_grant", {"assertion": {"env": "A"}}, "give exactly one of 'subject', 'assertion'"),
    ("signed", {"canonical": "{method}\n{body}"}, "canonical has an unknown placeholder {body}"),
    ("signed", {"date_format": "rfc822"}, "'date_format' must be one of \"http\", \"iso8601\", \"unix\""),
    ("jwt", {"algorithm": "PS256"}, "algorithm PS256 does not fit the signing key (it signs with ES256)"),
    ("jwt", {"keystore": "nowhere"}, "names keystore 'nowhere', which is not defined"),
])
def test_validate_refuses(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki_files: PkiFiles,
                          credential: str, extra: dict[str, Any], message: str) -> None:
    aliases = directory(tmp_path, pki_files, 8443, credential, **extra)
    code, out, err = run(capsys, "validate", "--aliases", str(aliases))
    assert code == 2, out + err
    assert message in out + err


def test_validate_names_the_aws_extra_when_botocore_is_missing(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path, pki_files: PkiFiles,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "botocore", None)  # what an environment without the extra sees
    aliases = directory(tmp_path, pki_files, 8443, "aws")
    code, out, err = run(capsys, "validate", "--aliases", str(aliases))
    assert code == 2, out + err
    assert "error[definition.missing_extra]" in out + err
    assert "credential 'aws' (aws_sigv4) needs botocore, which is not installed" in out + err
    assert "hint: install the extra: pip install 'flowrun[aws]'" in out + err
