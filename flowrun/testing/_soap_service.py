"""The Ledger SOAP 1.1 service (document/literal) behind the partner server's ``/ledger``.

Requests are parsed with DTDs refused and entities never expanded. The service also answers
with deliberately hostile documents (XXE, billion laughs, external DTD) so that clients can
prove they refuse them.
"""

from __future__ import annotations

import decimal
import itertools
import threading
from importlib import resources

import attrs
from lxml import etree

NAMESPACE = "urn:flowrun:ledger:1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
# The address written in the shipped WSDL; the server replaces it with its own URL.
PLACEHOLDER_ADDRESS = "https://localhost/ledger"
HOSTILE_KINDS = ("xxe", "billion_laughs", "external_dtd")
CONTENT_TYPE = "text/xml; charset=utf-8"

BALANCE = decimal.Decimal("1234.50")
CURRENCY = "EUR"
UNKNOWN_ACCOUNT = "0"

_SOAP = f"{{{SOAP_ENV}}}"
_LEDGER = f"{{{NAMESPACE}}}"
_MAX_REQUEST_BYTES = 1 << 20


def wsdl_document(address: str) -> bytes:
    """The shipped WSDL with ``address`` as the service's ``soap:address``."""
    text = _package_text("ledger.wsdl")
    placeholder = f'location="{PLACEHOLDER_ADDRESS}"'
    if placeholder not in text:
        raise RuntimeError("ledger.wsdl lost its placeholder soap:address")
    return text.replace(placeholder, f'location="{address}"').encode()


def xsd_document() -> bytes:
    return _package_text("ledger.xsd").encode()


@attrs.frozen
class SoapReply:
    status: int
    body: bytes
    content_type: str = CONTENT_TYPE


class _ClientFault(Exception):
    def __init__(self, faultstring: str, code: str) -> None:
        super().__init__(faultstring)
        self.faultstring = faultstring
        self.code = code


class LedgerService:
    """Answers SOAP envelopes for GetBalance and Transfer. Thread-safe."""

    def __init__(self) -> None:
        self._transfer_ids = itertools.count(1)
        self._lock = threading.Lock()

    def handle(self, body: bytes) -> SoapReply:
        try:
            operation = _parse_operation(body)
            if operation.tag == f"{_LEDGER}GetBalance":
                return _reply(self._get_balance(operation))
            if operation.tag == f"{_LEDGER}Transfer":
                return _reply(self._transfer(operation))
            raise _ClientFault(f"unknown operation {operation.tag}", "UNKNOWN_OPERATION")
        except _ClientFault as fault:
            return SoapReply(500, _fault_envelope("soap:Client", fault.faultstring, fault.code))

    def _get_balance(self, operation: etree._Element) -> etree._Element:
        account = _account(operation, "account")
        response = etree.Element(f"{_LEDGER}GetBalanceResponse", nsmap={"led": NAMESPACE})
        etree.SubElement(response, f"{_LEDGER}account").text = account
        etree.SubElement(response, f"{_LEDGER}balance").text = str(BALANCE)
        etree.SubElement(response, f"{_LEDGER}currency").text = CURRENCY
        return response

    def _transfer(self, operation: etree._Element) -> etree._Element:
        _account(operation, "from")
        _account(operation, "to")
        amount_text = _child_text(operation, "amount")
        try:
            amount = decimal.Decimal(amount_text)
        except decimal.InvalidOperation:
            raise _ClientFault(f"amount {amount_text!r} is not a decimal", "INVALID_AMOUNT") from None
        if not amount.is_finite() or amount <= 0:
            raise _ClientFault("amount must be a positive decimal", "INVALID_AMOUNT")
        with self._lock:
            transfer_id = f"LT-{next(self._transfer_ids):06d}"
        response = etree.Element(f"{_LEDGER}TransferResponse", nsmap={"led": NAMESPACE})
        etree.SubElement(response, f"{_LEDGER}id").text = transfer_id
        etree.SubElement(response, f"{_LEDGER}status").text = "BOOKED"
        return response


