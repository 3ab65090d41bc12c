"""Terminal output: colour on a terminal, plain when piped or when NO_COLOR is set.

Every line goes through the command's ``Secrets`` (the values its runs sent as secrets are shown
as ``***``) and is made visible: control characters and escape sequences from partners are shown
escaped (``\\x1b``), never interpreted; only the colour codes ``style`` adds stay codes.
"""

from __future__ import annotations

import os
import re
from typing import Any, TextIO

from flowrun._errors import FlowrunError
from flowrun._models._numbers import dumps
from flowrun._models._redact import Secrets, json_visible, visible

_CODES = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "cyan": "36", "dim": "2", "bold": "1"}
_CODE = "(?:" + "|".join(sorted(set(_CODES.values()), key=len, reverse=True)) + ")"
# Exactly the sequences ``style`` writes: a partner's own ESC sequences are escaped like any control.
_OWN_STYLE = re.compile(f"(\x1b\\[{_CODE}(?:;{_CODE})*m|\x1b\\[0m)")


class Console:
    def __init__(self, stream: TextIO, *, color: bool, secrets: Secrets | None = None) -> None:
        self.stream = stream
        self.color = color
        self.secrets = secrets if secrets is not None else Secrets()

    @classmethod
    def for_stream(cls, stream: TextIO, *, no_color: bool = False, secrets: Secrets | None = None) -> Console:
        color = (
            not no_color
            and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb"
            and hasattr(stream, "isatty")
            and stream.isatty()
        )
        return cls(stream, color=color, secrets=secrets)

    def style(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def clean(self, text: str) -> str:
        """``text`` as it may be printed: secrets masked, partners' control characters visible."""
        text = self.secrets.mask(text)
        if not self.color:
            return visible(text)
        return "".join(part if index % 2 else visible(part)
                       for index, part in enumerate(_OWN_STYLE.split(text)))

    def print(self, text: str = "") -> None:
        self.stream.write(self.clean(text) + "\n")

    def print_json(self, data: Any) -> None:
        text = dumps(self.secrets.mask_data(data), indent=2, ensure_ascii=False, default=None)
        self.stream.write(json_visible(self.secrets.mask(text)) + "\n")

    def print_error(self, error: FlowrunError) -> None:
        self.secrets.mask_error(error)
        label = self.style(f"error[{error.code}]", "red", "bold")
        self.print(f"{label}: {error}")
        if error.hint:
            self.print(f"  {self.style('hint', 'cyan')}: {error.hint}")
