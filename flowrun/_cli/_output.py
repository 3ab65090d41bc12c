"""Terminal output: colour on a terminal, plain when piped or when NO_COLOR is set."""

from __future__ import annotations

import os
from typing import Any, TextIO

from flowrun._errors import FlowrunError
from flowrun._models._numbers import dumps

_CODES = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "cyan": "36", "dim": "2", "bold": "1"}


class Console:
    def __init__(self, stream: TextIO, *, color: bool) -> None:
        self.stream = stream
        self.color = color

    @classmethod
    def for_stream(cls, stream: TextIO, *, no_color: bool = False) -> Console:
        color = (
            not no_color
            and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb"
            and hasattr(stream, "isatty")
            and stream.isatty()
        )
        return cls(stream, color=color)

    def style(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def print(self, text: str = "") -> None:
        self.stream.write(text + "\n")

    def print_json(self, data: Any) -> None:
        self.stream.write(dumps(data, indent=2, ensure_ascii=False, default=None) + "\n")

    def print_error(self, error: FlowrunError) -> None:
        label = self.style(f"error[{error.code}]", "red", "bold")
        self.print(f"{label}: {error}")
        if error.hint:
            self.print(f"  {self.style('hint', 'cyan')}: {error.hint}")
