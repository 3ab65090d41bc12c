"""A closed pipe on standard output (``flowrun run ... | head -1``): quiet, the command's own exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flowrun.testing import PkiFiles
from tests.flows.conftest import API_KEY, PASSWORD, REPO

CANONICAL = REPO / "samples" / "flows" / "balance.json"


def run_into_closed_pipe(*args: str | Path, env: dict[str, str] | None = None,
                         stderr_too: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the installed command with standard output (and error) on a pipe whose reader is gone."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run([sys.executable, "-m", "flowrun", *map(str, args)], stdout=writer,
                              stderr=writer if stderr_too else subprocess.PIPE, text=True,
                              env=env or dict(os.environ), check=False, timeout=120)
    finally:
        os.close(writer)


def run_into_head(*args: str | Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Like ``flowrun ... | head -1``: the reader takes one line and closes its end."""
    process = subprocess.Popen([sys.executable, "-m", "flowrun", *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    error = process.stderr.read()
    process.stderr.close()
    return process.wait(timeout=120), first, error


def test_run_into_a_closed_pipe_keeps_the_exit_code(aliases: Path) -> None:
    env = {**os.environ, "FLOWRUN_TEST_KEYSTORE_PASSWORD": PASSWORD, "FLOWRUN_TEST_API_KEY": API_KEY}
    passed = run_into_closed_pipe("run", CANONICAL, "--aliases", aliases, "-i", "account=7", env=env)
    assert passed.returncode == 0
    assert passed.stderr == ""
    failed = run_into_closed_pipe("run", CANONICAL, "--aliases", aliases, "-i", "account=0", env=env,
                                  stderr_too=True)
    assert failed.returncode == 1  # the flow failed; the pipe changes nothing
    code, first, error = run_into_head("run", CANONICAL, "--aliases", aliases, "-i", "account=7",
                                       "--iterations", "50", env=env)
    assert code == 0
    assert first.startswith("ok")
    assert "Traceback" not in error and "BrokenPipe" not in error


def test_keystore_inspect_into_a_closed_pipe_exits_0(pki_files: PkiFiles) -> None:
    env = {**os.environ, "FLOWRUN_TEST_KEYSTORE_PASSWORD": PASSWORD}
    done = run_into_closed_pipe("keystore", "inspect", pki_files.client.jks, "--password-env",
                                "FLOWRUN_TEST_KEYSTORE_PASSWORD", env=env)
    assert done.returncode == 0
    assert done.stderr == ""
    code, first, error = run_into_head("keystore", "inspect", pki_files.client.jks, "--password-env",
                                       "FLOWRUN_TEST_KEYSTORE_PASSWORD", env=env)
    assert (code, error) == (0, "")
    assert first.startswith("Keystore:")