SHAPES_NAMESPACE = "urn:flowrun:shapes:1"
SHAPES_PLACEHOLDER = "https://localhost/shapes"
_SHAPES = f"{{{SHAPES_NAMESPACE}}}"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
DOCUMENT_BYTES = bytes(range(256)) * 4
MTOM_BOUNDARY = "flowrun-mtom-boundary"


def shapes_wsdl_document(address: str) -> bytes:
    """The Shapes test WSDL with ``address`` as its ``soap:address``."""
    return _package_text("shapes.wsdl").replace(SHAPES_PLACEHOLDER, address).encode()


class ShapesService:
    """The Shapes test service (``shapes.wsdl``): replies of the forms real partners send.

    * ``Add``: ``<AddResponse><AddResult>a+b</AddResult></AddResponse>`` (one child, as ASMX answers);
    * ``Echo``: the decimal ``amount`` back, exact, with the text it arrived as (``received``);
    * ``GetStatement``: a reply SOAP header (``Session``), attributes, simpleContent, repeated
      ``Entry`` elements; ``mode`` picks a variant: ``one`` entry (default two), ``none``,
      ``extra`` (an element the schema does not declare), ``reordered``, ``bad-decimal``
      (``1.234,50``), ``nil`` (``note`` with ``xsi:nil``), ``not-xml`` (a cut envelope),
      ``plain-xml`` (XML that is no envelope) and ``html`` (a maintenance page), all with status 200;
    * ``Notify``: one-way, answered 202 with an empty body;
    * ``GetDocument``: an MTOM (multipart/related, XOP) reply carrying ``DOCUMENT_BYTES``;
    * ``Fail``: a SOAP 1.1 fault with faultactor and detail.
    """

    def handle(self, body: bytes) -> SoapReply:
        try:
            operation = _parse_operation(body)
            name = etree.QName(operation).localname
            if etree.QName(operation).namespace != SHAPES_NAMESPACE or name not in _SHAPES_OPERATIONS:
                raise _ClientFault(f"unknown operation {operation.tag}", "UNKNOWN_OPERATION")
            return _SHAPES_OPERATIONS[name](operation)
        except _ClientFault as fault:
            return SoapReply(500, _fault_envelope("soap:Client", fault.faultstring, fault.code))


def _shapes_text(operation: etree._Element, name: str, default: str | None = None) -> str:
    # document/literal qualifies the children; rpc parts are unqualified.
    child = operation.find(f"{_SHAPES}{name}")
    if child is None:
        child = operation.find(name)
    if child is None:
        if default is not None:
            return default
        raise _ClientFault(f"missing element {name}", "MISSING_ELEMENT")
    return child.text or ""


def _shapes_reply(payload: etree._Element, header: etree._Element | None = None) -> SoapReply:
    envelope = etree.Element(f"{_SOAP}Envelope", nsmap={"soap": SOAP_ENV, "s": SHAPES_NAMESPACE})
    if header is not None:
        etree.SubElement(envelope, f"{_SOAP}Header").append(header)
    etree.SubElement(envelope, f"{_SOAP}Body").append(payload)
    return SoapReply(200, etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))


def _add(operation: etree._Element) -> SoapReply:
    try:
        total = int(_shapes_text(operation, "a")) + int(_shapes_text(operation, "b"))
    except ValueError:
        raise _ClientFault("a and b must be integers", "INVALID_INT") from None
    response = etree.Element(f"{_SHAPES}AddResponse")
    etree.SubElement(response, f"{_SHAPES}AddResult").text = str(total)
    return _shapes_reply(response)


def _echo(operation: etree._Element) -> SoapReply:
    received = _shapes_text(operation, "amount").strip()
    try:
        decimal.Decimal(received)
    except decimal.InvalidOperation:
        raise _ClientFault(f"amount {received!r} is not a decimal", "INVALID_AMOUNT") from None
    response = etree.Element(f"{_SHAPES}EchoResponse")
    result = etree.SubElement(response, f"{_SHAPES}EchoResult")
    etree.SubElement(result, f"{_SHAPES}amount").text = received
    etree.SubElement(result, f"{_SHAPES}received").text = received
    for name in ("count", "flag"):
        child = operation.find(f"{_SHAPES}{name}")
        if child is not None:
            etree.SubElement(result, f"{_SHAPES}{name}").text = child.text
    return _shapes_reply(response)


