"""Step over one Java-serialized object (a JCEKS secret key entry) without running anything.

JCEKS stores a secret key as a serialized ``SealedObjectForKeyProtector`` with no length prefix,
so the only way to find the next entry is to walk the serialization grammar. This walker only
measures; it builds no objects and never resolves classes. Malformed input raises
``JavaSerialError``.
"""

from __future__ import annotations

import struct

import attrs

from flowrun._models._record import RecordRepr, ValueRecord

_MAGIC = b"\xac\xed\x00\x05"
TC_NULL, TC_REFERENCE, TC_CLASSDESC, TC_OBJECT, TC_STRING, TC_ARRAY = 0x70, 0x71, 0x72, 0x73, 0x74, 0x75
TC_CLASS, TC_BLOCKDATA, TC_ENDBLOCKDATA, TC_RESET, TC_BLOCKDATALONG = 0x76, 0x77, 0x78, 0x79, 0x7A
TC_LONGSTRING, TC_PROXYCLASSDESC, TC_ENUM = 0x7C, 0x7D, 0x7E
SC_WRITE_METHOD, SC_SERIALIZABLE, SC_EXTERNALIZABLE, SC_BLOCK_DATA = 0x01, 0x02, 0x04, 0x08
_PRIMITIVE_SIZES = {"B": 1, "C": 2, "D": 8, "F": 4, "I": 4, "J": 8, "S": 2, "Z": 1}
_MAX_DEPTH = 64


class JavaSerialError(ValueError):
    """Not a Java serialization stream we can step over."""


@attrs.define(repr=False)
class _ClassDesc(RecordRepr):
    name: str
    flags: int
    fields: list[tuple[str, str]]  # (type code, name)
    parent: _ClassDesc | None


@attrs.define(repr=False)
class _Walker(RecordRepr):
    data: bytes
    pos: int
    handles: list[object] = attrs.field(factory=list)
    class_names: list[str] = attrs.field(factory=list)

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise JavaSerialError("truncated serialized object")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def u1(self) -> int:
        return self.take(1)[0]

    def u2(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u4(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def utf(self) -> str:
        raw = self.take(self.u2())
        return raw.decode("utf-8", "replace")

    def reference(self) -> object:
        index = self.u4() - 0x7E0000
        if not 0 <= index < len(self.handles):
            raise JavaSerialError("bad back-reference")
        return self.handles[index]

    def content(self, depth: int) -> object:
        if depth > _MAX_DEPTH:
            raise JavaSerialError("nesting too deep")
        tag = self.u1()
        if tag == TC_NULL:
            return None
        if tag == TC_REFERENCE:
            return self.reference()
        if tag == TC_STRING:
            text = self.utf()
            self.handles.append(text)
            return text
        if tag == TC_LONGSTRING:
            length = int(struct.unpack(">Q", self.take(8))[0])
            self.take(length)
            self.handles.append("")
            return ""
        if tag in (TC_CLASSDESC, TC_PROXYCLASSDESC):
            return self.class_desc_body(tag, depth)
        if tag == TC_CLASS:
            desc = self.class_desc(depth)
            self.handles.append(desc)
            return desc
        if tag == TC_ENUM:
            self.class_desc(depth)
            self.handles.append("enum")
            self.content(depth + 1)
            return "enum"
        if tag == TC_ARRAY:
            return self.array(depth)
        if tag == TC_OBJECT:
            return self.object(depth)
        if tag in (TC_BLOCKDATA, TC_BLOCKDATALONG):
            self.take(self.u1() if tag == TC_BLOCKDATA else self.u4())
            return None
        if tag == TC_RESET:
            self.handles.clear()
            return None
        raise JavaSerialError(f"unexpected tag 0x{tag:02x}")

    def class_desc(self, depth: int) -> _ClassDesc | None:
        found = self.content(depth + 1)
        if found is not None and not isinstance(found, _ClassDesc):
            raise JavaSerialError("expected a class description")
        return found

    def class_desc_body(self, tag: int, depth: int) -> _ClassDesc:
        if tag == TC_PROXYCLASSDESC:
            desc = _ClassDesc("<proxy>", SC_SERIALIZABLE, [], None)
            self.handles.append(desc)
            for _ in range(self.u4()):
                self.utf()
        else:
            name = self.utf()
            self.class_names.append(name)
            self.take(8)  # serialVersionUID
            desc = _ClassDesc(name, 0, [], None)
            self.handles.append(desc)
            desc.flags = self.u1()
            for _ in range(self.u2()):
                code = chr(self.u1())
                field_name = self.utf()
                if code in "[L":
                    self.content(depth + 1)  # the field's class name, a string or a reference
                elif code not in _PRIMITIVE_SIZES:
                    raise JavaSerialError("bad field type")
                desc.fields.append((code, field_name))
        self.annotations(depth)
        desc.parent = self.class_desc(depth)
        return desc

    def annotations(self, depth: int) -> None:
        while True:
            if self.pos < len(self.data) and self.data[self.pos] == TC_ENDBLOCKDATA:
                self.pos += 1
                return
            self.content(depth + 1)

    def array(self, depth: int) -> object:
        desc = self.class_desc(depth)
        if desc is None or not desc.name.startswith("["):
            raise JavaSerialError("array without an array class")
        marker = object()
        self.handles.append(marker)
        size = self.u4()
        element = desc.name[1:2]
        if element in _PRIMITIVE_SIZES:
            self.take(size * _PRIMITIVE_SIZES[element])
        else:
            for _ in range(size):
                self.content(depth + 1)
        return marker

    def object(self, depth: int) -> object:
        desc = self.class_desc(depth)
        if desc is None:
            raise JavaSerialError("object without a class")
        marker = object()
        self.handles.append(marker)
        lineage: list[_ClassDesc] = []
        cursor: _ClassDesc | None = desc
        while cursor is not None:
            if len(lineage) > _MAX_DEPTH:
                raise JavaSerialError("class hierarchy too deep")
            lineage.append(cursor)
            cursor = cursor.parent
        for cls in reversed(lineage):
            if cls.flags & SC_EXTERNALIZABLE:
                if not cls.flags & SC_BLOCK_DATA:
                    raise JavaSerialError("old-style externalizable data cannot be skipped")
                self.annotations(depth)
                continue
            for code, _name in cls.fields:
                if code in _PRIMITIVE_SIZES:
                    self.take(_PRIMITIVE_SIZES[code])
                else:
                    self.content(depth + 1)
            if cls.flags & SC_WRITE_METHOD:
                self.annotations(depth)
        return marker


@attrs.frozen(eq=False, repr=False)
class SkippedObject(ValueRecord):
    end: int
    class_names: tuple[str, ...]


def skip_serialized_object(data: bytes, pos: int) -> SkippedObject:
    """Step over one stream (magic, version, one object) starting at ``pos``."""
    if data[pos : pos + 4] != _MAGIC:
        raise JavaSerialError("not a Java serialization stream")
    walker = _Walker(data, pos + 4)
    walker.content(0)
    return SkippedObject(walker.pos, tuple(walker.class_names))
