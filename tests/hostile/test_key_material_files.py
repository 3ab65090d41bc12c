"""Hostile key material files: symbolic links, directories, FIFOs, devices, sockets, huge files,
and keystores that other users can read.

Decisions tested here (docs/keystore-findings.md):

* a symbolic link is followed; ``keystore inspect`` and ``certs check`` show ``PATH -> TARGET``;
  a dangling link names its missing target;
* anything but a regular file of at most 16 MiB is refused before it is opened (a FIFO would
  block, ``/dev/zero`` never ends) with ``KeystoreNotFoundError`` / ``TrustCertError`` /
  ``SecretUnavailableError``;
* a private key file open to group or others follows the documented policy: a plaintext PEM key
  is a ``file.permissions`` warning (inspect, validate, and once per file on standard error for
  runs); a password-encrypted store is a note in ``inspect`` and ``validate`` only;
  ``FLOWRUN_ALLOW_READABLE_KEYS=1`` silences both. The run goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from flowrun._cli import main
from flowrun._errors import (
    FlowrunError,
    KeystoreNotFoundError,
    SecretUnavailableError,
    TrustCertError,
)
from flowrun._models._secret import SecretRef
from flowrun._registry import Registry
from flowrun._tls._material import warn_unprotected
from flowrun._tls._read import MAX_KEY_MATERIAL_BYTES, permission_warnings, read_file_bytes
from flowrun.testing import DEFAULT_API_KEYS, PartnerServer, Pki, PkiFiles, make_pki

PASSWORD = "store-pass-1"
API_KEY = sorted(DEFAULT_API_KEYS)[0]


@pytest.fixture(scope="module")
def material_pki() -> Pki:
    return make_pki()


@pytest.fixture
def material_files(material_pki: Pki, tmp_path: Path) -> PkiFiles:
    return material_pki.write(tmp_path / "pki", keystore_password=PASSWORD)


@pytest.fixture(scope="module")
def material_partner(material_pki: Pki) -> Iterator[PartnerServer]:
    with PartnerServer(material_pki) as server:
        yield server


def _aliases(directory: Path, keystore: Path, files: PkiFiles, url: str, **keystore_fields: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    records = [
        {"kind": "keystore", "name": "client", "file": str(keystore), "password": {"env": "MATERIAL_PASSWORD"},
         "key_alias": "client", **keystore_fields},
        {"kind": "trust_store_cert", "name": "root", "file": str(files.root_pem)},
        {"kind": "protocol_profile", "name": "mtls", "keystore": "client", "trust_store_certs": ["root"],
         "use_system_trust": False},
        {"kind": "credential", "name": "key", "type": "api_key", "header": "X-API-Key",
         "key": {"env": "MATERIAL_API_KEY"}},
        {"kind": "alias", "name": "bank", "connection": {"url": f"{url}/v2", "mutual_authentication": True,
                                                          "protocol_profile": "mtls", "credential": "key"}},
        {"kind": "alias", "name": "bank2", "connection": {"url": f"{url}/v2", "mutual_authentication": True,
                                                           "protocol_profile": "mtls", "credential": "key"}},
    ]
    (directory / "records.json").write_text(json.dumps(records, indent=1))
    return directory


@pytest.fixture(autouse=True)
def _material_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATERIAL_PASSWORD", PASSWORD)
    monkeypatch.setenv("MATERIAL_API_KEY", API_KEY)


def _inspect(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["keystore", "inspect", str(path), "--password-env", "MATERIAL_PASSWORD", *extra])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


# --- symbolic links ----------------------------------------------------------------------------


def test_a_symlinked_keystore_is_followed_and_its_target_shown(material_files: PkiFiles, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "current.jks"
    link.symlink_to(material_files.client.jks)
    code, out, _ = _inspect(capsys, link)
    assert code == 0
    assert out.splitlines()[0] == f"Keystore: {link} -> {material_files.client.jks.resolve()}"

    aliases = _aliases(tmp_path / "aliases", link, material_files, "https://localhost:1")
    assert Registry.load(aliases).identity("client").alias == "client"
    assert main(["certs", "check", "--aliases", str(aliases)]) == 0
    assert f"file {link} -> {material_files.client.jks.resolve()}" in capsys.readouterr().out


def test_a_dangling_symlink_names_its_missing_target(material_files: PkiFiles, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "client.jks"
    link.symlink_to(tmp_path / "renewed" / "client.jks")
    code, _, err = _inspect(capsys, link)
    assert code == 2
    assert "error[keystore.not_found]" in err
    assert f"symbolic link to {tmp_path / 'renewed' / 'client.jks'}, which does not exist" in err
    aliases = _aliases(tmp_path / "aliases", link, material_files, "https://localhost:1")
    with pytest.raises(KeystoreNotFoundError, match="which does not exist") as caught:
        Registry.load(aliases).identity("client")
    assert caught.value.file == str(aliases / "records.json")  # placed at the record to fix


# --- what is not a regular file ------------------------------------------------------------------


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / "store.jks"
    path.mkdir()
    return path


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "store.jks"
    os.mkfifo(path)  # nobody ever writes: opening it would block forever
    return path


def _socket(tmp_path: Path) -> Path:
    path = tmp_path / "s.jks"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return path


def _device(tmp_path: Path) -> Path:
    return Path("/dev/zero")  # endless: reading it would exhaust memory


def _huge(tmp_path: Path) -> Path:
    path = tmp_path / "store.jks"
    with path.open("wb") as handle:
        handle.truncate(MAX_KEY_MATERIAL_BYTES + 1)  # sparse
    return path


_KINDS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "directory": (_directory, "a directory"),
    "fifo": (_fifo, "a FIFO"),
    "socket": (_socket, "a socket"),
    "device": (_device, "a character device"),
    "huge": (_huge, "the limit is"),
}


def _finishes(call: Callable[[], object]) -> BaseException | None:
    """Run ``call`` in a thread; a regression that blocks on a FIFO fails instead of hanging the run."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "reading the key material blocked"
    return outcome[0]


