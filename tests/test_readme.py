"""The README's commands, in order, on a fresh copy of the repository: each exits 0.

The commands are read from README.md itself (every line of its indented code blocks), so the
README and this test cannot drift. The Quickstart's two install commands are what ``.ci/run``
runs; here the virtual environment running the tests stands in for the one they create.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# The Quickstart's commands, in the form .ci/run parses (sed 's/^    \(python3 -m venv .venv.*pytest.*\)$/...').
_INSTALL = re.compile(r"python3 -m venv \.venv .*")
_NOT_COPIED = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", ".pytest_cache", ".mypy_cache",
                                     ".ruff_cache", "demo", "junit.xml")


def readme_commands(text: str) -> list[str]:
    """Every line of the README's indented code blocks (fenced blocks are Python, not commands)."""
    commands: list[str] = []
    fenced = False
    previous = ""
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("    ") and line.strip() and (not previous.strip() or
                                                                            previous.startswith("    ")):
            commands.append(line[4:])
        previous = "" if fenced else line
    return commands


def test_the_readme_starts_with_the_two_quickstart_commands() -> None:
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert commands[0] == "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/flowrun demo"
    assert commands[1] == ("python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && "
                           ".venv/bin/python -m pytest")
    assert not any(_INSTALL.match(command) for command in commands[2:])


def test_every_readme_command_exits_0_on_a_fresh_copy(tmp_path: Path) -> None:
    commands = readme_commands(README.read_text(encoding="utf-8"))[2:]
    assert len(commands) >= 10
    copy = tmp_path / "flowrun"
    shutil.copytree(REPO, copy, ignore=_NOT_COPIED)
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").is_file() or not (venv / "bin" / "flowrun").is_file():
        pytest.fail(f"the tests must run in a virtual environment with flowrun installed, not {venv}")
    (copy / ".venv").symlink_to(venv)
    script = ["set -u"]
    for index, command in enumerate(commands):
        script += [command,
                   f'code=$?; if [ "$code" != 0 ]; then echo "README_COMMAND_FAILED {index} $code"; exit 1; fi']
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("FLOWRUN_", "BANK_", "PARTNER_", "VIRTUAL_ENV"))}
    environment["NO_COLOR"] = "1"
    try:
        done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=copy, env=environment, capture_output=True,
                              text=True, timeout=600, check=False)
    finally:
        pid_file = copy / "demo" / "partner.pid"
        if pid_file.is_file():  # the partner of a failed run is still up: stop it
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
    failed = re.search(r"README_COMMAND_FAILED (\d+) (\d+)", done.stdout)
    if failed is not None:
        pytest.fail(f"README command `{commands[int(failed[1])]}` exited {failed[2]}:\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert (copy / "demo" / "junit.xml").is_file()  # the commands ran where the README says
    pid_file = copy / "demo" / "partner.pid"
    deadline = time.monotonic() + 30
    while pid_file.exists() and time.monotonic() < deadline:  # the partner removes it as it stops
        time.sleep(0.05)
    assert not pid_file.exists()  # the last command stopped the partner
