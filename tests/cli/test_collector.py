"""The garbage collector around the command line's start-up (flowrun/_cli/_collector.py)."""

from __future__ import annotations

import gc
import subprocess
import sys

from flowrun._cli import main


def test_main_called_by_a_program_leaves_the_collector_alone() -> None:
    frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()
    assert main(["schema", "aliases"]) == 0
    assert gc.isenabled() and gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen


def test_a_command_other_than_run_collects_from_its_start() -> None:
    code = ("import gc, io, contextlib; from flowrun._cli import _collector, main; default = gc.get_threshold(); "
            "_collector.hold(); held = gc.get_threshold() != default; out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out): code = main(['schema', 'aliases'])\n"
            "print(code, held, gc.get_threshold() == default, gc.get_freeze_count() > 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["0", "True", "True", "True"]


def test_the_command_exits_with_its_code_and_output() -> None:
    done = subprocess.run([sys.executable, "-m", "flowrun", "schema", "aliases"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0
    assert done.stdout.lstrip().startswith("{")


def test_a_long_first_iteration_is_still_collected() -> None:
    # Held, the collector still runs once garbage passes the raised threshold.
    code = ("import gc; from flowrun._cli import _collector; _collector.hold()\n"
            "before = gc.get_stats()[0]['collections']\n"
            "for _ in range(3 * _collector.HELD_THRESHOLD):\n    a = []; a.append(a)\n"
            "print(gc.get_stats()[0]['collections'] > before, gc.get_count()[0] < _collector.HELD_THRESHOLD)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["True", "True"]
