"""The garbage collector of a ``flowrun`` process around its start-up and its exit.

Start-up (imports, record classes, alias records, the SSL context) builds some 40,000 objects that
live until the process ends. The collector, triggered every 700 allocations, scans them again and
again while they are built and frees almost nothing (~10 ms of a one-step run); at exit the
interpreter's last collections scan all of them once more (~25 ms). So the command line holds the
collector during start-up, then freezes what start-up built (later collections skip it) and lets it
run as usual; at exit it freezes everything. Frozen objects are still freed by reference counting:
only cycles among them are kept, and those live until the process ends anyway.

Only the ``flowrun`` command holds the collector (``console_main``); ``main(argv)`` called by a
program that embeds it leaves the collector alone.
"""

from __future__ import annotations

import gc

_held: list[bool] = []  # [True] while this module holds the collector


def hold() -> None:
    if gc.isenabled():
        gc.disable()
        _held.append(True)


def release() -> None:
    """Start-up is over (a first result, or a command that is not ``run``): collect as usual from
    here on, without scanning what start-up built."""
    if _held:
        _held.clear()
        gc.freeze()
        gc.enable()


def exiting() -> None:
    release()
    gc.freeze()
