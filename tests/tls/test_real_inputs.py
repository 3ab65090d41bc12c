"""Key material as users really have it, each made in test setup by the real tool (openssl, keytool,
a small Java program on Java's own KeyStore API): what those tools write must read, and what
cannot be read must be named for what it is."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from flowrun._cli import main
from flowrun._errors import KeyEncryptionUnsupportedError, KeystoreFormatError
from flowrun._tls._model import KeystoreContents
from flowrun._tls._read import load_keystore_file, read_trust_certs, select_identity
from tests._binaries import require_binary
from tests._keytool import CA, make_ca, run_keytool

PASSWORD = "inputs-store-pw"
BC_JAR = Path("/usr/share/java/bcprov.jar")
BC = ["-providerpath", str(BC_JAR), "-provider", "org.bouncycastle.jce.provider.BouncyCastleProvider"]


def openssl(*args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run([require_binary("openssl", "openssl"), *args], input=stdin, capture_output=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def keytool_entries(path: Path, storepass: str = PASSWORD, *extra: str) -> dict[str, str]:
    """alias -> kind, as `keytool -list` prints them."""
    out = run_keytool("-list", "-keystore", str(path), "-storepass", storepass, *extra).stdout
    line = re.compile(r"^(.+?), [^,]+, [^,]+, (PrivateKeyEntry|trustedCertEntry|SecretKeyEntry),", re.M)
    return {m.group(1).lower(): m.group(2) for m in line.finditer(out)}


def flowrun_entries(contents: KeystoreContents) -> dict[str, str]:
    kinds = {"private_key": "PrivateKeyEntry", "trusted_cert": "trustedCertEntry", "secret_key": "SecretKeyEntry"}
    return {e.alias.lower(): kinds[e.kind] for e in contents.entries}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CA]:
    """An openssl-made root whose subject holds an emailAddress, and a client key and certificate."""
    directory = tmp_path_factory.mktemp("inputs")
    root_key, root_crt = directory / "root.key", directory / "root.crt"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            str(root_key), "-subj", "/CN=Mail Root/O=Flowrun Test/emailAddress=ca@example.com", "-days", "400",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", str(root_crt))
    key, csr, crt = directory / "client.key", directory / "client.csr", directory / "client.crt"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
            "-subj", "/CN=inputs-client", "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(root_crt), "-CAkey", str(root_key), "-set_serial", "7",
            "-days", "200", "-out", str(crt))
    return directory, make_ca(directory / "cryptography-ca", "Inputs CA")


def _identity_ok(path: Path, password: str | None = None, **kwargs: object) -> None:
    contents = load_keystore_file(path, password=password)
    identity = select_identity(contents, key_alias=None, key_password=None, store_password=password)
    assert identity.leaf.subject.rfc4514_string() == "CN=inputs-client"
    assert len(identity.chain) == kwargs.get("chain", 2)


# --- PEM as tools print it -------------------------------------------------------------------


def test_openssl_x509_text_before_the_block(pki: tuple[Path, CA], tmp_path: Path) -> None:
    directory, _ = pki
    text = openssl("x509", "-in", str(directory / "client.crt"), "-text")
    assert not text.startswith(b"-----BEGIN")
    path = tmp_path / "client.pem"
    path.write_bytes(text + openssl("x509", "-in", str(directory / "root.crt"), "-text")
                     + (directory / "client.key").read_bytes())
    _identity_ok(path)


def test_pkcs12_nodes_output_with_non_ascii_friendly_names_and_any_bytes_before(pki: tuple[Path, CA],
                                                                              tmp_path: Path) -> None:
    directory, _ = pki
    p12 = tmp_path / "named.p12"
    openssl("pkcs12", "-export", "-in", str(directory / "client.crt"), "-inkey", str(directory / "client.key"),
            "-certfile", str(directory / "root.crt"), "-name", "clé de la banque ü", "-out", str(p12),
            "-passout", f"pass:{PASSWORD}")
    dumped = openssl("pkcs12", "-in", str(p12), "-nodes", "-passin", f"pass:{PASSWORD}")
    assert dumped.startswith(b"Bag Attributes") and not dumped[:200].isascii()
    path = tmp_path / "dumped.pem"
    path.write_bytes(dumped)
    _identity_ok(path)
    # Any bytes, any length, before the first block.
    path.write_bytes(b"\xff\xfe\x00 exported by a tool \xe9\n" * 20_000 + dumped)
    _identity_ok(path)


def test_trailing_blanks_on_begin_and_end_lines(pki: tuple[Path, CA], tmp_path: Path) -> None:
    directory, _ = pki
    blanks = b"".join(re.sub(rb"-----\n", b"----- \t\n", (directory / name).read_bytes())
                      for name in ("client.key", "client.crt", "root.crt"))
    assert b"-----BEGIN CERTIFICATE----- \t\n" in blanks
    path = tmp_path / "blanks.pem"
    path.write_bytes(blanks)
    _identity_ok(path)


def test_begin_trusted_certificate(pki: tuple[Path, CA], tmp_path: Path) -> None:
    directory, _ = pki
    trusted = openssl("x509", "-in", str(directory / "root.crt"), "-addtrust", "clientAuth")
    assert trusted.startswith(b"-----BEGIN TRUSTED CERTIFICATE-----")
    root = read_trust_certs(trusted, format="pem")
    assert root[0].subject.rfc4514_string().startswith("1.2.840.113549.1.9.1=ca@example.com")
    path = tmp_path / "identity.pem"
    path.write_bytes((directory / "client.key").read_bytes() + (directory / "client.crt").read_bytes() + trusted)
    _identity_ok(path)


# --- PKCS12 --------------------------------------------------------------------------------

_JAVA_KEY_PASSWORD = """
import java.io.*;
import java.security.*;
import java.security.cert.Certificate;

