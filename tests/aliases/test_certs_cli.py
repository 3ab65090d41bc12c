"""``flowrun certs check``: days to expiry of every keystore and trust store cert, exit codes for cron/CI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowrun._cli import main
from flowrun.testing import Pki, PkiFiles, issue_client, make_ca
from tests._keytool import build_keytool_store
from tests.aliases._setup import (
    KEYSTORE_ENV,
    KEYSTORE_PASSWORD,
    keystore,
    mtls_records,
    trust_cert,
    write_aliases,
    write_jks,
    write_pem,
)

pytestmark = pytest.mark.usefixtures("secrets_env")


def check(capsys: pytest.CaptureFixture[str], directory: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["certs", "check", "--aliases", str(directory), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def common_name(subject: str) -> str:
    return next(part[3:] for part in subject.split(",") if part.startswith("CN="))


@pytest.fixture
def fresh(tmp_path: Path, pki_files: PkiFiles) -> Path:
    """One keystore (leaf, intermediate, root) and one trust cert, all valid for a year."""
    return write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=8443))


def test_fresh_certificates_pass_with_a_short_window(capsys: pytest.CaptureFixture[str], fresh: Path) -> None:
    code, report = check(capsys, fresh, "--within", "1")
    assert code == 0
    assert report["status"] == "ok"
    assert {c["status"] for c in report["certificates"]} == {"ok"}


def test_certificates_expiring_within_a_year_fail_with_within_400(capsys: pytest.CaptureFixture[str],
                                                                 fresh: Path) -> None:
    code, report = check(capsys, fresh, "--within", "400")
    assert code == 1
    assert report["status"] == "attention"
    assert report["within_days"] == 400
    assert {c["status"] for c in report["certificates"]} == {"expiring"}
    assert all(360 <= c["days_left"] <= 365 for c in report["certificates"])


def test_default_window_is_30_days(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                   pki_files: PkiFiles) -> None:
    soon = write_jks(tmp_path / "keystores" / "soon.jks", issue_client(pki, days=20))
    directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=8443, keystore_file=soon))
    code, report = check(capsys, directory)
    assert code == 1
    assert report["within_days"] == 30
    leaf = next(c for c in report["certificates"] if c["role"] == "leaf")
    assert (leaf["status"], leaf["days_left"]) == ("expiring", 19)
    assert check(capsys, directory, "--within", "10")[0] == 0


def test_json_shape_sorted_by_expiry(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                     pki_files: PkiFiles) -> None:
    short_ca = make_ca("short-lived partner CA", days=90)
    records = [*mtls_records(pki_files, port=8443),
               trust_cert("short", write_pem(tmp_path / "certs" / "short.pem", short_ca))]
    code, report = check(capsys, write_aliases(tmp_path / "aliases", records))
    assert code == 0
    assert set(report) == {"checked_at", "within_days", "status", "certificates", "errors"}
    assert report["checked_at"].endswith("Z")
    first, *rest = report["certificates"]
    assert set(first) == {"record_kind", "record", "source", "role", "subject", "issuer", "not_after",
                          "days_left", "status", "sha256"}
    assert (first["record_kind"], first["record"], first["role"]) == ("trust_store_cert", "short", "trust")
    assert first["source"] == str(tmp_path / "certs" / "short.pem")
    assert first["subject"] == "CN=short-lived partner CA,O=flowrun test PKI"
    assert 88 <= first["days_left"] <= 90
    assert [c["not_after"] for c in report["certificates"]] == sorted(c["not_after"] for c in report["certificates"])
    roles = [(c["record_kind"], c["record"], c["role"]) for c in rest]
    assert sorted(roles) == sorted([("keystore", "client_ks", "leaf"), ("keystore", "client_ks", "chain"),
                                    ("keystore", "client_ks", "chain"),
                                    ("trust_store_cert", "partner_root", "trust")])
    leaf = next(c for c in rest if c["role"] == "leaf")
    assert leaf["sha256"] == pki.client.sha256
    assert report["errors"] == []


def test_expired_certificate_fails_even_with_zero_window(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                        pki: Pki, pki_files: PkiFiles) -> None:
    expired = write_jks(tmp_path / "keystores" / "expired.jks", issue_client(pki, expired=True))
    directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=8443, keystore_file=expired))
    code, report = check(capsys, directory, "--within", "0")
    assert code == 1
    first = report["certificates"][0]
    assert (first["role"], first["status"]) == ("leaf", "expired")
    assert first["days_left"] < 0


def test_keytool_store_leaf_expires_before_its_cas(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A keytool-made JKS: CA certificates for ten years, the signed leaf for one."""
    store = build_keytool_store(tmp_path / "store", storetype="JKS", storepass=KEYSTORE_PASSWORD)
    directory = write_aliases(tmp_path / "aliases", [keystore("keytool_ks", store.path)])
    code, report = check(capsys, directory, "--within", "400")
    assert code == 1
    statuses = {common_name(c["subject"]): c["status"] for c in report["certificates"]}
    assert statuses == {"client": "expiring", "Test Intermediate CA": "ok", "Test Root CA": "ok"}
    assert common_name(report["certificates"][0]["subject"]) == "client"


