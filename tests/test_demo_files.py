"""The demo ships copies of the repository's aliases, samples and steps: they must not drift."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "flowrun" / "_demo" / "files"


def _files(base: Path) -> dict[str, bytes]:
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file() and p.suffix in (".json", ".wsdl", ".xsd")}


@pytest.mark.parametrize("folder", ["aliases", "samples", "steps"])
def test_shipped_copy_equals_repository(folder: str) -> None:
    repository = _files(ROOT / folder)
    shipped = _files(SHIPPED / folder)
    assert repository, f"{folder}/ is empty"
    assert shipped == repository, f"flowrun/_demo/files/{folder} differs from {folder}/: copy it again"
