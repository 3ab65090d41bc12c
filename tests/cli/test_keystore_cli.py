"""``flowrun keystore inspect`` end to end through ``flowrun._cli.main`` on keytool-made stores."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from flowrun._cli import build_parser, main
from flowrun._cli._keystore import run_inspect
from flowrun._cli._output import Console
from tests._keytool import CA, KeytoolStore, build_keytool_store, keytool_path, make_ca, pem

pytestmark = pytest.mark.keytool

STORE_PASSWORD = "S3cret-Store-Pw"
KEY_PASSWORD = "S3cret-Key-Pw"
WRONG_PASSWORD = "Wr0ng-Guess-Pw"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CA, CA]:
    root = make_ca(tmp_path_factory.mktemp("cli-pki"), "CLI Root")
    return root, root.issue_intermediate("CLI Intermediate")


@pytest.fixture(scope="module")
def full_jks(tmp_path_factory: pytest.TempPathFactory, pki: tuple[CA, CA]) -> KeytoolStore:
    if keytool_path() is None:
        pytest.skip("Java's keytool is not on PATH")
    return build_keytool_store(tmp_path_factory.mktemp("full"), storetype="JKS", storepass=STORE_PASSWORD,
                               keypass=KEY_PASSWORD, ca=pki[0], intermediate=pki[1])


@pytest.fixture(scope="module")
def leaf_only_jks(tmp_path_factory: pytest.TempPathFactory, pki: tuple[CA, CA]) -> KeytoolStore:
    if keytool_path() is None:
        pytest.skip("Java's keytool is not on PATH")
    return build_keytool_store(tmp_path_factory.mktemp("leaf-only"), storetype="JKS", storepass=STORE_PASSWORD,
                               chain_mode="leaf_only", ca=pki[0], intermediate=pki[1])


@pytest.fixture(scope="module")
def placeholder_jks(tmp_path_factory: pytest.TempPathFactory, pki: tuple[CA, CA]) -> KeytoolStore:
    """keytool -genkeypair's self-signed placeholder, never replaced by the signed certificate."""
    if keytool_path() is None:
        pytest.skip("Java's keytool is not on PATH")
    return build_keytool_store(tmp_path_factory.mktemp("placeholder"), storetype="JKS", storepass=STORE_PASSWORD,
                               chain_mode="none", ca=pki[0], intermediate=pki[1])


@pytest.fixture
def passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_PASS", STORE_PASSWORD)
    monkeypatch.setenv("KEY_PASS", KEY_PASSWORD)
    monkeypatch.setenv("WRONG_PASS", WRONG_PASSWORD)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["keystore", "inspect", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(err: str, code: str) -> None:
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"error[{code}]: "), err
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("  hint: ")), err
    assert "Traceback" not in err


# --- verdicts ------------------------------------------------------------------------------


@pytest.mark.usefixtures("passwords")
def test_usable_store_lists_entries_and_exits_0(capsys: pytest.CaptureFixture[str], full_jks: KeytoolStore) -> None:
    code, out, err = _run(capsys, str(full_jks.path), "--password-env", "KS_PASS", "--key-password-env", "KEY_PASS")
    assert (code, err) == (0, "")
    assert "Type: JKS, 3 entries" in out
    assert "Alias: client\n  Kind: PrivateKeyEntry\n  Chain length: 3" in out
    assert "Alias: root\n  Kind: trustedCertEntry" in out
    assert full_jks.leaf.fingerprint(hashes.SHA256()).hex(":").upper() in out
    assert f"Serial:    {full_jks.leaf.serial_number:x}" in out
    assert "Key:       EC secp256r1 (256 bits)" in out
    assert out.rstrip().endswith("usable as a client identity")
    assert STORE_PASSWORD not in out and KEY_PASSWORD not in out


@pytest.mark.usefixtures("passwords")
def test_key_password_not_given_is_a_finding_and_exits_1(
    capsys: pytest.CaptureFixture[str], full_jks: KeytoolStore,
) -> None:
    code, out, _ = _run(capsys, str(full_jks.path), "--password-env", "KS_PASS")
    assert code == 1
    assert "key.wrong_password" in out
    assert "NOT usable: 1 error" in out


