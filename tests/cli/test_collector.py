"""The garbage collector around the command line's start-up (flowrun/_cli/_collector.py)."""

from __future__ import annotations

import gc
import subprocess
import sys

from flowrun._cli import main


def test_main_called_by_a_program_leaves_the_collector_alone() -> None:
    frozen = gc.get_freeze_count()
    assert main(["schema", "aliases"]) == 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_a_command_other_than_run_collects_from_its_start() -> None:
    code = ("import gc, io, contextlib; from flowrun._cli import _collector, main; _collector.hold(); "
            "out = io.StringIO()\nwith contextlib.redirect_stdout(out): code = main(['schema', 'aliases'])\n"
            "print(code, gc.isenabled(), gc.get_freeze_count() > 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["0", "True", "True"]


def test_the_command_exits_with_its_code_and_output() -> None:
    done = subprocess.run([sys.executable, "-m", "flowrun", "schema", "aliases"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0
    assert done.stdout.lstrip().startswith("{")


def test_the_hold_ends_by_itself_when_no_result_comes() -> None:
    # A long first iteration (many rows or pages) must not run without the collector.
    code = ("import gc, time; from flowrun._cli import _collector; _collector.hold(); held = not gc.isenabled()\n"
            "for _ in range(400):\n    if gc.isenabled(): break\n    time.sleep(0.05)\n"
            "print(held, gc.isenabled(), gc.get_freeze_count() > 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["True", "True", "True"]
