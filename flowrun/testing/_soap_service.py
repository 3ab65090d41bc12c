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