@pytest.mark.usefixtures("passwords")
def test_leaf_only_is_usable_with_a_warning_naming_the_missing_issuer(
    capsys: pytest.CaptureFixture[str], leaf_only_jks: KeytoolStore,
) -> None:
    code, out, err = _run(capsys, str(leaf_only_jks.path), "--password-env", "KS_PASS")
    assert (code, err) == (0, "")
    warnings = out.split("Warnings (1)")[1].split("Info")[0]
    assert "chain.leaf_only" in warnings
    assert "'O=Flowrun Test,CN=CLI Intermediate'" in warnings
    assert "keytool -importcert -trustcacerts" in warnings and "chain_certs" in warnings
    assert out.rstrip().endswith("usable as a client identity (1 warning)")


@pytest.mark.usefixtures("passwords")
def test_chain_cert_completes_the_chain_that_is_sent(
    capsys: pytest.CaptureFixture[str], leaf_only_jks: KeytoolStore, pki: tuple[CA, CA], tmp_path: Path,
) -> None:
    _, inter = pki
    der = tmp_path / "intermediate.der"
    der.write_bytes(inter.cert.public_bytes(serialization.Encoding.DER))
    code, out, _ = _run(capsys, str(leaf_only_jks.path), "--password-env", "KS_PASS", "--chain-cert", str(der),
                        "--json")
    assert code == 0
    codes = [f["code"] for f in json.loads(out)["findings"]]
    # Leaf and intermediate are sent; the partner holds the root.
    assert "chain.leaf_only" not in codes and "chain.not_sent" not in codes
    assert "chain.root_not_included" in codes


@pytest.mark.usefixtures("passwords")
def test_trust_certs_complete_the_chain(
    capsys: pytest.CaptureFixture[str], leaf_only_jks: KeytoolStore, pki: tuple[CA, CA], tmp_path: Path,
) -> None:
    root, inter = pki
    der_root = tmp_path / "root.der"
    der_root.write_bytes(root.cert.public_bytes(serialization.Encoding.DER))
    code, out, _ = _run(capsys, str(leaf_only_jks.path), "--password-env", "KS_PASS",
                        "--trust-cert", str(inter.cert_path), "--trust-cert", str(der_root))
    assert code == 0
    assert "chain.not_sent" in out.split("Warnings (1)")[1]


@pytest.mark.usefixtures("passwords")
def test_findings_are_coloured_by_severity(placeholder_jks: KeytoolStore) -> None:
    args = build_parser("keystore").parse_args(
        ["keystore", "inspect", str(placeholder_jks.path), "--password-env", "KS_PASS"])
    buffer = io.StringIO()
    assert run_inspect(args, Console(buffer, color=True)) == 1
    text = buffer.getvalue()
    assert "\x1b[31mchain.self_signed\x1b[0m" in text
    assert "\x1b[31;1mNOT usable: 1 error\x1b[0m" in text


def test_unencrypted_pem_needs_no_password(
    capsys: pytest.CaptureFixture[str], pki: tuple[CA, CA], tmp_path: Path,
) -> None:
    root, inter = pki
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = inter.issue_leaf(key.public_key(), "pem-client")
    path = tmp_path / "client.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()) + pem(leaf) + inter.cert_pem + root.cert_pem)
    code, out, _ = _run(capsys, str(path))
    assert code == 0
    assert "Type: PEM" in out


