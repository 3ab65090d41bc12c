"""Writing report files: masked, private, never through a link.

A report holds what partners answered and where the aliases point, so it is created 0600 (an
existing file is tightened to 0600 too) and opened with ``O_NOFOLLOW``: a symbolic link planted at
the report's path is refused, not followed to overwrite another file. A directory, a FIFO or a
socket at that path is a usage error, said before the run starts (``check_report_path``) and again
when writing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from flowrun._errors import UsageError
from flowrun._models._redact import Secrets

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_HINT = "name a new or regular file, e.g. reports/junit.xml"


def check_report_path(path: Path, option: str) -> None:
    """Refuse, before anything runs, a report path that cannot be written as a regular file."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}", hint=_HINT) from None
    _refuse_kind(path, option, info.st_mode)


def _refuse_kind(path: Path, option: str, mode: int) -> None:
    if stat.S_ISLNK(mode):
        raise UsageError(f"{option} {path} is a symbolic link: reports are never written through a link",
                         hint="name the file itself, or remove the link")
    if stat.S_ISDIR(mode):
        raise UsageError(f"{option} {path} is a directory", hint=_HINT)
    if not stat.S_ISREG(mode) and not stat.S_ISCHR(mode):  # /dev/null is fine
        raise UsageError(f"{option} {path} is not a regular file (a FIFO or a socket)", hint=_HINT)


def write_report(path: Path, text: str, *, option: str, secrets: Secrets | None = None) -> None:
    """Write ``text`` (masked with ``secrets``) to ``path``, 0600, without following a link."""
    if secrets is not None:
        text = secrets.mask(text)
    with open_report(path, option=option) as handle:
        handle.write(text)


@contextlib.contextmanager
def open_report(path: Path, *, option: str) -> Iterator[TextIO]:
    """``path`` opened for writing a report in pieces (0600, never through a link); the caller masks."""
    check_report_path(path, option)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, _FLAGS, 0o600)
    except IsADirectoryError:
        raise UsageError(f"{option} {path} is a directory", hint=_HINT) from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise UsageError(f"{option} {path} is a symbolic link: reports are never written through a link",
                             hint="name the file itself, or remove the link") from None
        if exc.errno == errno.ENXIO:
            raise UsageError(f"{option} {path} is not a regular file (a FIFO or a socket)", hint=_HINT) from None
        raise UsageError(f"cannot write {option} {path}: {exc.strerror or exc}", hint=_HINT) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        info = os.fstat(fd)
        _refuse_kind(path, option, info.st_mode)
        if stat.S_ISREG(info.st_mode):
            os.set_blocking(fd, True)
            os.fchmod(fd, 0o600)
        yield handle
