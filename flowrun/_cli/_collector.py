"""The garbage collector of a ``flowrun`` process around its start-up and its exit.

Start-up (imports, record classes, alias records, the SSL context) builds some 60,000 objects that
live until the process ends. The collector, triggered every 700 allocations, scans them again and
again while they are built and frees almost nothing (~10 ms of a one-step run); at exit the
interpreter's last collections scan all of them once more (~25 ms). So the command line holds the
collector during start-up, then freezes what start-up built (later collections skip it) and lets it
run as usual; at exit it freezes everything. Frozen objects are still freed by reference counting:
only cycles among them are kept, and those live until the process ends anyway.

Holding raises the first generation's threshold rather than turning the collector off: start-up
never reaches it, and a long first iteration (a for_each over many rows, many pages) is still
collected, every ``HELD_THRESHOLD`` allocations, until the hold ends at ``run``'s first result (at
once for other commands).

Only the ``flowrun`` command holds the collector (``console_main``); ``main(argv)`` called by a
program that embeds it leaves the collector alone.
"""

from __future__ import annotations

import gc

HELD_THRESHOLD = 100_000

_held: list[tuple[int, ...]] = []  # the thresholds to restore, while this module holds the collector


def hold() -> None:
    if gc.isenabled() and not _held:
        thresholds = gc.get_threshold()
        _held.append(thresholds)
        gc.set_threshold(max(HELD_THRESHOLD, thresholds[0]), *thresholds[1:])


def release() -> None:
    """Start-up is over (a first result, or a command that is not ``run``): collect as usual from
    here on, without scanning what start-up built."""
    if _held:
        thresholds = _held.pop()
        gc.freeze()
        gc.set_threshold(*thresholds)


def exiting() -> None:
    release()
    gc.freeze()
