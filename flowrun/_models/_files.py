"""Files flowrun reads: regular files only.

A FIFO blocks the open until someone writes to it (a flow file that is a named pipe hangs a run
in a system call that signals do not interrupt), ``/dev/zero`` never ends, a socket or a
directory is not data. Every place that reads a path a user or a definition names (flows, alias
files, inputs and ``--data`` files, WSDLs and their local imports, body files, secret files,
keystores and trust certs) asks ``open_regular`` or ``special_kind``; only password files given
on the command line may be pipes (``--password-file <(...)``, read with a bound).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def special_kind(mode: int) -> str | None:
    """None for a regular file; else what the file is ("a FIFO (named pipe)"), for messages."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


class NotRegularFileError(OSError):
    """``open_regular`` met something that is not a regular file; ``strerror`` says what it is."""

    def __init__(self, kind: str, path: Path) -> None:
        super().__init__(0, f"it is {kind}, not a regular file", str(path))
        self.kind = kind


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``open(path, "rb")`` for a regular file (symbolic links followed); ``NotRegularFileError``
    for anything else, decided on the opened descriptor (no race with a swapped path) and without
    blocking on a FIFO. Other failures are the usual ``OSError``."""
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = special_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFileError(kind, Path(path))
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
