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


class ValueRecord(RecordRepr):
    """A frozen record compared and hashed by value: the ``__eq__`` and ``__hash__`` attrs would
    generate for ``@attrs.frozen`` (fields declared ``eq=False`` left out), shared rather than
    compiled per class. Declared ``@attrs.frozen(eq=False, repr=False)``: attrs then leaves both
    methods to this base. A record meant to compare by identity derives from ``RecordRepr`` only."""

    __slots__ = ()

    def _compared(self) -> tuple[Any, ...]:
        cls = type(self)
        names = _COMPARED.get(cls)
        if names is None:
            fields: tuple[Any, ...] = getattr(cls, "__attrs_attrs__", ())
            names = _COMPARED[cls] = tuple(field.name for field in fields if field.eq)
        return tuple(getattr(self, name) for name in names)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, ValueRecord)
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, *self._compared()))


_COMPARED: dict[type, tuple[str, ...]] = {}
