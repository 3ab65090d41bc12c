"""Find the third-party programs the suite starts (nginx, apache2, haproxy, a proxy, java).

On a developer's machine a missing program skips the test that needs it. Under CI (``CI`` set),
``.ci/run`` has installed every one of them, so a missing program fails the test instead: a
suite that silently skipped its real partners would prove nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Debian installs some daemons outside a normal user's PATH.
_EXTRA_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in _EXTRA_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_binary(name: str, package: str | None = None) -> str:
    """The program's path; skip (or fail under CI) when it is not installed."""
    path = find_binary(name)
    if path is not None:
        return path
    hint = f"install the Debian package {package or name!r}"
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed but CI must run this test: {hint} (.ci/run does)")
    pytest.skip(f"{name} is not installed: {hint}")
