"""Key material OpenSSL refuses, made by keytool and openssl: a finding in ``keystore inspect`` and a
specific error (never a traceback, never an ``ssl.SSLError``) from ``alias test``, ``run`` and
``validate``, and from the SSL context factory itself."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from flowrun._cli import main
from flowrun._errors import KeyAlgorithmError, KeystorePasswordError, KeyTooSmallError, KeyUnusableError
from flowrun._tls._context import build_ssl_context
from flowrun._tls._model import ClientIdentity
from flowrun._tls._read import load_keystore_file, select_identity
from tests._binaries import require_binary
from tests._keytool import run_keytool

PASSWORD = "refused-store-pw"


def _keytool_store(directory: Path, name: str, *keyalg: str, storetype: str = "PKCS12") -> Path:
    path = directory / name
    extra = [] if storetype == "PKCS12" else ["-keypass", PASSWORD]
    run_keytool("-genkeypair", "-alias", "client", *keyalg, "-dname", "CN=refused,O=Flowrun Test",
                "-validity", "400", "-keystore", str(path), "-storetype", storetype, "-storepass", PASSWORD,
                *extra)
    path.chmod(0o600)
    return path


def _openssl(*args: str) -> None:
    subprocess.run([require_binary("openssl", "openssl"), *args], check=True, capture_output=True, timeout=120)


def _openssl_pem(directory: Path, name: str, *newkey: str) -> Path:
    key, cert, out = directory / f"{name}.key", directory / f"{name}.crt", directory / f"{name}.pem"
    _openssl("req", "-x509", *newkey, "-nodes", "-keyout", str(key), "-subj", "/CN=refused", "-days", "400",
             "-out", str(cert))
    out.write_bytes(key.read_bytes() + cert.read_bytes())
    out.chmod(0o600)
    return out


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each store with the finding code inspect gives and the error code resolution gives."""
    directory = tmp_path_factory.mktemp("refused")
    dsa_key = directory / "dsa.key"
    _openssl("dsaparam", "-out", str(directory / "dsa-params.pem"), "2048")
    _openssl("gendsa", "-out", str(dsa_key), str(directory / "dsa-params.pem"))
    dsa_pem = directory / "dsa-openssl.pem"
    _openssl("req", "-x509", "-key", str(dsa_key), "-subj", "/CN=refused", "-days", "400",
             "-out", str(directory / "dsa.crt"))
    dsa_pem.write_bytes(dsa_key.read_bytes() + (directory / "dsa.crt").read_bytes())
    dsa_pem.chmod(0o600)
    return {
        "rsa1024-keytool": _keytool_store(directory, "rsa1024.p12", "-keyalg", "RSA", "-keysize", "1024"),
        "rsa1024-jks": _keytool_store(directory, "rsa1024.jks", "-keyalg", "RSA", "-keysize", "1024",
                                      storetype="JKS"),
        "pss-keytool": _keytool_store(directory, "pss.p12", "-keyalg", "RSASSA-PSS", "-keysize", "2048"),
        "dsa-keytool": _keytool_store(directory, "dsa.p12", "-keyalg", "DSA", "-keysize", "2048"),
        "dsa-jks": _keytool_store(directory, "dsa.jks", "-keyalg", "DSA", "-keysize", "2048", storetype="JKS"),
        "pss-openssl": _openssl_pem(directory, "pss", "-newkey", "rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048"),
        "secp256k1-openssl": _openssl_pem(directory, "k1", "-newkey", "ec", "-pkeyopt",
                                          "ec_paramgen_curve:secp256k1"),
        "dsa-openssl": dsa_pem,
    }


# (finding code from inspect, error code from resolution)
EXPECTED = {
    "rsa1024-keytool": ("key.too_small", "keystore.key_too_small"),
    "rsa1024-jks": ("key.too_small", "keystore.key_too_small"),
    "pss-keytool": ("key.rsa_pss", "keystore.key_algorithm"),
    "dsa-keytool": ("key.dsa", "keystore.key_algorithm"),
    "dsa-jks": ("key.dsa", "keystore.key_algorithm"),
    "pss-openssl": ("key.rsa_pss", "keystore.key_algorithm"),
    "secp256k1-openssl": ("key.uncommon_curve", "keystore.key_algorithm"),
    "dsa-openssl": ("key.dsa", "keystore.key_algorithm"),
}


@pytest.fixture
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFUSED_PW", PASSWORD)


