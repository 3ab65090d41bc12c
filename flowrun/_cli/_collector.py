"""The garbage collector of a ``flowrun`` process around its start-up and its exit.

Start-up (imports, record classes, alias records, the SSL context) builds some 40,000 objects that
live until the process ends. The collector, triggered every 700 allocations, scans them again and
again while they are built and frees almost nothing (~10 ms of a one-step run); at exit the
interpreter's last collections scan all of them once more (~25 ms). So the command line holds the
collector during start-up, then freezes what start-up built (later collections skip it) and lets it
run as usual; at exit it freezes everything. Frozen objects are still freed by reference counting:
only cycles among them are kept, and those live until the process ends anyway.

The hold ends at the first result of ``run`` (at once for other commands), and after a second at
most: a first result can take long (a for_each over many rows, many pages), and the garbage of its
requests must not pile up meanwhile.

Only the ``flowrun`` command holds the collector (``console_main``); ``main(argv)`` called by a
program that embeds it leaves the collector alone.
"""

from __future__ import annotations

import gc
import threading

HOLD_AT_MOST_S = 1.0

_held: list[threading.Timer] = []  # the timer that ends the hold, while this module holds the collector


def hold() -> None:
    if gc.isenabled():
        gc.disable()
        timer = threading.Timer(HOLD_AT_MOST_S, release)
        timer.daemon = True
        _held.append(timer)
        timer.start()


def release() -> None:
    """Start-up is over (a first result, a command that is not ``run``, or the time is up): collect
    as usual from here on, without scanning what start-up built."""
    if _held:
        timers = list(_held)
        _held.clear()
        for timer in timers:
            timer.cancel()
        gc.freeze()
        gc.enable()


def exiting() -> None:
    release()
    gc.freeze()