@pytest.mark.parametrize("kind", list(_KINDS))
def test_special_files_are_refused_before_reading(kind: str, material_files: PkiFiles, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    make, words = _KINDS[kind]
    path = make(tmp_path)
    error = _finishes(lambda: read_file_bytes(path))
    assert isinstance(error, KeystoreNotFoundError)
    assert words in error.message

    code = main(["keystore", "inspect", str(path), "--password-env", "MATERIAL_PASSWORD"])
    assert code == 2
    assert "error[keystore.not_found]" in capsys.readouterr().err

    aliases = _aliases(tmp_path / "aliases", path, material_files, "https://localhost:1")
    error = _finishes(lambda: Registry.load(aliases).identity("client"))
    assert isinstance(error, KeystoreNotFoundError) and words in error.message
    assert main(["certs", "check", "--aliases", str(aliases), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [e["code"] for e in report["errors"]] == ["keystore.not_found"]


@pytest.mark.parametrize("kind", list(_KINDS))
def test_special_files_as_trust_store_certs_and_secrets_are_refused(kind: str, material_files: PkiFiles,
                                                                     tmp_path: Path) -> None:
    make, _ = _KINDS[kind]
    path = make(tmp_path)
    aliases = _aliases(tmp_path / "aliases", material_files.client.jks, material_files, "https://localhost:1")
    records = json.loads((aliases / "records.json").read_text())
    records[1]["file"] = str(path)
    records[0]["password"] = {"file": str(path)}
    (aliases / "records.json").write_text(json.dumps(records))
    registry = Registry.load(aliases)
    assert isinstance(_finishes(lambda: registry.trust_store_cert("root")), TrustCertError)
    assert isinstance(_finishes(lambda: registry.identity("client")), SecretUnavailableError)
    assert isinstance(_finishes(lambda: SecretRef(file=path).reveal()), SecretUnavailableError)


def test_a_secret_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_bytes(b"x" * (70 * 1024))
    with pytest.raises(SecretUnavailableError, match="larger than"):
        SecretRef(file=path).reveal()
    path.write_text("hunter2\n")
    assert SecretRef(file=path).reveal() == "hunter2"


# --- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "who"), [(0o644, "group and others"), (0o640, "group"), (0o604, "others"),
                                           (0o660, "group"), (0o600, None), (0o400, None)])
def test_keystore_inspect_warns_about_an_unprotected_key_file(mode: int, who: str | None,
                                                             material_files: PkiFiles,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    store = material_files.client.pkcs12
    store.chmod(mode)
    code = main(["keystore", "inspect", str(store), "--password-env", "MATERIAL_PASSWORD", "--json"])
    assert code == 0  # a warning: the store is still usable
    findings = [f for f in json.loads(capsys.readouterr().out)["findings"] if f["code"] == "file.permissions"]
    if who is None:
        assert findings == []
        return
    assert len(findings) == 1
    # A password-encrypted store: a note, not a warning (docs/keystore-findings.md, the policy).
    assert findings[0]["severity"] == "info"
    message = findings[0]["message"]
    assert f"readable by {who} (mode {mode:04o})" in message
    assert "password-encrypted" in message
    assert f"chmod 600 {store}" in message and "FLOWRUN_ALLOW_READABLE_KEYS=1" in message
    assert "UNPROTECTED" not in message
    _, text, _ = _inspect(capsys, store)
    assert "file.permissions" in text.split("Info (")[1]
    assert text.rstrip().endswith("usable as a client identity")


def test_a_store_without_private_key_gets_no_permission_warning(material_files: PkiFiles,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    material_files.root_pem.chmod(0o644)
    main(["keystore", "inspect", str(material_files.root_pem), "--json"])
    codes = [f["code"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert "store.no_private_key" in codes
    assert "file.permissions" not in codes


def _plaintext_key(files: PkiFiles, material_pki: Pki) -> Path:
    path = files.client.key_pem.with_name("plain-key.pem")
    path.write_bytes(material_pki.client.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


def test_a_plaintext_pem_key_readable_by_others_is_a_warning_in_inspect(
        material_files: PkiFiles, material_pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    key = _plaintext_key(material_files, material_pki)
    key.chmod(0o644)
    code, text, _ = _inspect(capsys, material_files.client.cert_pem, "--key-file", str(key))
    assert code == 0
    warning = text.split("Warnings (1)")[1]
    assert "file.permissions" in warning and f"the private key file {key} is readable" in warning
    assert "holds an unencrypted private key" in warning


def test_the_key_file_of_a_pem_identity_is_the_one_checked(material_files: PkiFiles, material_pki: Pki,
                                                           tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    material_files.client.cert_pem.chmod(0o644)
    key = _plaintext_key(material_files, material_pki)
    key.chmod(0o644)
    aliases = _aliases(tmp_path / "aliases", material_files.client.cert_pem, material_files, "https://localhost:1",
                       key_file=str(key), type="pem")
    with caplog.at_level(logging.WARNING, logger="flowrun"):
        Registry.load(aliases).identity("client")
    messages = [r.getMessage() for r in caplog.records if r.name == "flowrun"]
    assert len(messages) == 1
    assert f"private key file {key}" in messages[0]


def test_the_warning_is_logged_once_per_file(material_files: PkiFiles, caplog: pytest.LogCaptureFixture) -> None:
    store = material_files.client.cert_pem
    store.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="flowrun"):
        first = warn_unprotected(store, plaintext=True)
        again = warn_unprotected(store, plaintext=True)
    assert len(first) == 1 and again == []
    assert [r.code for r in caplog.records] == ["file.permissions"]  # type: ignore[attr-defined]
    store.chmod(0o600)
    assert permission_warnings(store) == []


def test_the_setting_silences_warnings_and_notes(material_files: PkiFiles, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    store = material_files.client.pkcs12
    store.chmod(0o644)
    assert [f.severity for f in permission_warnings(store, plaintext=True)] == ["warning"]
    monkeypatch.setenv("FLOWRUN_ALLOW_READABLE_KEYS", "1")
    assert permission_warnings(store, plaintext=True) == []
    code, text, _ = _inspect(capsys, store)
    assert code == 0 and "file.permissions" not in text


def test_runs_keep_quiet_about_an_encrypted_store_and_warn_once_for_a_plaintext_key(
        material_files: PkiFiles, material_pki: Pki, tmp_path: Path, material_partner: PartnerServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = material_files.client.jks
    store.chmod(0o644)
    aliases = _aliases(tmp_path / "aliases", store, material_files, material_partner.url)
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "two", "steps": [
        {"id": "one", "type": "rest", "alias": "bank", "path": "/accounts/1"},
        {"id": "two", "type": "rest", "alias": "bank2", "path": "/accounts/2"},
    ]}))
    assert main(["run", str(flow), "--aliases", str(aliases)]) == 0
    assert "file.permissions" not in capsys.readouterr().err

    # validate shows the note for the encrypted store.
    fresh = tmp_path / "fresh.jks"
    fresh.write_bytes(store.read_bytes())
    fresh.chmod(0o604)
    aliases = _aliases(tmp_path / "aliases-note", fresh, material_files, material_partner.url)
    assert main(["validate", str(flow), "--aliases", str(aliases)]) == 0
    out = capsys.readouterr().out
    assert out.count("note[file.permissions]") == 1 and "readable by others (mode 0604)" in out

    key = _plaintext_key(material_files, material_pki)
    key.chmod(0o640)
    aliases = _aliases(tmp_path / "aliases2", material_files.client.cert_pem, material_files,
                       material_partner.url, key_file=str(key), type="pem")
    assert main(["run", str(flow), "--aliases", str(aliases)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning[file.permissions]") == 1
    assert "readable by group (mode 0640)" in err and "unencrypted private key" in err


def test_the_cli_removes_its_warning_printer(material_files: PkiFiles, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    before = list(logging.getLogger("flowrun").handlers)
    with contextlib.suppress(FlowrunError):
        main(["certs", "check", "--aliases", str(tmp_path / "none")])
    capsys.readouterr()
    assert logging.getLogger("flowrun").handlers == before
