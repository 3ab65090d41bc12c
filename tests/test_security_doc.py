"""SECURITY.md names the test that proves each guarantee: every named test exists.

References are `` `tests/path.py::test_name` ``, and `` `::test_name` `` for another test of the
file named last.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?::(\w+)`")


def test_every_test_named_in_security_md_exists() -> None:
    text = (REPO / "SECURITY.md").read_text(encoding="utf-8")
    current: str | None = None
    named: list[tuple[str, str]] = []
    for match in _REFERENCE.finditer(text):
        current = match.group(1) or current
        assert current is not None, f"`::{match.group(2)}` before any file is named"
        named.append((current, match.group(2)))
    assert len(named) > 40
    missing = [f"{file}::{name}" for file, name in named
               if not re.search(rf"^(async )?def {name}\(", (REPO / file).read_text(encoding="utf-8"), re.M)]
    assert missing == []
