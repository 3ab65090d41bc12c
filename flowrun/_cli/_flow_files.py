"""Finding flow files: paths given on the command line, directories scanned for flows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flowrun._errors import UsageError

# Directories that hold other JSON files of a project, never flows.
_SKIPPED_DIRS = frozenset({"aliases", "node_modules", ".git", ".venv", "__pycache__"})


def flow_files(paths: Sequence[Path]) -> list[Path]:
    """Files as given; directories scanned recursively for ``*.json`` files that look like flows
    (a JSON object with ``name`` and a ``steps`` array), in sorted order."""
    from flowrun._load._flows import looks_like_flow

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for candidate in sorted(path.rglob("*.json")):
                relative = candidate.relative_to(path).parts[:-1]
                if any(part in _SKIPPED_DIRS or part.startswith(".") for part in relative):
                    continue
                if candidate.is_file() and looks_like_flow(candidate):
                    found.append(candidate)
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise UsageError(f"no flow files found in {', '.join(str(p) for p in paths)}",
                         hint="a flow file is a JSON object with 'name' and 'steps'")
    return unique