def test_unreadable_record_is_reported_and_fails(capsys: pytest.CaptureFixture[str], fresh: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEYSTORE_ENV)
    code, report = check(capsys, fresh)
    assert code == 1
    assert [c["record"] for c in report["certificates"]] == ["partner_root"]
    (error,) = report["errors"]
    assert (error["record_kind"], error["record"], error["code"]) == (
        "keystore", "client_ks", "definition.secret_unavailable")
    assert KEYSTORE_ENV in error["message"]
    assert error["pointer"] == "/0/password"


def test_unreadable_record_text(capsys: pytest.CaptureFixture[str], fresh: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYSTORE_ENV, "wrong-Pw-77")
    code = main(["certs", "check", "--aliases", str(fresh)])
    out = capsys.readouterr().out
    assert code == 1
    assert "keystore client_ks: [keystore.wrong_password]" in out
    assert "; 1 record could not be read" in out
    assert "wrong-Pw-77" not in out


def test_nothing_readable_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    records = [keystore("gone", tmp_path / "missing.jks"), trust_cert("gone_too", tmp_path / "missing.pem")]
    code, report = check(capsys, write_aliases(tmp_path / "aliases", records))
    assert code == 2
    assert report["status"] == "nothing_checked"
    assert {e["code"] for e in report["errors"]} == {"keystore.not_found", "trust_cert.unreadable"}


def test_no_key_material_records_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    directory = write_aliases(tmp_path / "aliases", [{"kind": "credential", "name": "anon", "type": "none"}])
    code = main(["certs", "check", "--aliases", str(directory)])
    assert code == 2
    assert "name no keystore and no trust store cert" in capsys.readouterr().out


def test_text_lists_soonest_first(capsys: pytest.CaptureFixture[str], fresh: Path, tmp_path: Path) -> None:
    short_ca = make_ca("short-lived partner CA", days=10)
    path = fresh / "partner.json"
    records = json.loads(path.read_text())
    records.append(trust_cert("short", write_pem(tmp_path / "short.pem", short_ca)))
    path.write_text(json.dumps(records))
    code = main(["certs", "check", "--aliases", str(fresh)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0].startswith("expiring") and "trust_store_cert short (trust)" in lines[0]
    assert all(line.startswith("ok") for line in lines[1:5])
    assert lines[-1] == "attention: 1 of 5 certificates expire within 30 days or have expired"


def test_negative_within_is_a_usage_error(capsys: pytest.CaptureFixture[str], fresh: Path) -> None:
    assert main(["certs", "check", "--aliases", str(fresh), "--within", "-1"]) == 2
    assert "cannot be negative" in capsys.readouterr().err
