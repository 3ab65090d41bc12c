"""SOAP replies as plain data, the same shape in operation and raw-envelope mode.

The shape (documented in ``docs/flows.md``, "SOAP replies"): ``body`` is the reply element (the
Body's first child element) as an object keyed by its children's local names, never unwrapped;
repeated elements are arrays (always, where the schema allows more than one); attributes are
``"@name"``; the text of an element with attributes is ``"#text"``; an element with text only is
its value. The reply's SOAP headers are ``soap_headers``, apart from ``body``. The replies are
read from the one parse of the envelope (``flowrun._eval.parse_xml``): zeep never parses them.

Faults are read from the envelope itself, the same way in operation and raw mode and whatever
the binding's SOAP version (a SOAP 1.2 client can get a 1.1 fault back from a confused partner).
"""

from __future__ import annotations

import base64
import decimal
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import zeep.wsdl.messages.soap as zeep_soap_messages
import zeep.xsd.elements as xsd_elements
import zeep.xsd.elements.indicators as xsd_indicators
import zeep.xsd.types as xsd_types
import zeep.xsd.types.builtins as xsd_builtins
from lxml import etree

from flowrun._errors import SoapFaultError
from flowrun._eval._xml import add_child, is_element, local_name
from flowrun._models._numbers import exact_decimal
from flowrun._models._record import ValueRecord

SoapVersion = Literal["1.1", "1.2"]

SOAP11_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENVELOPE = "http://www.w3.org/2003/05/soap-envelope"
ENVELOPE_VERSIONS: Mapping[str, SoapVersion] = {SOAP11_ENVELOPE: "1.1", SOAP12_ENVELOPE: "1.2"}


# --- faults -----------------------------------------------------------------------------------


def find_fault(root: etree._Element) -> etree._Element | None:
    """The ``Body/Fault`` element of a SOAP 1.1 or 1.2 envelope, or None."""
    namespace = etree.QName(root).namespace
    if namespace not in ENVELOPE_VERSIONS:
        return None
    return root.find(f"{{{namespace}}}Body/{{{namespace}}}Fault")


def fault_from_element(fault: etree._Element, *, status: int | None) -> SoapFaultError:
    if etree.QName(fault).namespace == SOAP12_ENVELOPE:
        ns = f"{{{SOAP12_ENVELOPE}}}"
        subcodes = [value.text or "" for value in fault.iterfind(f".//{ns}Subcode/{ns}Value")]
        return fault_error(fault.findtext(f"{ns}Reason/{ns}Text"), fault.findtext(f"{ns}Code/{ns}Value"),
                           fault.find(f"{ns}Detail"), subcodes, status=status,
                           actor=fault.findtext(f"{ns}Role") or fault.findtext(f"{ns}Node"))
    # SOAP 1.1 fault children are unqualified; some servers qualify them anyway.
    ns = f"{{{SOAP11_ENVELOPE}}}"
    detail = fault.find("detail")
    return fault_error(fault.findtext("faultstring") or fault.findtext(f"{ns}faultstring"),
                       fault.findtext("faultcode") or fault.findtext(f"{ns}faultcode"),
                       detail if detail is not None else fault.find(f"{ns}detail"), None, status=status,
                       actor=fault.findtext("faultactor") or fault.findtext(f"{ns}faultactor"))


def fault_error(faultstring: str | None, faultcode: Any, detail: etree._Element | None, subcodes: Any, *,
                status: int | None, actor: str | None = None) -> SoapFaultError:
    """The error for a fault: SOAP 1.2 subcodes follow the code (``soap:Sender / app:Locked``);
    ``detail`` is converted with the reply shape's rules (no schema: leaves are strings)."""
    code = None if faultcode is None else str(faultcode).strip()
    if subcodes:
        code = " / ".join([code or "", *(str(s) for s in subcodes)]).strip(" /")
    string = None if faultstring is None else str(faultstring).strip()
    detail_data = ReplyShaper(strict=False).value(detail) if detail is not None else None
    where = f" (HTTP {status})" if status is not None else ""
    return SoapFaultError(f"SOAP fault {code or '(no code)'}: {string or '(no faultstring)'}{where}",
                          faultcode=code, faultstring=string, detail=detail_data or None,
                          actor=(actor or "").strip() or None,
                          hint="the partner refused the call: the fault code, string and detail say why")