def _get_statement(operation: etree._Element) -> SoapReply:
    account = _shapes_text(operation, "account")
    mode = _shapes_text(operation, "mode", "two")
    if mode == "not-xml":
        return SoapReply(200, b'<?xml version="1.0"?><soap:Envelope xmlns:soap="' + SOAP_ENV.encode() + b'"><soap:Bo')
    if mode == "plain-xml":
        return SoapReply(200, b"<status>ok</status>")
    if mode == "html":
        return SoapReply(200, b"<!DOCTYPE html><html><body>Maintenance</body></html>", "text/html")
    session = etree.Element(f"{_SHAPES}Session")
    etree.SubElement(session, f"{_SHAPES}token").text = "session-7"
    etree.SubElement(session, f"{_SHAPES}expires").text = "300"
    response = etree.Element(f"{_SHAPES}GetStatementResponse")
    statement = etree.SubElement(response, f"{_SHAPES}Statement", account=account)
    count = {"one": 1, "none": 0}.get(mode, 2)
    for number in range(1, count + 1):
        entry = etree.SubElement(statement, f"{_SHAPES}Entry", id=str(number))
        amount = "1.234,50" if mode == "bad-decimal" else f"{number}0.05"
        parts = [("amount", amount), ("bookedAt", f"2026-01-0{number}T08:30:00Z"), ("valueDate", f"2026-01-0{number}")]
        if mode == "reordered":
            parts.reverse()
        for name, text in parts:
            child = etree.SubElement(entry, f"{_SHAPES}{name}")
            child.text = text
            if name == "amount":
                child.set("currency", "EUR")
        if mode == "extra":
            etree.SubElement(entry, f"{_SHAPES}surprise").text = "new in v2"
    note = etree.SubElement(statement, f"{_SHAPES}note")
    if mode == "nil":
        note.set(f"{{{_XSI}}}nil", "true")
    else:
        note.text = "end of statement"
    return _shapes_reply(response, session)


def _notify(operation: etree._Element) -> SoapReply:
    _shapes_text(operation, "message")
    return SoapReply(202, b"")


def _get_document(operation: etree._Element) -> SoapReply:
    name = _shapes_text(operation, "id")
    root = (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
        f'<s:GetDocumentResponse xmlns:s="{SHAPES_NAMESPACE}"><s:name>{name}.bin</s:name>'
        '<s:content><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:doc%40flowrun"/>'
        "</s:content></s:GetDocumentResponse></soap:Body></soap:Envelope>"
    ).encode()
    boundary = MTOM_BOUNDARY.encode()
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Type: application/xop+xml; charset=UTF-8; type="text/xml"\r\n'
        b"Content-Transfer-Encoding: binary\r\nContent-ID: <root@flowrun>\r\n\r\n" + root + b"\r\n"
        b"--" + boundary + b"\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
        b"Content-ID: <doc@flowrun>\r\n\r\n" + DOCUMENT_BYTES + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    content_type = (f'multipart/related; type="application/xop+xml"; start="<root@flowrun>"; '
                    f'start-info="text/xml"; boundary="{MTOM_BOUNDARY}"')
    return SoapReply(200, body, content_type)


def _fail(operation: etree._Element) -> SoapReply:
    reason = _shapes_text(operation, "reason")
    fault = etree.Element(f"{_SOAP}Fault", nsmap={"soap": SOAP_ENV})
    etree.SubElement(fault, "faultcode").text = "soap:Server"
    etree.SubElement(fault, "faultstring").text = reason
    etree.SubElement(fault, "faultactor").text = "urn:flowrun:shapes:backend"
    detail = etree.SubElement(fault, "detail")
    problem = etree.SubElement(detail, f"{_SHAPES}Problem", nsmap={"s": SHAPES_NAMESPACE}, severity="high")
    etree.SubElement(problem, f"{_SHAPES}code").text = "E42"
    return SoapReply(500, _envelope(fault))


_SHAPES_OPERATIONS = {"Add": _add, "Echo": _echo, "GetStatement": _get_statement, "Notify": _notify,
                      "GetDocument": _get_document, "Fail": _fail}


