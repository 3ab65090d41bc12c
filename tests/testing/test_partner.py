"""The throwaway PKI and the embedded partner server, exercised over real TLS on loopback."""

from __future__ import annotations

import base64
import datetime
import email.utils
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import requests
import requests.adapters
import zeep
import zeep.exceptions
import zeep.transports
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree

from flowrun.testing import (
    CertifiedKey,
    PartnerServer,
    Pki,
    PkiFiles,
    issue_client,
    issue_server,
    make_pki,
    write_client_files,
)
from flowrun.testing._pki import load_identity_into

PASSWORD = "changeit"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return pki.write(tmp_path_factory.mktemp("pki"), keystore_password=PASSWORD)


@pytest.fixture
def partner(pki: Pki):
    with PartnerServer(pki) as server:
        yield server


def client_context(files: PkiFiles, *, cert: Path | None = None, key: Path | None = None,
                   with_identity: bool = True) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=files.root_pem.read_text())
    if with_identity:
        context.load_cert_chain(cert or files.client.cert_pem, key or files.client.key_pem, password=PASSWORD)
    return context


def client(partner: PartnerServer, context: ssl.SSLContext) -> httpx.Client:
    return httpx.Client(base_url=partner.url, verify=context)


# --- PKI --------------------------------------------------------------------------------------


def test_pki_files_hold_the_expected_identities(pki: Pki, files: PkiFiles) -> None:
    root = x509.load_pem_x509_certificates(files.root_pem.read_bytes())
    assert [c.subject for c in root] == [pki.root.certificate.subject]
    assert [c.subject for c in x509.load_pem_x509_certificates(files.chain_pem.read_bytes())] == [
        pki.intermediate.certificate.subject, pki.root.certificate.subject]

    client_chain = x509.load_pem_x509_certificates(files.client.cert_pem.read_bytes())
    leaf = client_chain[0]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "flowrun-demo-client"
    assert leaf.issuer == pki.intermediate.certificate.subject
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert len(client_chain) == 3

    server = pki.server.certificate
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]


def test_private_keys_on_disk_are_encrypted(files: PkiFiles) -> None:
    for key_file in (files.client.key_pem, files.server_key_pem):
        assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        serialization.load_pem_private_key(key_file.read_bytes(), password=PASSWORD.encode())
    assert files.client.jks.read_bytes()[:4] == b"\xfe\xed\xfe\xed"
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(files.client.pkcs12.read_bytes(), b"wrong")
    bundle = pkcs12.load_pkcs12(files.client.pkcs12.read_bytes(), PASSWORD.encode())
    assert bundle.key is not None and bundle.cert is not None
    assert bundle.cert.friendly_name == b"client"
    assert len(bundle.additional_certs) == 2


