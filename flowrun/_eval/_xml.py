"""Safe XML parsing and the plain-data view of an XML tree.

``parse_xml`` refuses every document that declares a DOCTYPE: a DTD is the door to external
entities (XXE: reading local files), entity expansion bombs ("billion laughs") and network
fetches, and no SOAP or REST response needs one. The refusal happens before the parser sees the
document, because libxml2 loads external parameter entities while it reads the internal subset,
even with entity substitution off. The prolog is read in the document's own encoding, and only
encodings in which that reading is exact are accepted (UTF-8, UTF-16, UTF-32, ASCII, ISO-8859-*,
windows-125*): UTF-7, for one, can spell ``<!DOCTYPE`` without a single ``<`` byte. Behind that,
the parser loads no DTD, resolves no entity, never touches the network, and answers every
attempt to load an external resource with nothing (and the document is then refused).
"""

from __future__ import annotations

import codecs
import copy
import re
from typing import Any

from lxml import etree

from flowrun._errors import ResponseParseError, UnsafeXmlError

XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
_NIL = f"{{{XSI_NAMESPACE}}}nil"

# 8-bit encodings that keep every ASCII byte ASCII: the prolog can be read on the raw bytes.
_ASCII_COMPATIBLE = frozenset(
    {"utf-8", "ascii"}
    | {f"iso8859-{number}" for number in range(1, 17)}
    | {f"cp125{number}" for number in range(9)}
)
_WIDE = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})
# XML 1.0 appendix F: the first bytes of a document in a wide encoding. UTF-32 first: its
# little-endian BOM starts with the UTF-16 one.
_WIDE_SIGNATURES = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)
_UTF8_BOM = codecs.BOM_UTF8
_DECLARED_ENCODING_BYTES = re.compile(rb"<\?xml\s[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")
_DECLARED_ENCODING_TEXT = re.compile(r"<\?xml\s[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")
# What may come before the root element, DOCTYPE aside: white space, the XML declaration and
# other processing instructions, comments.
_PROLOG_BYTES = re.compile(rb"(?:\s|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_PROLOG_TEXT = re.compile(r"(?:\s|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)


# libxml2 refuses documents deeper than this unless huge_tree is on (it never is here).
MAX_XML_DEPTH = 256


class _RefuseExternal(etree.Resolver):
    """Answers every request for an external resource with nothing, and remembers it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = False

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:  # type: ignore[override]
        self.asked = True
        return self.resolve_string("", context, base_url=None)


def parse_xml(data: bytes, *, source: str = "the response") -> etree._Element:
    """Parse XML safely; raise ``UnsafeXmlError`` for a DOCTYPE, ``ResponseParseError`` otherwise.

    ``source`` names the document in messages ("the response", "ledger.wsdl").
    """
    _check_prolog(data, source)
    # One parser per document: lxml parsers must not be shared between threads.
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        collect_ids=False,
    )
    refuse = _RefuseExternal()
    parser.resolvers.add(refuse)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as err:
        if refuse.asked:
            raise _unsafe(source) from None
        if "Excessive depth" in str(err):
            # libxml2's own bound (huge_tree stays off): far beyond any real document.
            raise ResponseParseError(f"{source} is nested more than {MAX_XML_DEPTH} elements deep; refused",
                                     hint="no real answer is that deep") from None
        raise ResponseParseError(f"{source} is not well-formed XML: {err}") from None
    info: Any = root.getroottree().docinfo
    if refuse.asked or info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise _unsafe(source)
    return root


def _check_prolog(data: bytes, source: str) -> None:
    """Refuse a DOCTYPE, or any encoding in which it could hide, before the parser runs."""
    wide = next((encoding for signature, encoding in _WIDE_SIGNATURES if data.startswith(signature)), None)
    if wide is None:
        body = data[len(_UTF8_BOM):] if data.startswith(_UTF8_BOM) else data
        if not body.strip():
            raise ResponseParseError(f"{source} is empty, expected an XML document")
        declared = _DECLARED_ENCODING_BYTES.match(body)
        if declared is not None:
            _check_encoding(declared.group(1).decode("ascii", "replace"), _ASCII_COMPATIBLE, source)
        prolog = _PROLOG_BYTES.match(body)
        rest = body[prolog.end() if prolog else 0 :][:16].decode("ascii", "replace")
    else:
        text = data.decode(wide, errors="replace").lstrip("\ufeff")
        declared_text = _DECLARED_ENCODING_TEXT.match(text)
        if declared_text is not None:
            _check_encoding(declared_text.group(1), _WIDE, source)
        prolog_text = _PROLOG_TEXT.match(text)
        rest = text[prolog_text.end() if prolog_text else 0 :][:16]
    if rest.upper().startswith("<!DOCTYPE"):
        if rest.lower().startswith("<!doctype html"):
            raise UnsafeXmlError(f"{source} is an HTML page (it starts with {rest[:14]}), not XML",
                                 hint="the server answered with a web page: check the URL and the status")
        raise _unsafe(source)
    if not rest.startswith("<") or rest.startswith("<!"):
        # Also what an encoding flowrun does not read (EBCDIC, UCS-4 in odd byte orders) looks like.
        raise ResponseParseError(f"{source} is not XML: it does not start with an element")


def _check_encoding(declared: str, accepted: frozenset[str], source: str) -> None:
    try:
        name = codecs.lookup(declared).name
    except LookupError:
        name = ""
    if name in (_ASCII_COMPATIBLE | _WIDE) - accepted:
        raise ResponseParseError(f"{source} declares the encoding '{declared}', but its bytes are not in it")
    if name not in accepted:
        raise UnsafeXmlError(
            f"{source} declares the encoding '{declared}', which flowrun does not read",
            hint="XML responses are read in UTF-8, UTF-16, UTF-32, ASCII, ISO-8859-* or windows-125*",
        )


def _unsafe(source: str) -> UnsafeXmlError:
    return UnsafeXmlError(
        f"{source} declares a DOCTYPE; documents with a DTD or entities are refused "
        "(they can read local files, reach the network or expand without bound)"
    )


def is_element(node: etree._Element) -> bool:
    """True for an element, false for a comment or a processing instruction (their tag is not a str)."""
    tag: object = node.tag
    return isinstance(tag, str)


def local_name(tag: Any) -> str:
    """``{urn:bank}balance`` -> ``balance``."""
    return str(tag).rpartition("}")[2]


def strip_namespaces(root: etree._Element) -> etree._Element:
    """A copy of ``root`` where every element and attribute has its local name only.

    This is the namespace-agnostic view: ``//balance`` then matches ``<b:balance xmlns:b="urn:x">``
    and ``<balance xmlns="urn:y">`` alike. The original tree is left untouched.
    """
    stripped = copy.deepcopy(root)
    for element in stripped.iter():
        if not is_element(element):  # comments and processing instructions keep their nature
            continue
        element.tag = local_name(element.tag)
        for name in [str(name) for name in element.attrib if str(name).startswith("{")]:
            value = element.attrib.pop(name)
            # An attribute without namespace wins over a namespaced one of the same local name.
            if local_name(name) not in element.attrib:
                element.attrib[local_name(name)] = value
    etree.cleanup_namespaces(stripped)
    return stripped


def xml_to_data(element: etree._Element) -> dict[str, Any]:
    """Plain JSON-compatible data for an XML element: ``{local name: value}``.

    The value of an element is:

    * its text (``""`` when empty) when it has no child elements and no attributes;
    * ``None`` when it carries ``xsi:nil="true"``;
    * otherwise an object: child elements by local name (a name that repeats gives an array, in
      document order), attributes as ``"@name"``, and non-blank text as ``"#text"``.

    Namespaces are dropped and all leaf values stay strings (no schema is consulted).
    """
    return {local_name(element.tag): element_value(element)}


def add_child(data: dict[str, Any], repeated: set[str], key: str, value: Any) -> None:
    """Put a child's value under its name; a name that comes again becomes an array, in document
    order (``repeated`` remembers the names already made arrays)."""
    if key not in data:
        data[key] = value
    elif key in repeated:
        data[key].append(value)
    else:
        data[key] = [data[key], value]
        repeated.add(key)


def element_value(element: etree._Element) -> Any:
    """The value part of ``xml_to_data`` for one element."""
    children = [child for child in element if is_element(child)]
    attributes = {f"@{local_name(name)}": value for name, value in element.attrib.items() if name != _NIL}
    if element.get(_NIL) in ("true", "1") and not children:
        return None
    if not children and not attributes:
        return element.text or ""
    data: dict[str, Any] = dict(attributes)
    repeated: set[str] = set()
    for child in children:
        add_child(data, repeated, local_name(child.tag), element_value(child))
    texts = [element.text or ""] + [child.tail or "" for child in element]
    text = "".join(texts)
    if text.strip():
        data["#text"] = text if not children else text.strip()
    return data