# --- JSON ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("passwords")
def test_json_has_the_documented_shape(capsys: pytest.CaptureFixture[str], full_jks: KeytoolStore) -> None:
    code, out, _ = _run(capsys, str(full_jks.path), "--password-env", "KS_PASS",
                        "--key-password-env", "KEY_PASS", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"type", "entries", "findings"}
    assert data["type"] == "jks"
    by_alias = {e["alias"]: e for e in data["entries"]}
    assert {a: e["kind"] for a, e in by_alias.items()} == {
        "client": "private_key", "root": "trusted_cert", "intermediate": "trusted_cert"}
    for entry in data["entries"]:
        assert set(entry) == {"alias", "kind", "chain"}
        for cert in entry["chain"]:
            assert set(cert) == {"key_type", "key_size", "subject", "issuer", "serial", "not_before", "not_after",
                                 "sha256"}
            assert ISO_UTC.match(cert["not_before"]) and ISO_UTC.match(cert["not_after"])
            assert re.fullmatch(r"[0-9a-f]{64}", cert["sha256"])
    leaf_json = by_alias["client"]["chain"][0]
    leaf = full_jks.leaf
    assert leaf_json == {
        "key_type": "EC",
        "key_size": 256,
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "serial": f"{leaf.serial_number:x}",
        "not_before": leaf.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sha256": leaf.fingerprint(hashes.SHA256()).hex(),
    }
    assert len(by_alias["client"]["chain"]) == 3
    for finding in data["findings"]:
        assert set(finding) == {"code", "severity", "message"}
    assert [f["code"] for f in data["findings"]] == ["identity.summary"]


@pytest.mark.usefixtures("passwords")
def test_json_is_printed_for_an_unusable_store(
    capsys: pytest.CaptureFixture[str], placeholder_jks: KeytoolStore,
) -> None:
    code, out, _ = _run(capsys, str(placeholder_jks.path), "--password-env", "KS_PASS", "--json")
    assert code == 1
    findings = json.loads(out)["findings"]
    assert {"code": "chain.self_signed", "severity": "error"}.items() <= findings[0].items()


# --- passwords -----------------------------------------------------------------------------


@pytest.mark.usefixtures("passwords")
def test_wrong_store_password_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str], full_jks: KeytoolStore,
) -> None:
    code, out, err = _run(capsys, str(full_jks.path), "--password-env", "WRONG_PASS")
    assert (code, out) == (2, "")
    _assert_one_line_error(err, "keystore.wrong_password")
    assert WRONG_PASSWORD not in err and STORE_PASSWORD not in err