@pytest.mark.usefixtures("_password")
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_inspect_reports_a_finding_of_severity_error(case: str, refused: dict[str, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["keystore", "inspect", str(refused[case]), "--password-env", "REFUSED_PW", "--json"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert captured.err == ""
    findings = {f["code"]: f for f in json.loads(captured.out)["findings"]}
    finding = findings[EXPECTED[case][0]]
    assert finding["severity"] == "error"
    assert "make a new key pair" in finding["message"]


def _aliases(directory: Path, store: Path, port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    records = [
        {"kind": "keystore", "name": "old_client", "file": str(store), "password": {"env": "REFUSED_PW"}},
        {"kind": "protocol_profile", "name": "oldMTLS", "keystore": "old_client"},
        {"kind": "alias", "name": "partner", "connection": {"url": f"https://127.0.0.1:{port}/v1",
                                                             "mutual_authentication": True,
                                                             "protocol_profile": "oldMTLS"}},
    ]
    (directory / "partner.json").write_text(json.dumps(records))
    return directory


@pytest.mark.usefixtures("_password")
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_alias_test_run_and_validate_give_the_specific_error(case: str, refused: dict[str, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    aliases = _aliases(tmp_path / "aliases", refused[case], 9)
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "f", "steps": [{"id": "s", "type": "rest", "alias": "partner",
                                                          "method": "GET", "path": "/x"}]}))
    error_code = EXPECTED[case][1]
    for argv in (["alias", "test", "partner"], ["run", str(flow)], ["validate", str(flow)]):
        code = main([*argv, "--aliases", str(aliases)])
        captured = capsys.readouterr()
        assert code in (1, 2), (argv, captured)
        text = captured.out + captured.err
        assert error_code in text, (argv, text)
        assert "Traceback" not in text and "SSLError" not in text
        assert "keystore 'old_client'" in text
        assert PASSWORD not in text


@pytest.mark.parametrize("case", ["rsa1024-keytool", "pss-keytool", "secp256k1-openssl", "dsa-openssl"])
def test_the_context_factory_raises_flowrun_errors_only(case: str, refused: dict[str, Path]) -> None:
    contents = load_keystore_file(refused[case], password=PASSWORD)
    identity = select_identity(contents, key_alias=None, key_password=None, store_password=PASSWORD)
    with pytest.raises(KeyUnusableError) as raised:
        build_ssl_context(identity, ())
    assert not isinstance(raised.value, ssl.SSLError)
    expected = KeyTooSmallError if case.startswith("rsa1024") else KeyAlgorithmError
    assert isinstance(raised.value, expected)
    assert raised.value.hint


def test_dsa_is_accepted_by_a_tls12_only_profile(refused: dict[str, Path]) -> None:
    """Measured: OpenSSL presents a DSA client certificate under TLS 1.2; the profile says so."""
    from flowrun._tls._context import TlsSettings

    contents = load_keystore_file(refused["dsa-openssl"], password=None)
    identity: ClientIdentity = select_identity(contents, key_alias=None, key_password=None, store_password=None)
    assert isinstance(build_ssl_context(identity, (), TlsSettings(versions=("1.2",))), ssl.SSLContext)
    with pytest.raises(KeyAlgorithmError) as raised:
        build_ssl_context(identity, (), TlsSettings(versions=("1.2", "1.3")))
    assert "tls_versions" in raised.value.hint


@pytest.mark.usefixtures("_password")
@pytest.mark.parametrize("case", ["dsa-openssl", "dsa-jks"])
def test_a_dsa_store_gets_flowruns_finding_without_cryptographys_deprecation_warning(
        case: str, refused: dict[str, Path]) -> None:
    """cryptography 51 warns on every DSA key it loads; flowrun's own finding says more, so the CLI
    (run as users run it, outside pytest's warning filters) prints the finding only."""
    completed = subprocess.run(
        [sys.executable, "-m", "flowrun", "keystore", "inspect", str(refused[case]), "--password-env", "REFUSED_PW",
         "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 1, completed.stderr
    assert completed.stderr == ""
    assert "key.dsa" in {finding["code"] for finding in json.loads(completed.stdout)["findings"]}


def test_a_host_applications_own_dsa_use_still_warns(refused: dict[str, Path]) -> None:
    """The warning is ignored only where flowrun's modules raise it."""
    script = (
        "import flowrun._tls._read, pathlib\n"
        "from cryptography.hazmat.primitives import serialization\n"
        f"serialization.load_pem_private_key(pathlib.Path({str(refused['dsa-openssl'])!r}).read_bytes(), None)\n")
    completed = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True,
                               timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "DSA is deprecated" in completed.stderr


def test_a_dsa_jks_with_a_wrong_password_is_told_about_the_password_first(refused: dict[str, Path]) -> None:
    """keytool's DSA certificates cannot be decoded; the store's integrity check comes first all the same."""
    with pytest.raises(KeystorePasswordError, match="wrong store password for the JKS store"):
        load_keystore_file(refused["dsa-jks"], password="not-the-password")
    with pytest.raises(KeyAlgorithmError, match="DSA key"):
        load_keystore_file(refused["dsa-jks"], password=PASSWORD)
    with pytest.raises(KeyAlgorithmError, match="DSA key"):
        load_keystore_file(refused["dsa-jks"], password=None)  # no integrity check without a password
