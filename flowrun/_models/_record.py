"""The one ``__repr__`` that flowrun's attrs records share.

attrs writes a ``__repr__`` for every class as source code and compiles it when the class is
defined; with the ~90 records a one-step ``flowrun run`` defines, those compiles were ~10 ms of
its start-up. Records are declared ``@attrs.frozen(repr=False)`` (or ``define``) and derive from
``RecordRepr`` instead, whose ``__repr__`` gives the text attrs' own would: ``Name(field=value, ...)``,
fields declared with ``repr=False`` left out, a field's ``repr=`` callable applied, and ``...``
for a record met again inside its own repr.
"""

from __future__ import annotations

import threading
from typing import Any

_REPRS_RUNNING = threading.local()


class RecordRepr:
    __slots__ = ()

    def __repr__(self) -> str:
        running: set[int] | None = getattr(_REPRS_RUNNING, "ids", None)
        if running is None:
            running = _REPRS_RUNNING.ids = set()
        if id(self) in running:
            return "..."
        running.add(id(self))
        try:
            cls = type(self)
            fields: tuple[Any, ...] = getattr(cls, "__attrs_attrs__", ())
            shown = ", ".join(
                f"{field.name}={(repr if field.repr is True else field.repr)(getattr(self, field.name, None))}"
                for field in fields if field.repr is not False
            )
            return f"{cls.__qualname__.rsplit('>.', 1)[-1]}({shown})"
        finally:
            running.discard(id(self))
