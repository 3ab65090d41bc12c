"""Where a record came from, so that every error can point at the file, JSON pointer and line."""

from __future__ import annotations

from pathlib import Path

import attrs

from flowrun._errors import Location
from flowrun._models._record import ValueRecord


@attrs.frozen(eq=False, repr=False)
class Origin(ValueRecord):
    file: Path | None = None
    pointer: str = ""
    line: int | None = None

    @property
    def directory(self) -> Path:
        return self.file.parent if self.file is not None else Path.cwd()

    def child(self, *parts: str | int, line: int | None = None) -> Origin:
        escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
        return Origin(self.file, "/".join([self.pointer, *escaped]), line if line is not None else self.line)

    def location(self) -> Location:
        return {"file": self.file, "pointer": self.pointer or None, "line": self.line}


NOWHERE = Origin()
