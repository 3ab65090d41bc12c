"""Shared helpers for the importer tests: the corpus, and the CLI run in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowrun._cli import main

CORPUS = Path(__file__).parent / "corpus"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["--no-color", *(str(a) for a in args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def all_text(directory: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(directory.rglob("*.json")))
