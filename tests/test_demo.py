"""`flowrun demo` runs every sample flow against the embedded partner: the samples cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flowrun._cli import main

SAMPLES = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "samples" / "flows").glob("*.json"))


def test_demo_runs_every_sample_over_mutual_tls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "passed"
    files = sorted(Path(flow["file"]).stem for flow in report["flows"])
    assert files == SAMPLES
    for flow in report["flows"]:
        assert flow["status"] == "passed", flow
    partner = report["partner"]
    # One client identity, presented on every connection; keep-alive keeps handshakes below requests.
    assert len(partner["client_certs_seen"]) == 1
    assert 0 < partner["handshakes"] < partner["requests"]


def test_demo_keep_leaves_a_usable_alias_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--keep", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    kept = tmp_path / "demo"
    assert (kept / "keystores" / "client.jks").read_bytes()[:4] == b"\xfe\xed\xfe\xed"
    assert (kept / "aliases" / "bank.json").is_file()
    env_file = kept / "demo.env"
    assert env_file.stat().st_mode & 0o077 == 0
    # The keystore password lives in demo.env only, never on the terminal.
    password = next(line.split("=", 1)[1].strip("'") for line in env_file.read_text().splitlines()
                    if "BANK_KEYSTORE_PASSWORD" in line)
    assert password not in out


def test_demo_as_a_process_prints_no_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "flowrun", "demo"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{len(SAMPLES)} of {len(SAMPLES)} flows passed" in proc.stdout


def test_demo_serve_needs_keep(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--serve"]) == 2
    assert "--serve needs --keep" in capsys.readouterr().err