def hostile_response(kind: str, *, dtd_url: str) -> bytes:
    """A GetBalanceResponse that a safe client must refuse. ``dtd_url`` is where the
    external DTD lives (the partner server itself, so nothing leaves the machine)."""
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    if kind == "xxe":
        doctype = '<!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>\n'
        balance = "&xxe;"
    elif kind == "billion_laughs":
        entities = ['<!ENTITY lol0 "lol">']
        entities += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
        doctype = "<!DOCTYPE soap:Envelope [" + "".join(entities) + "]>\n"
        balance = "&lol9;"
    elif kind == "external_dtd":
        doctype = f'<!DOCTYPE soap:Envelope SYSTEM "{dtd_url}">\n'
        balance = "&remote;"
    else:
        raise ValueError(f"kind must be one of {HOSTILE_KINDS}, not {kind!r}")
    envelope = (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
        f'<led:GetBalanceResponse xmlns:led="{NAMESPACE}"><led:account>42</led:account>'
        f"<led:balance>{balance}</led:balance><led:currency>EUR</led:currency>"
        "</led:GetBalanceResponse></soap:Body></soap:Envelope>"
    )
    return (head + doctype + envelope).encode()


HOSTILE_DTD = b'<!ENTITY remote "9999.99">\n'


def _parse_operation(body: bytes) -> etree._Element:
    if len(body) > _MAX_REQUEST_BYTES:
        raise _ClientFault("request too large", "TOO_LARGE")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
    )
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise _ClientFault(f"malformed XML: {exc}", "MALFORMED_XML") from None
    docinfo = root.getroottree().docinfo
    # lxml-stubs lacks DocInfo.doctype; it is "" without a DOCTYPE.
    if docinfo.internalDTD is not None or getattr(docinfo, "doctype", None):
        raise _ClientFault("DTDs are not accepted", "DTD_FORBIDDEN")
    if root.tag != f"{_SOAP}Envelope":
        raise _ClientFault("not a SOAP 1.1 envelope", "NOT_SOAP")
    soap_body = root.find(f"{_SOAP}Body")
    if soap_body is None:
        raise _ClientFault("SOAP envelope without a Body", "NOT_SOAP")
    operations = [child for child in soap_body if isinstance(child.tag, str)]
    if len(operations) != 1:
        raise _ClientFault("the SOAP Body must hold exactly one operation element", "NOT_SOAP")
    return operations[0]


def _child_text(operation: etree._Element, name: str) -> str:
    child = operation.find(f"{_LEDGER}{name}")
    if child is None or not (child.text or "").strip():
        raise _ClientFault(f"missing element {name}", "MISSING_ELEMENT")
    return (child.text or "").strip()


def _account(operation: etree._Element, name: str) -> str:
    account = _child_text(operation, name)
    if account == UNKNOWN_ACCOUNT:
        raise _ClientFault(f"account {account} does not exist", "ACCOUNT_NOT_FOUND")
    return account


def _envelope(payload: etree._Element) -> bytes:
    envelope = etree.Element(f"{_SOAP}Envelope", nsmap={"soap": SOAP_ENV})
    etree.SubElement(envelope, f"{_SOAP}Body").append(payload)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def _reply(payload: etree._Element) -> SoapReply:
    return SoapReply(200, _envelope(payload))


def _fault_envelope(faultcode: str, faultstring: str, code: str) -> bytes:
    fault = etree.Element(f"{_SOAP}Fault", nsmap={"soap": SOAP_ENV})
    # SOAP 1.1 fault children are unqualified.
    etree.SubElement(fault, "faultcode").text = faultcode
    etree.SubElement(fault, "faultstring").text = faultstring
    detail = etree.SubElement(fault, "detail")
    ledger_fault = etree.SubElement(detail, f"{_LEDGER}LedgerFault", nsmap={"led": NAMESPACE})
    etree.SubElement(ledger_fault, f"{_LEDGER}code").text = code
    etree.SubElement(ledger_fault, f"{_LEDGER}message").text = faultstring
    return _envelope(fault)


def _package_text(name: str) -> str:
    return resources.files("flowrun.testing").joinpath(name).read_text(encoding="utf-8")
