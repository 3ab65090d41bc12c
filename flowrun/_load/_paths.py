"""Paths named in definition files, resolved against the file that names them."""

from __future__ import annotations

from pathlib import Path

from flowrun._errors import SchemaError


def resolve_path(base: Path, value: str) -> Path:
    """``value`` made absolute against ``base`` (``~`` expanded). Raises an unplaced SchemaError
    for a path that cannot exist; callers give it the place it was written."""
    if "\0" in value:
        raise SchemaError(f"the path {value!r} contains a NUL character")
    try:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path).resolve()
    except RuntimeError as exc:  # "~user" of an unknown user; a symbolic link loop
        raise SchemaError(f"the path {value!r} cannot be resolved: {exc}") from None
    except OSError as exc:
        raise SchemaError(f"the path {value!r} cannot be resolved: {exc.strerror or exc}") from None


def is_file(path: Path) -> bool:
    """``path.is_file()``, but False (not an exception) for a name the system refuses: too long,
    or a component that is not a directory."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