def fault_body(error: SoapFaultError) -> dict[str, Any]:
    """The ``fault`` a failed step's result carries, so that later steps and reports can read it."""
    return {"code": error.faultcode, "string": error.faultstring, "actor": error.actor, "detail": error.detail}


# --- the reply shape ----------------------------------------------------------------------------

XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
SOAP11_ENCODING = "http://schemas.xmlsoap.org/soap/encoding/"
SOAP12_ENCODING = "http://www.w3.org/2003/05/soap-encoding"
XOP_INCLUDE = "{http://www.w3.org/2004/08/xop/include}Include"
_XSI_NIL = f"{{{XSI_NAMESPACE}}}nil"
_XSI_TYPE = f"{{{XSI_NAMESPACE}}}type"
# Attributes that are SOAP machinery, not data: xsi:type/nil, encodingStyle, mustUnderstand, arrayType...
_MACHINERY = frozenset({XSI_NAMESPACE, SOAP11_ENCODING, SOAP12_ENCODING, SOAP11_ENVELOPE, SOAP12_ENVELOPE})


class ReplyValueError(ValueError):
    """A reply value that does not fit its schema; the boundary turns it into ``SoapReplyError``."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@attrs.frozen(eq=False, repr=False)
class Attachments(ValueRecord):
    """MTOM/XOP parts by Content-ID (without angle brackets)."""

    parts: Mapping[str, bytes] = attrs.field(factory=dict)

    def resolve(self, href: str, path: str) -> str:
        content_id = urllib.parse.unquote(href[4:] if href.startswith("cid:") else href).strip("<>")
        data = self.parts.get(content_id)
        if data is None:
            raise ReplyValueError(path, f"xop:Include names the attachment {href!r}, which the reply does not carry")
        return base64.b64encode(data).decode("ascii")


NO_ATTACHMENTS = Attachments()


@attrs.frozen(eq=False, repr=False)
class _Plan(ValueRecord):
    """What a complex type allows, by local name: computed once per type, then only looked up."""

    children: Mapping[str, tuple[Any, bool]]   # local name -> (xsd element, always an array)
    order: Mapping[str, int]
    attributes: Mapping[str, Any]              # local name -> simple type
    text_type: Any                             # simpleContent: the type of "#text"; None otherwise
    wildcard: bool                             # xsd:any: undeclared children are expected


_PLANS: dict[int, tuple[Any, _Plan]] = {}
_MAX_PLANS = 50_000


def _plan(xsd_type: Any) -> _Plan:
    known = _PLANS.get(id(xsd_type))
    if known is not None and known[0] is xsd_type:
        return known[1]
    children: dict[str, tuple[Any, bool]] = {}
    order: dict[str, int] = {}
    wildcard = [False]
    text_type = None
    content = getattr(xsd_type, "_element", None)
    if isinstance(content, xsd_elements.Element) and content.name == "_value_1":
        text_type = content.type
    elif content is not None:
        _collect(content, False, False, children, order, wildcard)
    if getattr(xsd_type, "_array_type", None) is not None:  # SOAP-encoded arrays name their items freely
        wildcard[0] = True
    attributes: dict[str, Any] = {}
    for attribute in getattr(xsd_type, "_attributes_unwrapped", ()):
        name = getattr(attribute, "name", None)
        if name:
            attributes[local_name(name)] = getattr(attribute, "type", None)
    plan = _Plan(children, order, attributes, text_type, wildcard[0])
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[id(xsd_type)] = (xsd_type, plan)
    return plan


def _collect(particle: Any, many: bool, unordered: bool, children: dict[str, tuple[Any, bool]],
             order: dict[str, int], wildcard: list[bool]) -> None:
    """Children by local name; ``many``: inside a group that repeats (its elements are arrays);
    ``unordered``: inside an xs:all or a repeating group (a b a b), where any order is valid."""
    repeats = bool(getattr(particle, "accepts_multiple", False))
    if isinstance(particle, xsd_elements.Any):
        wildcard[0] = True
    elif isinstance(particle, xsd_elements.Element):
        name = local_name(particle.name or "")
        children.setdefault(name, (particle, many or repeats))
        if not unordered:
            order.setdefault(name, len(order))
    elif isinstance(particle, xsd_indicators.Group):
        _collect(particle.child, many or repeats, unordered or repeats, children, order, wildcard)
    elif isinstance(particle, xsd_indicators.OrderIndicator):
        free = unordered or repeats or isinstance(particle, xsd_indicators.All)
        for item in particle:
            _collect(item, many or repeats, free, children, order, wildcard)


class ReplyShaper:
    """Turns reply elements into the documented shape (see ``docs/flows.md``, SOAP replies).

    With a schema type, leaves are typed (``xs:int`` -> int, ``xs:decimal`` -> ``Decimal``,
    ``xs:boolean`` -> bool, dates and times keep their ISO 8601 text, checked) and an element whose
    declaration allows more than one occurrence is always an array. Without one, leaves are strings
    and a name that repeats is an array. ``xsi:type`` naming an XSD built-in types a leaf in both
    cases (rpc/encoded replies carry it). ``strict`` refuses children the schema does not declare
    and declared children out of order.
    """

    def __init__(self, *, strict: bool = True, attachments: Attachments = NO_ATTACHMENTS) -> None:
        self.strict = strict
        self.attachments = attachments

    def value(self, element: etree._Element, xsd_type: Any = None, path: str = "") -> Any:
        """The value of one element (``xsd_type`` its schema type, None when unknown)."""
        path = path or local_name(element.tag)
        explicit = element.get(_XSI_TYPE)
        if explicit is not None:
            xsd_type = _xsi_type(element, explicit) or xsd_type
        if element.get(_XSI_NIL) in ("true", "1"):
            return None
        children = [child for child in element if is_element(child)]
        if len(children) == 1 and children[0].tag == XOP_INCLUDE:
            return self.attachments.resolve(children[0].get("href", ""), path)
        attributes = _data_attributes(element)
        plan = _plan(xsd_type) if isinstance(xsd_type, xsd_types.ComplexType) else None
        if not children and not attributes:
            if _is_simple(xsd_type):
                return typed_text(xsd_type, element.text or "", path)
            if plan is None:
                return element.text or ""
            if plan.text_type is not None:
                return typed_text(plan.text_type, element.text or "", path)
        data: dict[str, Any] = {}
        for name, text in attributes.items():
            attribute_type = plan.attributes.get(name) if plan is not None else None
            data[f"@{name}"] = typed_text(attribute_type, text, f"{path}/@{name}")
        repeated: set[str] = set()
        last = -1
        for child in children:
            key = local_name(child.tag)
            declared = plan.children.get(key) if plan is not None else None
            if plan is not None and self.strict:
                if declared is None and not plan.wildcard:
                    names = list(plan.children)
                    expected = ", ".join(names[:12]) + (f", +{len(names) - 12} more" if len(names) > 12 else "")
                    expected = expected or "no child elements"
                    raise ReplyValueError(f"{path}/{key}", "the schema does not declare this element here "
                                          f"(expected: {expected})")
                position = plan.order.get(key, last)
                if position < last:
                    raise ReplyValueError(f"{path}/{key}", "the element is out of the schema's order")
                last = position
            value = self.value(child, declared[0].type if declared is not None else None, f"{path}/{key}")
            if declared is not None and declared[1]:
                data.setdefault(key, []).append(value)
            else:
                add_child(data, repeated, key, value)
        text = "".join([element.text or "", *(child.tail or "" for child in element)])
        if text.strip():
            if plan is not None and plan.text_type is not None:
                data["#text"] = typed_text(plan.text_type, text, path)
            else:
                data["#text"] = text if not children else text.strip()
        return data


def _is_simple(xsd_type: Any) -> bool:
    return isinstance(xsd_type, xsd_types.AnySimpleType)


def _data_attributes(element: etree._Element) -> dict[str, str]:
    return {local_name(str(name)): str(value) for name, value in element.attrib.items()
            if not str(name).startswith("{") or str(name)[1:].partition("}")[0] not in _MACHINERY}


def _xsi_type(element: etree._Element, value: str) -> Any:
    prefix, _, local = value.strip().rpartition(":")
    if element.nsmap.get(prefix or None) != XSD_NAMESPACE:
        return None
    return xsd_builtins.default_types.get(etree.QName(XSD_NAMESPACE, local))


def typed_text(xsd_type: Any, text: str, path: str) -> Any:
    """The value of ``text`` for a simple type; ``ReplyValueError`` naming ``path`` when it does not fit."""
    if xsd_type is None or not _is_simple(xsd_type) or isinstance(xsd_type, xsd_builtins.String):
        return text
    stripped = text.strip()
    if not stripped:
        return None  # an empty element of a non-string type: no value
    if isinstance(xsd_type, xsd_builtins.Boolean):
        if stripped in ("true", "1"):
            return True
        if stripped in ("false", "0"):
            return False
        raise ReplyValueError(path, f"{_shown(stripped)} is not an xs:boolean (true, false, 1 or 0)")
    if isinstance(xsd_type, xsd_builtins.Integer):
        if _INTEGER.fullmatch(stripped) is None:
            raise ReplyValueError(path, f"{_shown(stripped)} is not a valid {_type_name(xsd_type)}")
        return int(stripped)
    if isinstance(xsd_type, xsd_builtins.Decimal):
        if _DECIMAL.fullmatch(stripped) is None:
            raise ReplyValueError(path, f"{_shown(stripped)} is not a valid xs:decimal (digits, one '.' and "
                                  "an optional sign; no thousands separators, no exponent)")
        return decimal.Decimal(stripped)
    if isinstance(xsd_type, xsd_builtins.Float | xsd_builtins.Double):
        try:
            return float(stripped)
        except ValueError:
            raise ReplyValueError(path, f"{_shown(stripped)} is not a valid {_type_name(xsd_type)}") from None
    if isinstance(xsd_type, xsd_builtins.Base64Binary):
        return "".join(stripped.split())
    if isinstance(xsd_type, _CHECKED_TEXT):
        try:
            xsd_type.pythonvalue(stripped)
        except (ValueError, ArithmeticError, TypeError, AttributeError):
            raise ReplyValueError(path, f"{_shown(stripped)} is not a valid {_type_name(xsd_type)}") from None
        return stripped
    return text


_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_CHECKED_TEXT = (xsd_builtins.DateTime, xsd_builtins.Date, xsd_builtins.Time, xsd_builtins.Duration)


def _type_name(xsd_type: Any) -> str:
    qname = getattr(xsd_type, "qname", None) or getattr(xsd_type, "_default_qname", None)
    return f"xs:{local_name(str(qname))}" if qname is not None else type(xsd_type).__name__


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


# --- from an envelope to body and soap_headers --------------------------------------------------


@attrs.frozen(eq=False, repr=False)
class ReplySchema(ValueRecord):
    """What the WSDL says a reply holds: the reply elements it may carry by qualified name (the
    operation's output, or every operation's output for a raw envelope), and the header parts."""

    bodies: Mapping[str, Any]          # "{namespace}local" -> xsd element
    by_local_name: Mapping[str, Any]   # local name -> xsd element (rpc replies are often unqualified)
    headers: Mapping[str, Any] = attrs.field(factory=dict)  # local name -> xsd element of a header
    expected: str | None = None        # the element the operation answers with, for messages
    # rpc: the WSDL does not name the reply's wrapper element (WS-I: operation + "Response"), any goes.
    wrapper: Any = None

    def element_for(self, reply: etree._Element) -> Any:
        return self.bodies.get(reply.tag) or self.by_local_name.get(local_name(reply.tag)) or self.wrapper


def reply_schema(elements: Sequence[Any], *, header_types: Sequence[Any] = (), expected: str | None = None,
                 ) -> ReplySchema:
    bodies: dict[str, Any] = {}
    by_local: dict[str, Any] = {}
    for element in elements:
        qname = getattr(element, "qname", None)
        if qname is None:
            continue
        bodies.setdefault(str(qname), element)
        by_local.setdefault(local_name(str(qname)), element)
        # A document/literal message with several parts: zeep wraps them in a soap:Body element;
        # the reply carries the parts themselves.
        if local_name(str(qname)) == "Body" and str(qname)[1:].partition("}")[0] in ENVELOPE_VERSIONS:
            for name, child in _plan(element.type).children.items():
                bodies.setdefault(str(child[0].qname), child[0])
                by_local.setdefault(name, child[0])
    headers: dict[str, Any] = {}
    for header_type in header_types:
        if isinstance(header_type, xsd_types.ComplexType):
            for name, (element, _) in _plan(header_type).children.items():
                headers.setdefault(name, element)
    return ReplySchema(bodies, by_local, headers, expected)


@attrs.frozen(eq=False, repr=False)
class ReplyData(ValueRecord):
    """``body`` (None for an empty Body or no envelope at all: a one-way answer) and ``soap_headers``."""

    body: Any
    soap_headers: dict[str, Any]


def reply_data(root: etree._Element | None, *, schema: ReplySchema | None = None, strict: bool = True,
               attachments: Attachments = NO_ATTACHMENTS) -> ReplyData:
    """The reply as the documented shape; ``ReplyValueError`` when it does not fit the schema."""
    if root is None:
        return ReplyData(None, {})
    namespace = etree.QName(root).namespace or ""
    shaper = ReplyShaper(strict=strict, attachments=attachments)
    headers: dict[str, Any] = {}
    header = root.find(f"{{{namespace}}}Header")
    if header is not None:
        # Headers the WSDL does not declare (WS-Security, WS-Addressing) are normal: never strict.
        lenient = ReplyShaper(strict=False, attachments=attachments)
        for child in header:
            if not is_element(child):
                continue
            key = local_name(child.tag)
            declared = (schema.headers.get(key) or schema.by_local_name.get(key)) if schema is not None else None
            value = lenient.value(child, declared.type if declared is not None else None, f"Header/{key}")
            if key not in headers:
                headers[key] = value
            elif isinstance(headers[key], list):
                headers[key].append(value)
            else:
                headers[key] = [headers[key], value]
    body = root.find(f"{{{namespace}}}Body")
    reply = next((child for child in body if is_element(child)), None) if body is not None else None
    if reply is None:
        return ReplyData(None, headers)
    element = schema.element_for(reply) if schema is not None else None
    if element is None and schema is not None and schema.expected is not None and strict:
        raise ReplyValueError(local_name(reply.tag), f"the reply element is {reply.tag}, and the WSDL's operation "
                              f"answers with {schema.expected}")
    return ReplyData(shaper.value(reply, element.type if element is not None else None), headers)


_SCHEMAS: dict[int, tuple[Any, ReplySchema]] = {}


def operation_schema(operation: Any) -> ReplySchema | None:
    """The reply schema of a zeep binding operation (computed once per operation)."""
    known = _SCHEMAS.get(id(operation))
    if known is not None and known[0] is operation:
        return known[1]
    output = getattr(operation, "output", None)
    body = getattr(output, "body", None)
    if body is None:
        return None
    header = getattr(output, "header", None)
    schema = reply_schema([body], header_types=[getattr(header, "type", None)], expected=str(body.qname))
    if isinstance(output, zeep_soap_messages.RpcMessage):
        schema = attrs.evolve(schema, wrapper=body)
    _SCHEMAS[id(operation)] = (operation, schema)
    return schema


def document_schema(document: Any) -> ReplySchema:
    """For a raw envelope step that names a WSDL: every reply element the WSDL's operations may
    answer with, and its global elements (computed once per parsed WSDL)."""
    known = _SCHEMAS.get(id(document))
    if known is not None and known[0] is document:
        return known[1]
    elements: list[Any] = []
    headers: list[Any] = []
    rpc: dict[str, Any] = {}
    for binding in document.bindings.values():
        for operation in getattr(binding, "_operations", {}).values():
            output: Any = getattr(operation, "output", None)
            if getattr(output, "body", None) is not None:
                elements.append(output.body)
                if isinstance(output, zeep_soap_messages.RpcMessage):
                    # The wrapper's name is a convention (WS-I): the operation's name + "Response".
                    rpc.setdefault(f"{operation.name}Response", output.body)
            if getattr(output, "header", None) is not None:
                headers.append(output.header)
    for schema in document.types.documents:
        elements.extend(schema._elements.values())
    result = reply_schema(elements, header_types=[header.type for header in headers])
    if rpc:
        result = attrs.evolve(result, by_local_name={**rpc, **result.by_local_name})
    _SCHEMAS[id(document)] = (document, result)
    return result


# --- args: exact values of the XSD types the request carries ---------------------------------------


class ArgValueError(ReplyValueError):
    """An arg that does not fit its XSD type; the boundary turns it into ``SoapArgumentError``."""


def prepare_args(xsd_type: Any, args: Mapping[str, Any], path: str) -> dict[str, Any]:
    """``args`` with each simple value checked against its XSD type and made exact: xs:decimal
    values become ``Decimal`` (a float through its shortest repr, never its binary value), integer
    types ``int``, xs:boolean ``bool``. A value that does not fit raises ``ArgValueError``."""
    plan = _plan(xsd_type) if isinstance(xsd_type, xsd_types.ComplexType) else None
    if plan is None:
        return dict(args)
    prepared: dict[str, Any] = {}
    for key, value in args.items():
        declared = plan.children.get(key)
        if declared is not None:
            prepared[key] = _arg(declared[0].type, value, f"{path}/{key}")
        elif key in plan.attributes:
            prepared[key] = arg_value(plan.attributes[key], value, f"{path}/@{key}")
        else:
            prepared[key] = value  # zeep names what it does not know
    return prepared


def _arg(xsd_type: Any, value: Any, path: str) -> Any:
    if isinstance(value, list | tuple):
        return [_arg(xsd_type, item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(xsd_type, xsd_types.ComplexType) and isinstance(value, Mapping):
        return prepare_args(xsd_type, value, path)
    if _is_simple(xsd_type):
        return arg_value(xsd_type, value, path)
    return value


def _finite(value: decimal.Decimal | float) -> bool:
    return value.is_finite() if isinstance(value, decimal.Decimal) else math.isfinite(value)


def arg_value(xsd_type: Any, value: Any, path: str) -> Any:
    if value is None or xsd_type is None or isinstance(xsd_type, xsd_builtins.String):
        return value
    if isinstance(xsd_type, xsd_builtins.Boolean):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip() in ("true", "1", "false", "0"):
            return value.strip() in ("true", "1")
        raise ArgValueError(path, f"{_shown(str(value))} is not an xs:boolean (true or false)")
    if isinstance(xsd_type, xsd_builtins.Integer):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, decimal.Decimal | float) and _finite(value) and value == int(value):
            return int(value)
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            return int(value.strip())
        raise ArgValueError(path, f"{_shown(str(value))} is not a valid {_type_name(xsd_type)}")
    if isinstance(xsd_type, xsd_builtins.Decimal):
        if isinstance(value, decimal.Decimal) and value.is_finite():
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return decimal.Decimal(value)
        if isinstance(value, float) and math.isfinite(value):
            return exact_decimal(value)  # as written in the flow or inputs, never the binary float
        if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
            return decimal.Decimal(value.strip())
        raise ArgValueError(path, f"{_shown(str(value))} is not a valid xs:decimal (digits, one '.' and an "
                            "optional sign; no thousands separators, no exponent)")
    if isinstance(xsd_type, xsd_builtins.Float | xsd_builtins.Double):
        if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
            return value
        try:
            float(str(value))
        except ValueError:
            raise ArgValueError(path, f"{_shown(str(value))} is not a valid {_type_name(xsd_type)}") from None
        return str(value).strip()
    return value