def test_missing_env_var_is_named(
    capsys: pytest.CaptureFixture[str], full_jks: KeytoolStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLOWRUN_NO_SUCH_VAR", raising=False)
    code, _, err = _run(capsys, str(full_jks.path), "--password-env", "FLOWRUN_NO_SUCH_VAR")
    assert code == 2
    _assert_one_line_error(err, "definition.secret_unavailable")
    assert "environment variable FLOWRUN_NO_SUCH_VAR (named by --password-env) is not set" in err


def test_empty_env_var_is_refused(
    capsys: pytest.CaptureFixture[str], full_jks: KeytoolStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWRUN_EMPTY", "")
    code, _, err = _run(capsys, str(full_jks.path), "--password-env", "FLOWRUN_EMPTY")
    assert code == 2
    assert "FLOWRUN_EMPTY" in err and "is empty" in err


def test_java_store_without_password_is_refused(capsys: pytest.CaptureFixture[str], full_jks: KeytoolStore) -> None:
    code, _, err = _run(capsys, str(full_jks.path))
    assert code == 2
    _assert_one_line_error(err, "usage")
    assert "JKS keystore is read only with its store password" in err
    assert "--password-env VAR, --password-file FILE or --password-stdin" in err


def test_password_from_a_file_and_from_stdin(
    capsys: pytest.CaptureFixture[str], full_jks: KeytoolStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store_file, key_file = tmp_path / "store.pw", tmp_path / "key.pw"
    store_file.write_text(STORE_PASSWORD + "\n")
    key_file.write_text(KEY_PASSWORD + "\r\n")
    code, _, _ = _run(capsys, str(full_jks.path), "--password-file", str(store_file),
                      "--key-password-file", str(key_file))
    assert code == 0

    monkeypatch.setattr(sys, "stdin", io.StringIO(STORE_PASSWORD + "\nnot read\n"))
    code, _, _ = _run(capsys, str(full_jks.path), "--password-stdin", "--key-password-file", str(key_file))
    assert code == 0

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = _run(capsys, str(full_jks.path), "--password-stdin")
    assert code == 2
    assert "standard input is empty" in err


def test_missing_password_file(capsys: pytest.CaptureFixture[str], full_jks: KeytoolStore, tmp_path: Path) -> None:
    code, _, err = _run(capsys, str(full_jks.path), "--password-file", str(tmp_path / "nope.pw"))
    assert code == 2
    _assert_one_line_error(err, "definition.secret_unavailable")
    assert "nope.pw" in err


# --- unreadable input and bad usage --------------------------------------------------------


@pytest.mark.parametrize(("make", "code_name", "words"), [
    (lambda d: d / "missing.jks", "keystore.not_found", "not found"),
    (lambda d: d, "keystore.not_found", "directory"),
    (lambda d: (d / "empty.jks", (d / "empty.jks").write_bytes(b""))[0], "keystore.format", "empty"),
    (lambda d: (d / "page.jks", (d / "page.jks").write_bytes(b"<html>login</html>"))[0], "keystore.format", "HTML"),
], ids=["missing", "directory", "empty", "html"])
@pytest.mark.usefixtures("passwords")
def test_unreadable_input_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make: object, code_name: str, words: str,
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    code, out, err = _run(capsys, str(path), "--password-env", "KS_PASS")
    assert (code, out) == (2, "")
    _assert_one_line_error(err, code_name)
    assert words in err


@pytest.mark.usefixtures("passwords")
def test_unreadable_trust_cert_exits_2(
    capsys: pytest.CaptureFixture[str], full_jks: KeytoolStore, tmp_path: Path,
) -> None:
    code, _, err = _run(capsys, str(full_jks.path), "--password-env", "KS_PASS",
                        "--trust-cert", str(tmp_path / "partner.pem"))
    assert code == 2
    _assert_one_line_error(err, "trust_cert.unreadable")


@pytest.mark.parametrize("argv", [
    ["keystore"],
    ["keystore", "inspect"],
    ["keystore", "inspect", "x.jks", "--within", "-1"],
    ["keystore", "inspect", "x.jks", "--password-env", "A", "--password-stdin"],
    ["keystore", "inspect", "x.jks", "--password", "changeit"],
    ["keystore", "inspect", "x.jks", "--type", "zip"],
], ids=["no-subcommand", "no-path", "negative-days", "two-passwords", "password-in-argv", "bad-type"])
def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error[usage]: ")
    assert "changeit" not in out + err


# --- a real process ------------------------------------------------------------------------


def test_real_process_exit_codes_and_no_traceback(full_jks: KeytoolStore, placeholder_jks: KeytoolStore) -> None:
    env = {**os.environ, "KS_PASS": STORE_PASSWORD, "WRONG_PASS": WRONG_PASSWORD, "NO_COLOR": "1"}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flowrun", "keystore", "inspect", *argv],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False)

    incomplete = run(str(placeholder_jks.path), "--password-env", "KS_PASS")
    assert incomplete.returncode == 1, incomplete.stderr
    assert "NOT usable: 1 error" in incomplete.stdout
    assert incomplete.stderr == ""

    wrong = run(str(full_jks.path), "--password-env", "WRONG_PASS")
    assert wrong.returncode == 2
    assert wrong.stdout == ""
    _assert_one_line_error(wrong.stderr, "keystore.wrong_password")
    assert WRONG_PASSWORD not in wrong.stderr


def test_password_file_that_is_a_device_is_refused_without_reading(capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: Path) -> None:
    store = tmp_path / "store.jks"
    store.write_bytes(b"\xfe\xed\xfe\xed")
    code = main(["keystore", "inspect", str(store), "--password-file", "/dev/zero"])
    assert code == 2
    assert "is larger than" in capsys.readouterr().err


def test_password_file_may_be_a_pipe(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`--password-file <(pass show bank)` hands the password over a pipe, never on disk."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"changeit\n")
    os.close(write_end)
    store = tmp_path / "store.jks"
    store.write_bytes(b"\xfe\xed\xfe\xed")
    try:
        code = main(["keystore", "inspect", str(store), "--password-file", f"/proc/self/fd/{read_end}"])
    finally:
        os.close(read_end)
    err = capsys.readouterr().err
    assert code == 2  # the store is truncated: the password was read and the store checked
    assert "password file" not in err


def _inspect_pem_key_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          password: str) -> tuple[int, dict[str, Any], Any]:
    """``keystore inspect`` of the test PKI's client certificate with its encrypted key file
    (passphrase "changeit") given ``password``: the exit code, the JSON report and the files."""
    from flowrun.testing import make_pki

    files = make_pki().write(tmp_path, keystore_password="changeit")
    monkeypatch.setenv("PEM_KEY_PASSWORD", password)
    code = main(["keystore", "inspect", str(files.client.cert_pem), "--key-file", str(files.client.key_pem),
                 "--password-env", "PEM_KEY_PASSWORD", "--json"])
    return code, json.loads(capsys.readouterr().out), files


def test_pem_certificate_with_its_key_in_a_separate_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    code, report, _ = _inspect_pem_key_file(capsys, tmp_path, monkeypatch, "changeit")
    assert code == 0, report["findings"]
    assert [e["kind"] for e in report["entries"]].count("private_key") == 1
    assert len(next(e for e in report["entries"] if e["kind"] == "private_key")["chain"]) == 3


def test_pem_key_file_of_another_certificate_is_worded_in_files(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    from flowrun.testing import make_pki
    from tests.tls.test_real_inputs import openssl

    files = make_pki().write(tmp_path, keystore_password="changeit")
    other = tmp_path / "other.key"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(other))
    other.chmod(0o600)
    code = main(["keystore", "inspect", str(files.client.cert_pem), "--key-file", str(other), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    (mismatch,) = [f for f in report["findings"] if f["code"] == "key.mismatch"]
    assert mismatch["message"].startswith(f"the private key in {other} does not belong to the certificate ")
    assert f"in {files.client.cert_pem}: " in mismatch["message"]
    assert "keytool" not in mismatch["message"] and "openssl pkey -pubout" in mismatch["message"]


def test_wrong_passphrase_of_a_pem_key_file_is_named_with_the_file(capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, report, files = _inspect_pem_key_file(capsys, tmp_path, monkeypatch, "not-it")
    assert code == 1
    (finding,) = [f for f in report["findings"] if f["code"] == "key.wrong_password"]
    assert finding["message"].startswith(f"the private key in {files.client.key_pem} cannot be decrypted: "
                                         "the key password is wrong; ")
    assert "keytool" not in finding["message"] and "openssl pkey -in KEY -noout" in finding["message"]


def test_key_file_with_a_java_keystore_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from flowrun.testing import make_pki

    files = make_pki().write(tmp_path, keystore_password="changeit")
    monkeypatch.setenv("STORE_PASSWORD", "changeit")
    code = main(["keystore", "inspect", str(files.client.jks), "--key-file", str(files.client.key_pem),
                 "--password-env", "STORE_PASSWORD"])
    assert code == 2
    assert "--key-file goes with a PEM certificate file" in capsys.readouterr().err


def test_a_protected_pkcs12_without_password_names_the_password_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: tuple[CA, CA],
) -> None:
    store = build_keytool_store(tmp_path, storetype="PKCS12", storepass=STORE_PASSWORD, ca=pki[0],
                                intermediate=pki[1])
    code, out, err = _run(capsys, str(store.path))
    assert (code, out) == (2, "")
    _assert_one_line_error(err, "keystore.wrong_password")
    assert "no store password was given" in err
    assert "hint: pass it with --password-env VAR, --password-file FILE or --password-stdin" in err
    assert "keytool" not in err


def test_an_encrypted_pem_key_without_password_names_the_password_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: tuple[CA, CA],
) -> None:
    root, inter = pki
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "client.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"pem-pass"))
                     + pem(inter.issue_leaf(key.public_key(), "pem-client")) + inter.cert_pem + root.cert_pem)
    path.chmod(0o600)
    code, out, _ = _run(capsys, str(path), "--json")
    assert code == 1
    message = {f["code"]: f["message"] for f in json.loads(out)["findings"]}["key.wrong_password"]
    assert "--password-env VAR, --password-file FILE or --password-stdin" in message