public class P12KeyPass {
    public static void main(String[] a) throws Exception {
        KeyStore src = KeyStore.getInstance("JKS");
        try (InputStream in = new FileInputStream(a[0])) { src.load(in, a[1].toCharArray()); }
        Key key = src.getKey(a[2], a[3].toCharArray());
        Certificate[] chain = src.getCertificateChain(a[2]);
        KeyStore dst = KeyStore.getInstance("PKCS12");
        dst.load(null, null);
        dst.setKeyEntry(a[2], key, a[3].toCharArray(), chain);
        try (OutputStream out = new FileOutputStream(a[4])) { dst.store(out, a[1].toCharArray()); }
    }
}
"""


def test_pkcs12_whose_key_password_differs_from_the_store_password(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """keytool cannot write it (it ignores -keypass for PKCS12); Java's KeyStore API can."""
    java = require_binary("java", "default-jdk-headless")
    source = tmp_path / "P12KeyPass.java"
    source.write_text(_JAVA_KEY_PASSWORD)
    jks, p12 = tmp_path / "src.jks", tmp_path / "java-api.p12"
    run_keytool("-genkeypair", "-alias", "client", "-keyalg", "EC", "-groupname", "secp256r1", "-dname",
                "CN=java-api-client", "-keystore", str(jks), "-storetype", "JKS", "-storepass", PASSWORD,
                "-keypass", "key-only-pw")
    subprocess.run([java, str(source), str(jks), PASSWORD, "client", "key-only-pw", str(p12)], check=True,
                   capture_output=True, timeout=120)
    p12.chmod(0o600)
    assert keytool_entries(p12) == {"client": "PrivateKeyEntry"}

    contents = load_keystore_file(p12, password=PASSWORD)
    assert flowrun_entries(contents) == {"client": "PrivateKeyEntry"}
    identity = select_identity(contents, key_alias="client", key_password="key-only-pw", store_password=PASSWORD)
    assert identity.leaf.subject.rfc4514_string() == "CN=java-api-client"

    monkeypatch.setenv("IN_PW", PASSWORD)
    monkeypatch.setenv("IN_KEY_PW", "key-only-pw")
    main(["keystore", "inspect", str(p12), "--password-env", "IN_PW", "--json"])
    codes = [f["code"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert "key.wrong_password" in codes
    main(["keystore", "inspect", str(p12), "--password-env", "IN_PW", "--key-password-env", "IN_KEY_PW", "--json"])
    codes = [f["code"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert "key.wrong_password" not in codes and "key.unreadable" not in codes


def test_pkcs12_entry_matched_by_local_key_id_only(pki: tuple[Path, CA], tmp_path: Path) -> None:
    directory, _ = pki
    p12 = tmp_path / "unnamed.p12"
    openssl("pkcs12", "-export", "-in", str(directory / "client.crt"), "-inkey", str(directory / "client.key"),
            "-certfile", str(directory / "root.crt"), "-out", str(p12), "-passout", f"pass:{PASSWORD}")
    assert b"friendlyName" not in openssl("pkcs12", "-in", str(p12), "-nokeys", "-passin", f"pass:{PASSWORD}")
    contents = load_keystore_file(p12, password=PASSWORD)
    assert flowrun_entries(contents) == keytool_entries(p12) == {"1": "PrivateKeyEntry"}
    _identity_ok(p12, PASSWORD)


def test_keytool_pkcs12_lists_as_keytool_lists_it_with_an_email_root(pki: tuple[Path, CA], tmp_path: Path) -> None:
    """The CA reply imported as a chain (leaf + root with emailAddress): Java stores the root under
    its subject name; keytool -list shows one PrivateKeyEntry, and so must flowrun."""
    directory, _ = pki
    p12 = tmp_path / "reply.p12"
    common = ["-keystore", str(p12), "-storetype", "PKCS12", "-storepass", PASSWORD]
    run_keytool("-genkeypair", "-alias", "client", "-keyalg", "EC", "-groupname", "secp256r1", "-dname",
                "CN=reply-client", *common)
    csr = tmp_path / "reply.csr"
    csr.write_text(run_keytool("-certreq", "-alias", "client", *common).stdout)
    signed = tmp_path / "reply.crt"
    openssl("x509", "-req", "-in", str(csr), "-CA", str(directory / "root.crt"), "-CAkey",
            str(directory / "root.key"), "-set_serial", "9", "-days", "100", "-out", str(signed))
    bundle = tmp_path / "reply-chain.pem"
    bundle.write_bytes(signed.read_bytes() + (directory / "root.crt").read_bytes())
    run_keytool("-importcert", "-noprompt", "-alias", "client", "-file", str(bundle), *common)
    contents = load_keystore_file(p12, password=PASSWORD)
    assert flowrun_entries(contents) == keytool_entries(p12) == {"client": "PrivateKeyEntry"}
    assert len(contents.private_key_entries()[0].certificates) == 2

    # A trusted root imported under its own alias is a trustedCertEntry for both.
    run_keytool("-importcert", "-noprompt", "-alias", "mail-root", "-file", str(directory / "root.crt"), *common)
    contents = load_keystore_file(p12, password=PASSWORD)
    assert flowrun_entries(contents) == keytool_entries(p12) == {"client": "PrivateKeyEntry",
                                                                 "mail-root": "trustedCertEntry"}


# --- Java stores ---------------------------------------------------------------------------


@pytest.mark.parametrize("storetype", ["JKS", "JCEKS"])
def test_java_store_with_trailing_bytes_reads_as_keytool_reads_it(storetype: str, tmp_path: Path) -> None:
    store = tmp_path / f"padded.{storetype.lower()}"
    run_keytool("-genkeypair", "-alias", "client", "-keyalg", "EC", "-groupname", "secp256r1", "-dname",
                "CN=padded", "-keystore", str(store), "-storetype", storetype, "-storepass", PASSWORD,
                "-keypass", PASSWORD)
    store.write_bytes(store.read_bytes() + b"\x00" * 512 + b"\r\n")
    assert keytool_entries(store, PASSWORD, "-storetype", storetype) == {"client": "PrivateKeyEntry"}
    assert flowrun_entries(load_keystore_file(store, password=PASSWORD)) == {"client": "PrivateKeyEntry"}


# --- what cannot be read, named ------------------------------------------------------------


@pytest.mark.parametrize(("option", "named"), [
    (["-v2", "camellia-256-cbc"], "Camellia-256-CBC"),
    (["-v1", "PBE-SHA1-RC2-64", "-provider", "default", "-provider", "legacy"], "PBES1 SHA-1 with RC2-CBC"),
])
def test_pkcs8_encryption_that_cannot_be_read_is_named_not_a_wrong_password(
        option: list[str], named: str, pki: tuple[Path, CA], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    directory, _ = pki
    key = tmp_path / "key.pem"
    openssl("pkcs8", "-topk8", "-in", str(directory / "client.key"), "-passout", f"pass:{PASSWORD}", *option,
            "-out", str(key))
    key.chmod(0o600)
    contents = load_keystore_file(directory / "client.crt", password=PASSWORD, key_path=key)
    with pytest.raises(KeyEncryptionUnsupportedError) as raised:
        select_identity(contents, key_alias=None, key_password=None, store_password=PASSWORD)
    assert named in raised.value.message and "not a wrong password" in raised.value.message
    monkeypatch.setenv("IN_PW", PASSWORD)
    assert main(["keystore", "inspect", str(directory / "client.crt"), "--key-file", str(key),
                 "--password-env", "IN_PW", "--json"]) == 1
    findings = {f["code"]: f["message"] for f in json.loads(capsys.readouterr().out)["findings"]}
    assert "key.wrong_password" not in findings
    assert named in findings["key.unreadable"]


@pytest.mark.parametrize("storetype", ["BKS", "UBER"])
def test_bouncy_castle_stores_are_named_and_the_hint_converts_them(storetype: str, tmp_path: Path) -> None:
    if not BC_JAR.is_file():
        require_binary("bcprov.jar (not a program)", "libbcprov-java")
    store = tmp_path / f"android.{storetype.lower()}"
    run_keytool("-genkeypair", "-alias", "client", "-keyalg", "EC", "-groupname", "secp256r1", "-dname",
                "CN=bouncy", "-keystore", str(store), "-storetype", storetype, "-storepass", PASSWORD,
                "-keypass", PASSWORD, *BC)
    with pytest.raises(KeystoreFormatError) as raised:
        load_keystore_file(store, password=PASSWORD)
    assert f"Bouncy Castle {storetype} keystore" in raised.value.message
    command = raised.value.hint.split("Bouncy Castle provider: ")[1].split(", or export")[0].split()
    assert command[0] == "keytool"
    converted = tmp_path / "client.p12"
    argv = [str(store) if a == "FILE" else str(BC_JAR) if a == "bcprov.jar" else
            str(converted) if a == "client.p12" else a for a in command[1:]]
    run_keytool(*argv, "-srcstorepass", PASSWORD, "-deststorepass", PASSWORD, "-noprompt")
    assert flowrun_entries(load_keystore_file(converted, password=PASSWORD)) == {"client": "PrivateKeyEntry"}


# --- no deprecation warnings reach the user (pytest turns warnings into errors) ------------


def test_legacy_pkcs12_and_negative_serials_give_no_deprecation_warning(pki: tuple[Path, CA], tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    directory, _ = pki
    legacy = tmp_path / "legacy.p12"
    openssl("pkcs12", "-export", "-legacy", "-in", str(directory / "client.crt"), "-inkey",
            str(directory / "client.key"), "-certfile", str(directory / "root.crt"), "-name", "client",
            "-out", str(legacy), "-passout", f"pass:{PASSWORD}")
    negative = tmp_path / "negative.pem"
    negative_key = tmp_path / "negative.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            str(negative_key), "-subj", "/CN=negative-serial", "-set_serial", "-1234", "-days", "100",
            "-out", str(negative))
    negative.write_bytes(negative_key.read_bytes() + negative.read_bytes())
    negative.chmod(0o600)
    monkeypatch.setenv("IN_PW", PASSWORD)
    for path in (legacy, negative):
        main(["keystore", "inspect", str(path), "--password-env", "IN_PW"])
        assert "Warning" not in capsys.readouterr().err
    main(["keystore", "inspect", str(negative), "--json"])
    entries = json.loads(capsys.readouterr().out)["entries"]
    assert entries[0]["chain"][0]["serial"] == "-4d2"
    _identity_ok(legacy, PASSWORD)
