"""A closed pipe on standard output or error, like any Unix tool: ``flowrun run ... | head -1``.

When the reader goes away, the rest of the output is dropped (the stream is pointed at
/dev/null) and the command finishes and exits with its own code: no traceback, and the exit
code still says whether the flow passed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO, cast

__all__ = ["flush_quietly", "quiet_broken_pipes"]


class _PipeStream:
    """Wraps a text stream; a ``BrokenPipeError`` silences it for the rest of the process."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()

    def _silence(self) -> None:
        self.broken = True
        # What is still buffered goes to /dev/null, so the interpreter's own flush at exit is quiet too.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def quiet_broken_pipes() -> None:
    """Replace ``sys.stdout`` and ``sys.stderr`` by pipe-safe wrappers (the console entry point only)."""
    if not isinstance(sys.stdout, _PipeStream):
        sys.stdout = cast(TextIO, _PipeStream(sys.stdout))
    if not isinstance(sys.stderr, _PipeStream):
        sys.stderr = cast(TextIO, _PipeStream(sys.stderr))


def flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):
            stream.flush()
