"""SIGINT and SIGTERM during ``flowrun run`` and ``flowrun test``: stop at once, keep what is done.

``SignalGuard`` installs handlers for both signals (main thread only) and restores the previous
ones on exit. The first signal is recorded; when the guard is *armed* (a flow is running in this
thread) the handler also raises ``SignalInterrupt``, which breaks out of a blocking read or a
retry pause at once. Further signals are ignored while the command writes its reports. The
command then exits with 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["SignalGuard", "SignalInterrupt"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalInterrupt(KeyboardInterrupt):
    """A signal asked the command to stop. ``reason`` names it in reports ("SIGTERM")."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.reason = signal.Signals(signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class SignalGuard:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._armed = False
        self._previous: dict[int, Any] = {}
        # Woken by the handler: lets a waiting main thread notice the signal without polling.
        self.stopped = threading.Event()

    @property
    def interrupt(self) -> SignalInterrupt | None:
        return SignalInterrupt(self.signum) if self.signum is not None else None

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """While inside, a signal raises ``SignalInterrupt`` here; a signal that came before
        raises it on entry."""
        self.raise_if_stopped()
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    def raise_if_stopped(self) -> None:
        if self.signum is not None:
            raise SignalInterrupt(self.signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            return  # already stopping: let the reports be written
        self.signum = signum
        self.stopped.set()
        if self._armed:
            self._armed = False
            raise SignalInterrupt(signum)
