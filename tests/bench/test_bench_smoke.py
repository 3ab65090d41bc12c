"""The bench harness cannot rot: ``bench/run.py --quick`` runs every pair (tiny sizes, one round)
and reports each one with a ratio, its checks, or the reason it was skipped.

No timing is asserted: on a shared machine numbers are noise; what must hold is that every pair
still runs end to end against real servers (nginx or the Python partner) over mutual TLS.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN = REPO_ROOT / "bench" / "run.py"
PAIR_NAMES = ("rest", "newman", "cold-start", "soap", "async", "async-latency", "resources", "soap-1mb", "memory",
              "aliases", "celery", "celery-overhead")
TIMED = {"rest", "newman", "cold-start", "soap", "async", "async-latency", "soap-1mb", "aliases", "celery",
         "celery-overhead"}

pytestmark = pytest.mark.slow


def run_bench(tmp_path: Path, *args: str) -> tuple[str, dict]:
    report = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--json", str(report), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout, json.loads(report.read_text())


def test_every_pair_reports_a_ratio_or_a_skip(tmp_path: Path) -> None:
    stdout, report = run_bench(tmp_path)

    for name in PAIR_NAMES:
        line = re.search(rf"^{re.escape(name)}: (ratio \d+\.\d+|checks \d+/\d+ met|skipped: .+)", stdout, re.M)
        assert line, f"no result line for pair {name!r} in:\n{stdout[-3000:]}"
    assert "| pair | flowrun | reference | ratio | target | verdict |" in stdout

    pairs = {entry["name"]: entry for entry in report["pairs"]}
    assert sorted(pairs) == sorted(PAIR_NAMES)
    for name, entry in pairs.items():
        assert entry["status"] in ("ok", "skipped"), f"{name}: {entry['status']}: {entry['why']}"
        if entry["status"] == "skipped":
            assert entry["why"], name
            continue
        if name in TIMED:
            assert entry["ratio"] > 0 and len(entry["flowrun_s"]) == len(entry["reference_s"]) == 1, entry
        else:
            assert entry["checks"], entry


def test_only_and_the_python_server_fallback(tmp_path: Path) -> None:
    stdout, report = run_bench(tmp_path, "--only", "rest,resources", "--rest-server", "python")

    assert [entry["name"] for entry in report["pairs"]] == ["rest", "resources"]
    assert "REST server: Python partner (asked for)" in report["notes"]
    resources = report["pairs"][1]
    assert resources["status"] == "ok", resources
    handshakes = next(c for c in resources["checks"] if c["name"].startswith("TLS handshakes"))
    assert "python partner count" in handshakes["name"]
    assert re.search(r"^rest: ratio \d", stdout, re.M)


def test_a_name_chooses_its_variants(tmp_path: Path) -> None:
    _, report = run_bench(tmp_path, "--only", "async")

    assert [entry["name"] for entry in report["pairs"]] == ["async", "async-latency"]
    assert all(entry["status"] == "ok" for entry in report["pairs"]), report["pairs"]
    transport = next(c for c in report["pairs"][0]["checks"] if c["name"] == "AsyncRestExecutor's transport")
    assert transport["value"] == "aiohttp directly (no httpx client)"
