"""`flowrun demo` runs every sample flow against the embedded partner: the samples cannot rot."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
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


def _password(directory: Path) -> str:
    return next(line.split("=", 1)[1].strip("'") for line in (directory / "demo.env").read_text().splitlines()
                if line.startswith("export BANK_KEYSTORE_PASSWORD="))


def test_keep_refuses_a_used_directory_unless_forced_and_keeps_the_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kept = tmp_path / "demo"
    kept.mkdir()
    (kept / "mine.txt").write_text("not the demo's")
    assert main(["demo", "--keep", str(kept)]) == 2
    err = capsys.readouterr().err
    assert "the directory is not empty" in err and "--force" in err
    assert sorted(p.name for p in kept.iterdir()) == ["mine.txt"]
    assert main(["demo", "--keep", str(kept), "--force"]) == 0
    first = _password(kept)
    assert main(["demo", "--keep", str(kept), "--force"]) == 0
    capsys.readouterr()
    assert _password(kept) == first  # a forced re-run does not change the keystore password
    assert (kept / "mine.txt").read_text() == "not the demo's"
    assert main(["demo", "--force"]) == 2


def _suggested(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if re.match(r"  (\. |flowrun )", line)]


def _run_all(commands: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    script = []
    for index, command in enumerate(commands):
        script += [command, f'[ $? = 0 ] || {{ echo "SUGGESTION_FAILED {index}"; exit 1; }}']
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWRUN_", "BANK_", "PARTNER_"))}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    return subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=300, check=False)


def test_every_command_the_kept_demo_suggests_exits_0(tmp_path: Path) -> None:
    kept = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "flowrun", "demo", "--keep", str(kept)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    suggested = _suggested(done.stdout)
    assert any("certs check" in command for command in suggested)
    ran = _run_all(suggested, tmp_path)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]


def test_the_background_partner_serves_the_kept_aliases_until_killed(tmp_path: Path) -> None:
    kept = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "flowrun", "demo", "--keep", str(kept), "--serve", "--background"],
                          capture_output=True, text=True, timeout=300, check=False)
    pid_file = kept / "partner.pid"
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert pid_file.is_file()
        assert "FLOWRUN_CONNECT_TO" in (kept / "demo.env").read_text()
        suggested = _suggested(done.stdout)
        assert any(command.startswith("flowrun run ") for command in suggested)
        assert any(command.startswith("flowrun alias test ") for command in suggested)
        ran = _run_all(suggested, tmp_path)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
        assert "passed" in ran.stdout
    finally:
        if pid_file.is_file():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_file.exists()
    assert "partner stopped" in (kept / "demo.log").read_text()