@pytest.mark.keytool
@pytest.mark.parametrize("store", ["jks", "pkcs12"])
def test_keytool_reads_the_client_keystores(files: PkiFiles, store: str) -> None:
    if shutil.which("keytool") is None:
        pytest.skip("keytool not installed")
    path = files.client.jks if store == "jks" else files.client.pkcs12
    listing = subprocess.run(
        ["keytool", "-list", "-v", "-keystore", str(path), "-storepass", PASSWORD],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "Alias name: client" in listing
    assert "PrivateKeyEntry" in listing
    assert "Certificate chain length: 3" in listing


def test_identity_loads_without_memfd_and_leaves_no_file(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "memfd_create")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_identity_into(context, pki.server)
    assert list(tmp_path.iterdir()) == []
    files = pki.write(tmp_path / "pki", keystore_password=PASSWORD)
    with PartnerServer(pki) as partner, client(partner, client_context(files)) as http:
        assert http.get("/accounts/3").status_code == 200
    assert [p.name for p in tmp_path.iterdir()] == ["pki"]


def test_client_variants(pki: Pki) -> None:
    expired = issue_client(pki, expired=True)
    assert expired.certificate.not_valid_after_utc < datetime.datetime.now(datetime.UTC)
    other = issue_client(pki, signed_by="other_ca")
    assert other.certificate.issuer == pki.other_ca.certificate.subject
    assert other.chain[-1] is pki.other_ca.certificate
    no_eku = issue_client(pki, eku=())
    with pytest.raises(x509.ExtensionNotFound):
        no_eku.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    with pytest.raises(ValueError, match="unknown extended key usage"):
        issue_client(pki, eku=("clientAuthh",))


# --- REST over mutual TLS ---------------------------------------------------------------------


def test_client_with_certificate_gets_the_balance(pki: Pki, files: PkiFiles, partner: PartnerServer) -> None:
    assert partner.url == f"https://localhost:{partner.port}"
    with client(partner, client_context(files)) as http:
        response = http.get("/accounts/42", params={"currency": "EUR"})
        via_base_path = http.get("/v2/accounts/42", params={"currency": "USD"})
        missing = http.get("/accounts/0")
    assert response.status_code == 200
    assert response.json() == {"account": "42", "balance": 1234.5, "currency": "EUR"}
    assert via_base_path.json()["currency"] == "USD"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "account_not_found"
    assert partner.client_certs == [pki.client.sha256]
    assert [r.client_cert_sha256 for r in partner.requests] == [pki.client.sha256] * 3
    assert partner.requests[1].path == "/v2/accounts/42"
    assert partner.requests[1].query == (("currency", "USD"),)


@pytest.mark.parametrize(("version", "error", "client_reason"), [
    ("1.3", httpx.ReadError, "CERTIFICATE_REQUIRED"),
    ("1.2", httpx.ConnectError, "HANDSHAKE_FAILURE"),
])
def test_without_client_certificate_the_handshake_fails(
    pki: Pki, files: PkiFiles, version: str, error: type[Exception], client_reason: str
) -> None:
    with (
        PartnerServer(pki, tls_versions=(version,)) as partner,
        client(partner, client_context(files, with_identity=False)) as http,
        pytest.raises(error, match=client_reason),
    ):
        http.get("/accounts/42")
    assert partner.handshakes == 0
    assert partner.handshake_failures == ["PEER_DID_NOT_RETURN_A_CERTIFICATE"]
    assert partner.requests == []


def test_optional_client_certificate(pki: Pki, files: PkiFiles) -> None:
    with (
        PartnerServer(pki, require_client_cert=False) as partner,
        client(partner, client_context(files, with_identity=False)) as http,
    ):
        echoed = http.get("/echo").json()
    assert echoed["client_cert_sha256"] is None
    assert partner.client_certs == []


@pytest.mark.parametrize(("variant", "server_reason"), [
    ("expired", "certificate has expired"),
    ("other_ca", "self-signed certificate in certificate chain"),
    ("server_eku", "unsuitable certificate purpose"),
    ("no_intermediate", "unable to get local issuer certificate"),
])
def test_bad_client_certificates_are_rejected(
    pki: Pki, files: PkiFiles, tmp_path: Path, variant: str, server_reason: str
) -> None:
    identity: CertifiedKey
    if variant == "expired":
        identity = issue_client(pki, expired=True)
    elif variant == "other_ca":
        identity = issue_client(pki, signed_by="other_ca")
    elif variant == "server_eku":
        identity = issue_client(pki, eku=("serverAuth",))
    else:
        identity = pki.client
    written = write_client_files(identity, tmp_path, password=PASSWORD, stem=variant)
    cert = written.cert_pem
    if variant == "no_intermediate":
        cert = tmp_path / "leaf-only.pem"
        cert.write_bytes(identity.certificate.public_bytes(serialization.Encoding.PEM))
    with (
        PartnerServer(pki) as partner,
        client(partner, client_context(files, cert=cert, key=written.key_pem)) as http,
        pytest.raises(httpx.ReadError),  # TLS 1.3: the rejection arrives on the first read
    ):
        http.get("/accounts/42")
    assert partner.handshakes == 0
    assert partner.handshake_failures == [f"CERTIFICATE_VERIFY_FAILED: {server_reason}"]


def test_server_identity_variant_with_wrong_hostname(pki: Pki, files: PkiFiles) -> None:
    wrong_host = issue_server(pki, hostnames=("partner.example",))
    with (
        PartnerServer(pki, server_identity=wrong_host) as partner,
        client(partner, client_context(files)) as http,
        pytest.raises(httpx.ConnectError, match="Hostname mismatch"),
    ):
        http.get("/accounts/42")


def test_rsa_pki_serves_mutual_tls(tmp_path: Path) -> None:
    rsa_pki = make_pki(key_type="rsa")
    rsa_files = rsa_pki.write(tmp_path, keystore_password=PASSWORD)
    with PartnerServer(rsa_pki) as partner, client(partner, client_context(rsa_files)) as http:
        assert http.get("/accounts/7").json()["account"] == "7"
    assert partner.client_certs == [rsa_pki.client.sha256]


def test_keep_alive_uses_one_handshake(files: PkiFiles, partner: PartnerServer) -> None:
    with client(partner, client_context(files)) as http:
        statuses = [http.get(f"/accounts/{n}").status_code for n in range(1, 21)]
    assert statuses == [200] * 20
    assert partner.handshakes == 1
    assert len(partner.requests) == 20


def test_echo_preserves_query_and_header_order(files: PkiFiles, partner: PartnerServer) -> None:
    headers = [("X-Beta", "1"), ("X-Alpha", "2"), ("X-Beta", "3")]
    with client(partner, client_context(files)) as http:
        echoed = http.post(
            # In the URL itself: httpx's params group duplicate keys together.
            "/echo/anything?b=1&a=2&b=3&empty=", headers=headers, content=b"\xff\x00binary",
        ).json()
        text = http.put("/v2/echo", json={"k": "v"}).json()
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/echo/anything"
    assert echoed["query"] == [["b", "1"], ["a", "2"], ["b", "3"], ["empty", ""]]
    assert [pair for pair in echoed["headers"] if pair[0].lower().startswith("x-")] == [
        ["X-Beta", "1"], ["X-Alpha", "2"], ["X-Beta", "3"]]
    assert base64.b64decode(echoed["body_base64"]) == b"\xff\x00binary"
    assert echoed["body_text"] is None
    assert text["body_text"] == '{"k":"v"}'
    assert text["content_type"] == "application/json"
    assert text["path"] == "/v2/echo"


def test_chunked_request_body_is_read(files: PkiFiles, partner: PartnerServer) -> None:
    def parts():
        yield b"first,"
        yield b"second"

    with client(partner, client_context(files)) as http:
        echoed = http.post("/echo", content=parts()).json()
    assert echoed["body_text"] == "first,second"
    assert partner.requests[0].header("transfer-encoding") == "chunked"


def test_transfer_status_redirect_xml_slow_large(files: PkiFiles, partner: PartnerServer) -> None:
    with client(partner, client_context(files)) as http:
        transfer = http.post("/v2/accounts/42/transfers", json={"amount": 12.5, "to": "7"})
        bad_transfer = http.post("/accounts/42/transfers", json={"amount": -1})
        status = http.get("/status/418")
        no_content = http.delete("/status/204")
        redirect = http.get("/redirect", params={"to": "/accounts/9", "status": "307"})
        followed = http.get("/redirect", params={"to": "/accounts/9"}, follow_redirects=True)
        xml = http.get("/xml", params={"account": "9"})
        slow = http.get("/slow", params={"ms": "5"})
        large = http.get("/large", params={"bytes": str(300_000)})
        unknown = http.get("/nowhere")
    assert transfer.status_code == 201
    assert transfer.json()["amount"] == 12.5
    assert transfer.json()["id"].startswith("tr-")
    assert bad_transfer.status_code == 400
    assert (status.status_code, status.json()) == (418, {"status": 418})
    assert (no_content.status_code, no_content.content) == (204, b"")
    assert redirect.status_code == 307
    assert redirect.headers["Location"] == "/accounts/9"
    assert followed.json()["account"] == "9"
    root = etree.fromstring(xml.content)
    assert root.tag == "{urn:flowrun:accounts:1}account"
    assert root.findtext("{urn:flowrun:accounts:1}id") == "9"
    assert slow.json() == {"slept_ms": 5}
    assert large.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in large.headers
    assert len(large.content) == 300_000
    assert unknown.status_code == 404
    assert partner.handshakes == 1


def test_flaky_and_retry_after_counters(files: PkiFiles, partner: PartnerServer) -> None:
    with client(partner, client_context(files)) as http:
        flaky = [http.get("/flaky/a", params={"fail": "2", "status": "502"}).status_code for _ in range(3)]
        other_key = http.get("/flaky/b", params={"fail": "1"}).status_code
        first = http.get("/retry-after/r", params={"fail": "1", "after": "3"})
        second = http.get("/retry-after/r", params={"fail": "1", "after": "3"})
        dated = http.get("/retry-after/d", params={"fail": "1", "after": "60", "form": "date"})
    assert flaky == [502, 502, 200]
    assert other_key == 503
    assert partner.attempts("flaky", "a") == 3
    assert partner.attempts("flaky", "b") == 1
    assert (first.status_code, first.headers["Retry-After"]) == (429, "3")
    assert second.status_code == 200
    assert partner.attempts("retry-after", "r") == 2
    assert email.utils.parsedate_to_datetime(dated.headers["Retry-After"]) is not None


def test_oauth_client_credentials_flow(files: PkiFiles, partner: PartnerServer) -> None:
    with client(partner, client_context(files)) as http:
        unauthorised = http.get("/protected/accounts/42")
        bad_secret = http.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "nope"})
        wrong_grant = http.post("/oauth/token", data={"grant_type": "password"})
        via_form = http.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"})
        via_basic = http.post("/v2/oauth/token", data={"grant_type": "client_credentials", "scope": "read"},
                              auth=("demo-client", "demo-secret"))
        token = via_form.json()["access_token"]
        protected = http.get("/protected/accounts/42", headers={"Authorization": f"Bearer {token}"})
        generic = http.get("/v2/protected/reports", headers={"Authorization": f"Bearer {token}"})
        forged = http.get("/protected/accounts/42", headers={"Authorization": "Bearer forged"})
    assert unauthorised.status_code == 401
    assert unauthorised.headers["WWW-Authenticate"].startswith("Bearer")
    assert (bad_secret.status_code, bad_secret.json()) == (401, {"error": "invalid_client"})
    assert wrong_grant.json() == {"error": "unsupported_grant_type"}
    assert via_form.json()["token_type"] == "Bearer"
    assert via_form.json()["expires_in"] > 0
    assert via_basic.json()["scope"] == "read"
    assert via_basic.json()["access_token"] != token
    assert partner.tokens_issued == 2
    assert protected.json() == {"account": "42", "balance": 1234.5, "currency": "EUR"}
    assert generic.json() == {"protected": True, "path": "/reports", "client_id": "demo-client"}
    assert forged.status_code == 401


