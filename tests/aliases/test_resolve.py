"""Resolution: the port rule, environments, trust independent of SSL_* variables, secrets kept out."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flowrun._errors import (
    DefinitionError,
    KeyMaterialError,
    KeystorePasswordError,
    SecretUnavailableError,
    ServerCertUntrustedError,
    UnknownReferenceError,
)
from flowrun._tls._context import is_hashed_directory, system_trust_locations
from flowrun._transport._probe import probe
from flowrun.testing import PartnerServer, Pki, PkiFiles, issue_client, issue_server
from tests._binaries import require_binary
from tests.aliases._setup import (
    API_KEY,
    API_KEY_ENV,
    KEYSTORE_ENV,
    KEYSTORE_PASSWORD,
    ca_common_names,
    keystore,
    load,
    mtls_alias,
    mtls_records,
    profile,
    trust_cert,
    write_aliases,
    write_jks,
    write_pem,
)
from tests.tls.test_real_inputs import openssl

pytestmark = pytest.mark.usefixtures("secrets_env")


def plain_alias(name: str, **connection: Any) -> dict[str, Any]:
    return {"kind": "alias", "name": name, "connection": connection}


# --- the port rule ------------------------------------------------------------------------------


@pytest.fixture
def port_rule_registry(tmp_path: Path, pki_files: PkiFiles) -> Any:
    records = [
        keystore("client_ks", pki_files.client.jks),
        trust_cert("partner_root", pki_files.root_pem),
        profile(port=9443),
        mtls_alias("explicit", port=8443),
        {"kind": "alias", "name": "profile_port",
         "connection": {"url_builder": True, "host": "api.example", "mutual_authentication": True,
                        "protocol_profile": "partnerMTLS"}},
        plain_alias("https_default", url_builder=True, host="api.example"),
        plain_alias("http_default", url_builder=True, protocol="http", host="api.example", base_path="v1/"),
        {"kind": "alias", "name": "url_explicit",
         "connection": {"url": "https://api.example:7443/base/", "mutual_authentication": True,
                        "protocol_profile": "partnerMTLS"}},
        {"kind": "alias", "name": "url_profile_port",
         "connection": {"url": "https://api.example/base", "mutual_authentication": True,
                        "protocol_profile": "partnerMTLS"}},
        plain_alias("url_default", url="https://api.example/base"),
        plain_alias("url_http", url="http://api.example:8080"),
    ]
    return load(write_aliases(tmp_path / "aliases", records))


@pytest.mark.parametrize(("alias", "port", "base_url"), [
    ("explicit", 8443, "https://localhost:8443/v2"),          # override default port wins over the profile
    ("profile_port", 9443, "https://api.example:9443"),       # mutual authentication: the profile's port
    ("https_default", 443, "https://api.example"),            # neither: the scheme's default
    ("http_default", 80, "http://api.example/v1"),
    ("url_explicit", 7443, "https://api.example:7443/base"),  # url mode: a port in the url wins too
    ("url_profile_port", 9443, "https://api.example:9443/base"),
    ("url_default", 443, "https://api.example/base"),
    ("url_http", 8080, "http://api.example:8080"),
])
def test_port_rule(port_rule_registry: Any, alias: str, port: int, base_url: str) -> None:
    resolved = port_rule_registry.resolve(alias)
    assert resolved.port == port
    assert resolved.base_url == base_url


def test_http_alias_has_no_ssl_context(port_rule_registry: Any) -> None:
    assert port_rule_registry.resolve("http_default").ssl_context is None
    assert port_rule_registry.resolve("https_default").ssl_context is not None


def test_timeouts_and_headers_pass_through(tmp_path: Path, pki_files: PkiFiles) -> None:
    records = mtls_records(pki_files, port=8443)
    records[-1]["connection"].update(timeout_s=45, connect_timeout_s=3, headers={"Accept": "application/json"})
    resolved = load(write_aliases(tmp_path, records)).resolve("partner")
    assert (resolved.connect_timeout_s, resolved.read_timeout_s) == (3, 45)
    assert resolved.headers == {"Accept": "application/json"}


# --- environments -------------------------------------------------------------------------------


@pytest.fixture
def multi_env(tmp_path: Path, pki: Pki, pki_files: PkiFiles) -> tuple[Path, str]:
    """Alias ``bank`` with a dev and a prod connection, each with its own client certificate."""
    prod_identity = issue_client(pki, common_name="prod-client")
    prod_jks = write_jks(tmp_path / "keystores" / "prod.jks", prod_identity)
    connection = {"url_builder": True, "base_path": "/v2", "mutual_authentication": True}
    records = [
        keystore("dev_ks", pki_files.client.jks),
        keystore("prod_ks", prod_jks),
        trust_cert("partner_root", pki_files.root_pem),
        profile("devMTLS", "dev_ks"),
        profile("prodMTLS", "prod_ks"),
        {"kind": "alias", "name": "bank", "connections": {
            "dev": {**connection, "host": "dev.bank.example", "protocol_profile": "devMTLS"},
            "prod": {**connection, "host": "api.bank.example", "port": 8443, "protocol_profile": "prodMTLS"},
        }},
    ]
    return write_aliases(tmp_path / "aliases", records), prod_identity.sha256


def test_env_selects_the_connection_and_its_certificate(multi_env: tuple[Path, str], pki: Pki) -> None:
    directory, prod_sha = multi_env
    registry = load(directory)
    dev, prod = registry.resolve("bank", env="dev"), registry.resolve("bank", env="prod")
    assert (dev.env, dev.base_url, dev.client_cert_sha256) == ("dev", "https://dev.bank.example/v2",
                                                               pki.client.sha256)
    assert (prod.env, prod.base_url, prod.client_cert_sha256) == ("prod", "https://api.bank.example:8443/v2",
                                                                  prod_sha)
    assert dev.ssl_context is not prod.ssl_context


def test_without_env_and_default_the_error_lists_the_environments(multi_env: tuple[Path, str]) -> None:
    registry = load(multi_env[0])
    with pytest.raises(DefinitionError, match=r"one connection per environment \(dev, prod\)") as caught:
        registry.resolve("bank")
    assert "--env" in caught.value.hint
    assert caught.value.file is not None and caught.value.file.endswith("partner.json")


def test_unknown_env_suggests_the_close_one(multi_env: tuple[Path, str]) -> None:
    with pytest.raises(DefinitionError, match="did you mean 'prod'"):
        load(multi_env[0]).resolve("bank", env="prd")


def test_default_env_is_used_without_env(multi_env: tuple[Path, str]) -> None:
    directory, prod_sha = multi_env
    path = directory / "partner.json"
    path.write_text(path.read_text().replace('"name": "bank",', '"name": "bank", "default_env": "prod",'))
    registry = load(directory)
    assert registry.resolve("bank").client_cert_sha256 == prod_sha
    assert registry.resolve("bank", env="dev").env == "dev"


def test_unknown_alias_suggests_the_close_one(multi_env: tuple[Path, str]) -> None:
    with pytest.raises(UnknownReferenceError, match="did you mean 'bank'"):
        load(multi_env[0]).resolve("bnak")


# --- trust: the profile's, plus the system's, never SSL_CERT_FILE & co -------------------------------


@pytest.fixture
def bogus_ca_env(monkeypatch: pytest.MonkeyPatch, pki_files: PkiFiles, tmp_path: Path) -> None:
    """Point every CA variable at the unrelated CA (the one the untrusted partner uses)."""
    bogus_dir = tmp_path / "bogus-ca-dir"
    bogus_dir.mkdir()
    (bogus_dir / "other-ca.pem").write_bytes(pki_files.other_ca_pem.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(pki_files.other_ca_pem))
    monkeypatch.setenv("SSL_CERT_DIR", str(bogus_dir))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki_files.other_ca_pem))


@pytest.mark.usefixtures("bogus_ca_env")
@pytest.mark.parametrize("use_system_trust", [False, True])
def test_profile_trust_ignores_ssl_cert_variables(tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                                                  use_system_trust: bool) -> None:
    untrusted_server = issue_server(pki, signed_by="other_ca")
    with PartnerServer(pki) as good, PartnerServer(pki, server_identity=untrusted_server) as bogus:
        records = mtls_records(pki_files, port=good.port, profile_extra={"use_system_trust": use_system_trust})
        records.append(mtls_alias("bogus", port=bogus.port))
        registry = load(write_aliases(tmp_path, records))
        resolved = registry.resolve("partner")
        assert resolved.ssl_context is not None
        assert "flowrun test root CA" in ca_common_names(resolved.ssl_context)
        assert "flowrun unrelated CA" not in ca_common_names(resolved.ssl_context)

        ok = probe(resolved, path="/accounts/7", method="GET")
        refused = probe(registry.resolve("bogus"), path="/accounts/7", method="GET")

    assert ok.error is None and ok.status == 200
    assert isinstance(refused.error, ServerCertUntrustedError)


@pytest.mark.usefixtures("bogus_ca_env")
def test_plain_https_alias_ignores_ssl_cert_variables(tmp_path: Path, pki: Pki) -> None:
    """Without a profile the trust is the system store alone, whatever SSL_CERT_FILE says."""
    untrusted_server = issue_server(pki, signed_by="other_ca")
    with PartnerServer(pki, server_identity=untrusted_server, require_client_cert=False) as bogus:
        records = [plain_alias("public", url=f"https://localhost:{bogus.port}")]
        result = probe(load(write_aliases(tmp_path, records)).resolve("public"))
    assert isinstance(result.error, ServerCertUntrustedError)


def test_system_trust_off_means_only_the_profile_certs(tmp_path: Path, pki_files: PkiFiles) -> None:
    resolved = load(write_aliases(tmp_path, mtls_records(pki_files, port=8443))).resolve("partner")
    assert resolved.ssl_context is not None
    assert ca_common_names(resolved.ssl_context) == {"flowrun test root CA"}


def test_system_trust_on_reads_openssl_compiled_in_store(tmp_path: Path, pki_files: PkiFiles,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cafile, capath = system_trust_locations()
    if cafile is None:
        pytest.skip("OpenSSL's compiled-in CA file does not exist on this machine")
    system_count = len(ssl.create_default_context(cafile=cafile).get_ca_certs())
    if system_count == 0:
        pytest.skip("the system CA file is empty")
    monkeypatch.setenv("SSL_CERT_FILE", str(pki_files.other_ca_pem))
    records = mtls_records(pki_files, port=8443, profile_extra={"use_system_trust": True})
    resolved = load(write_aliases(tmp_path, records)).resolve("partner")
    assert resolved.ssl_context is not None
    ca_certs = resolved.ssl_context.get_ca_certs()
    if capath is not None and is_hashed_directory(capath):
        # Looked up at verification time: none of the system CAs is parsed up front.
        assert len(ca_certs) == 1
    else:
        assert len(ca_certs) == system_count + 1
    assert "flowrun unrelated CA" not in ca_common_names(resolved.ssl_context)


def _system_store(directory: Path, *certificates: Path, hashed: bool) -> Path:
    directory.mkdir()
    for certificate in certificates:
        shutil.copy(certificate, directory / certificate.name)
    if hashed:
        subprocess.run([require_binary("openssl", "openssl"), "rehash", str(directory)], check=True,
                       capture_output=True)
    return directory


def test_a_hashed_system_directory_is_searched_when_a_partner_is_verified(
        tmp_path: Path, pki: Pki, pki_files: PkiFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    system = _system_store(tmp_path / "system", pki_files.root_pem, hashed=True)
    monkeypatch.setattr("flowrun._tls._context.system_trust_locations", lambda: (None, str(system)))
    untrusted_server = issue_server(pki, signed_by="other_ca")
    with PartnerServer(pki) as good, PartnerServer(pki, server_identity=untrusted_server) as bogus:
        records = [keystore("client_ks", pki_files.client.jks), profile(trust=(), use_system_trust=True),
                   mtls_alias(port=good.port), mtls_alias("bogus", port=bogus.port)]
        registry = load(write_aliases(tmp_path / "aliases", records))
        resolved = registry.resolve("partner")
        assert resolved.ssl_context is not None
        assert resolved.ssl_context.get_ca_certs() == []  # nothing read before a verification needs it
        ok = probe(resolved, path="/accounts/7", method="GET")
        refused = probe(registry.resolve("bogus"), path="/accounts/7", method="GET")
    assert ok.error is None and ok.status == 200
    assert isinstance(refused.error, ServerCertUntrustedError)


def test_without_a_hashed_directory_the_system_bundle_file_is_read(
        tmp_path: Path, pki: Pki, pki_files: PkiFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    unhashed = _system_store(tmp_path / "system", pki_files.other_ca_pem, hashed=False)
    monkeypatch.setattr("flowrun._tls._context.system_trust_locations",
                        lambda: (str(pki_files.root_pem), str(unhashed)))
    with PartnerServer(pki) as server:
        records = [keystore("client_ks", pki_files.client.jks), profile(trust=(), use_system_trust=True),
                   mtls_alias(port=server.port)]
        resolved = load(write_aliases(tmp_path / "aliases", records)).resolve("partner")
        assert resolved.ssl_context is not None
        assert ca_common_names(resolved.ssl_context) == {"flowrun test root CA"}
        result = probe(resolved, path="/accounts/7", method="GET")
    assert result.error is None and result.status == 200


def test_context_defaults_are_strict(tmp_path: Path, pki_files: PkiFiles) -> None:
    records = mtls_records(pki_files, port=8443, profile_extra={"tls_versions": ["1.3"]})
    registry = load(write_aliases(tmp_path, records))
    strict = registry.resolve("partner").ssl_context
    assert strict is not None
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    assert strict.minimum_version == ssl.TLSVersion.TLSv1_3


# --- secrets stay out of reprs and errors --------------------------------------------------------


def test_secrets_never_in_reprs(tmp_path: Path, pki_files: PkiFiles) -> None:
    records = mtls_records(pki_files, port=8443)
    records.append({"kind": "credential", "name": "key", "type": "api_key", "header": "X-API-Key",
                    "key": {"env": API_KEY_ENV}})
    records.append({"kind": "credential", "name": "pw", "type": "basic", "username": "u",
                    "password": "literal-pw-Kx3"})
    records[-3]["connection"]["credential"] = "key"
    registry = load(write_aliases(tmp_path, records))
    resolved = registry.resolve("partner")
    text = repr(registry.records) + repr(resolved) + repr(registry.records.credentials["pw"])
    for secret in (KEYSTORE_PASSWORD, API_KEY, "literal-pw-Kx3"):
        assert secret not in text
    assert API_KEY_ENV in text  # the reference is shown, the value is not


def test_wrong_keystore_password_error_names_no_password(tmp_path: Path, pki_files: PkiFiles,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYSTORE_ENV, "wrong-password-Hh2")
    registry = load(write_aliases(tmp_path, mtls_records(pki_files, port=8443)))
    with pytest.raises(KeystorePasswordError) as caught:
        registry.resolve("partner")
    shown = str(caught.value) + caught.value.hint + repr(caught.value)
    assert "wrong-password-Hh2" not in shown and KEYSTORE_PASSWORD not in shown
    assert caught.value.file is not None


def test_unset_secret_names_the_variable_and_the_record(tmp_path: Path, pki_files: PkiFiles,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEYSTORE_ENV)
    directory = write_aliases(tmp_path, mtls_records(pki_files, port=8443))
    with pytest.raises(SecretUnavailableError) as caught:
        load(directory).resolve("partner")
    assert KEYSTORE_ENV in caught.value.message
    assert (caught.value.file, caught.value.pointer) == (str(directory / "partner.json"), "/0/password")


def test_secret_file_is_read_at_resolution(tmp_path: Path, pki_files: PkiFiles) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "keystore.pw").write_text(KEYSTORE_PASSWORD + "\n")
    records = mtls_records(pki_files, port=8443)
    records[0]["password"] = {"file": "../secrets/keystore.pw"}
    resolved = load(write_aliases(tmp_path / "aliases", records)).resolve("partner")
    assert resolved.client_certificate is not None


def test_pkcs12_and_pem_keystores_resolve_to_the_same_identity(tmp_path: Path, pki: Pki,
                                                               pki_files: PkiFiles) -> None:
    records = mtls_records(pki_files, port=8443)
    records[0] = {"kind": "keystore", "name": "client_ks", "file": str(pki_files.client.pkcs12),
                  "password": {"env": KEYSTORE_ENV}}
    records.append({"kind": "keystore", "name": "pem_ks", "type": "pem", "file": str(pki_files.client.cert_pem),
                    "key_file": str(pki_files.client.key_pem), "password": {"env": KEYSTORE_ENV}})
    records.append(profile("pemMTLS", "pem_ks"))
    records.append(mtls_alias("pem", port=8443, profile_name="pemMTLS"))
    registry = load(write_aliases(tmp_path, records))
    assert registry.resolve("partner").client_cert_sha256 == pki.client.sha256
    assert registry.resolve("pem").client_cert_sha256 == pki.client.sha256


def _pem_records(pki_files: PkiFiles, key_file: Path) -> list[dict[str, Any]]:
    records = mtls_records(pki_files, port=8443)
    records[0] = {"kind": "keystore", "name": "client_ks", "type": "pem", "file": str(pki_files.client.cert_pem),
                  "key_file": str(key_file)}
    return records


def test_pem_key_file_of_another_certificate_names_both_files(tmp_path: Path, pki_files: PkiFiles) -> None:
    other = tmp_path / "other.key"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(other))
    other.chmod(0o600)
    with pytest.raises(KeyMaterialError) as caught:
        load(write_aliases(tmp_path / "aliases", _pem_records(pki_files, other))).resolve("partner")
    error = caught.value
    assert error.code == "keystore.key_mismatch"
    assert f"the private key in {other} does not belong to the certificate" in error.message
    assert str(pki_files.client.cert_pem) in error.message
    assert "keytool" not in (error.hint or "") and "key file" in (error.hint or "")


def test_damaged_pem_key_file_is_named_not_the_certificate_file(tmp_path: Path, pki_files: PkiFiles) -> None:
    damaged = tmp_path / "damaged.key"
    damaged.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    damaged.chmod(0o600)
    with pytest.raises(KeyMaterialError) as caught:
        load(write_aliases(tmp_path / "aliases", _pem_records(pki_files, damaged))).resolve("partner")
    assert f"the private key in {damaged} cannot be decoded" in caught.value.message
    assert str(pki_files.client.cert_pem) not in caught.value.message


def test_wrong_passphrase_of_a_pem_key_file_points_at_openssl_not_keytool(
        tmp_path: Path, pki_files: PkiFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYSTORE_ENV, "not-the-passphrase")
    records = _pem_records(pki_files, pki_files.client.key_pem)
    records[0]["password"] = {"env": KEYSTORE_ENV}
    with pytest.raises(KeyMaterialError) as caught:
        load(write_aliases(tmp_path / "aliases", records)).resolve("partner")
    assert caught.value.code == "keystore.wrong_key_password"
    assert f"wrong password for the private key in {pki_files.client.key_pem}" in caught.value.message
    hint = caught.value.hint or ""
    assert "keytool" not in hint and "openssl pkey -in KEY -noout" in hint


def test_trust_cert_inline_pem(tmp_path: Path, pki: Pki, pki_files: PkiFiles) -> None:
    records = mtls_records(pki_files, port=8443)
    records[1] = {"kind": "trust_store_cert", "name": "partner_root",
                  "pem": write_pem(tmp_path / "root.pem", pki.root).read_text()}
    resolved = load(write_aliases(tmp_path / "aliases", records)).resolve("partner")
    assert resolved.ssl_context is not None
    assert ca_common_names(resolved.ssl_context) == {"flowrun test root CA"}


@pytest.mark.parametrize("broken", ["keystore", "trust_store_cert"])
def test_key_material_errors_point_at_the_record_and_name_the_file(tmp_path: Path, pki_files: PkiFiles,
                                                                   broken: str) -> None:
    missing = tmp_path / "gone" / "missing.bin"
    records = mtls_records(pki_files, port=8443)
    index = 0 if broken == "keystore" else 1
    records[index]["file"] = str(missing)
    directory = write_aliases(tmp_path / "aliases", records)
    registry = load(directory)
    with pytest.raises(KeyMaterialError) as caught:
        registry.resolve("partner")
    error = caught.value
    record = registry.records.of_kind(broken)[records[index]["name"]]
    assert (error.file, error.pointer) == (str(directory / "partner.json"), f"/{index}")
    assert error.line == record.origin.line and error.line is not None and error.line > 1
    assert str(missing) in error.message
    assert f"{broken} '{records[index]['name']}'" in error.message