def test_api_key_routes(files: PkiFiles, pki: Pki) -> None:
    with PartnerServer(pki, api_keys={"k-1"}) as partner, client(partner, client_context(files)) as http:
        missing = http.get("/secure/accounts/42")
        wrong = http.get("/secure/accounts/42", headers={"X-API-Key": "demo-api-key"})
        good = http.get("/v2/secure/accounts/42", headers={"X-API-Key": "k-1"})
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert good.json() == {"account": "42", "balance": 1234.5, "currency": "EUR"}


# --- SOAP -------------------------------------------------------------------------------------


class _ContextAdapter(requests.adapters.HTTPAdapter):
    """Lets requests (zeep's transport) use our SSLContext with the encrypted client key."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture
def soap_session(files: PkiFiles):
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(files.root_pem)
        session.mount("https://", _ContextAdapter(client_context(files)))
        yield session


@pytest.mark.parametrize("base", ["", "/v2"])
def test_zeep_calls_the_ledger(partner: PartnerServer, soap_session: requests.Session, base: str) -> None:
    transport = zeep.transports.Transport(session=soap_session)
    ledger = zeep.Client(f"{partner.url}{base}/ledger?wsdl", transport=transport)
    balance = ledger.service.GetBalance(account="42")
    assert balance.account == "42"
    assert balance.balance == Decimal("1234.50")
    assert balance.currency == "EUR"
    transfer = ledger.service.Transfer(**{"from": "42", "to": "7", "amount": Decimal("10.00")})
    assert transfer.id.startswith("LT-")
    assert transfer.status == "BOOKED"
    with pytest.raises(zeep.exceptions.Fault) as fault:
        ledger.service.GetBalance(account="0")
    assert fault.value.code == "soap:Client"
    assert "does not exist" in fault.value.message
    assert fault.value.detail.findtext(".//{urn:flowrun:ledger:1}code") == "ACCOUNT_NOT_FOUND"
    posted = [r for r in partner.requests if r.method == "POST"]
    assert {r.path for r in posted} == {f"{base}/ledger"}
    assert partner.handshakes == 1


def test_wsdl_copies_match(partner: PartnerServer, files: PkiFiles) -> None:
    package_dir = REPO / "flowrun" / "testing"
    for name in ("ledger.wsdl", "ledger.xsd"):
        assert (REPO / "steps" / name).read_bytes() == (package_dir / name).read_bytes()
    shipped = (REPO / "steps" / "ledger.wsdl").read_text()
    with client(partner, client_context(files)) as http:
        served = http.get("/ledger", params={"wsdl": ""})
        xsd = http.get("/ledger.xsd")
    assert served.status_code == 200
    assert 'location="https://localhost/ledger"' in shipped
    assert served.text == shipped.replace(
        'location="https://localhost/ledger"', f'location="{partner.url}/ledger"')
    assert xsd.text == (REPO / "steps" / "ledger.xsd").read_text()


def test_ledger_refuses_dtds_and_serves_hostile_replies(files: PkiFiles, partner: PartnerServer) -> None:
    envelope = (
        '<!DOCTYPE e [<!ENTITY x "42">]><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        '<soap:Body><GetBalance xmlns="urn:flowrun:ledger:1"><account>&x;</account></GetBalance>'
        "</soap:Body></soap:Envelope>"
    )
    with client(partner, client_context(files)) as http:
        refused = http.post("/ledger", content=envelope, headers={"Content-Type": "text/xml"})
        hostile = {kind: http.get("/ledger-hostile", params={"kind": kind}).content
                   for kind in ("xxe", "billion_laughs", "external_dtd")}
        dtd = http.get("/hostile.dtd")
        bad_kind = http.post("/ledger-hostile", params={"kind": "other"})
    assert refused.status_code == 500
    assert b"DTD_FORBIDDEN" in refused.content
    assert b'<!ENTITY xxe SYSTEM "file:///etc/hostname">' in hostile["xxe"]
    assert b"&lol9;" in hostile["billion_laughs"]
    assert f'SYSTEM "{partner.url}/hostile.dtd"'.encode() in hostile["external_dtd"]
    assert b"<!ENTITY remote" in dtd.content
    assert bad_kind.status_code == 400


# --- lifecycle --------------------------------------------------------------------------------


def test_server_shuts_down_cleanly_with_open_connections(pki: Pki, files: PkiFiles) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        with PartnerServer(pki) as partner, client(partner, client_context(files)) as http:
            port = partner.port
            silent.connect(("127.0.0.1", port))  # accepted but never shakes hands
            # Leaves a keep-alive connection open while the server stops.
            assert http.get("/accounts/1").status_code == 200
            partner.close()
        assert partner.handshakes == 1
        assert partner.handshake_failures == ["UNEXPECTED_EOF_WHILE_READING"]
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    with pytest.raises(RuntimeError):
        _ = partner.port


def test_wait_until_sees_recorded_failures(pki: Pki, files: PkiFiles) -> None:
    with PartnerServer(pki) as partner:
        with client(partner, client_context(files, with_identity=False)) as http, \
                pytest.raises(httpx.TransportError):
            http.get("/accounts/1")
        assert partner.wait_until(lambda p: len(p.handshake_failures) == 1)
        assert not partner.wait_until(lambda p: p.handshakes > 0, timeout=0.01)
