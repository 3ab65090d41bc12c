"""SOAP replies as plain data: zeep's values -> JSON-compatible data, SOAP Faults -> ``SoapFaultError``.

Faults are read from the envelope itself, the same way in operation and raw mode and whatever
the binding's SOAP version (a SOAP 1.2 client can get a 1.1 fault back from a confused partner).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import math
from collections.abc import Mapping
from typing import Any, Literal

import zeep.helpers
import zeep.xsd
from lxml import etree

from flowrun._errors import SoapFaultError
from flowrun._eval import element_value, xml_to_data

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
                           fault.find(f"{ns}Detail"), subcodes, status=status)
    # SOAP 1.1 fault children are unqualified; some servers qualify them anyway.
    ns = f"{{{SOAP11_ENVELOPE}}}"
    detail = fault.find("detail")
    return fault_error(fault.findtext("faultstring") or fault.findtext(f"{ns}faultstring"),
                       fault.findtext("faultcode") or fault.findtext(f"{ns}faultcode"),
                       detail if detail is not None else fault.find(f"{ns}detail"), None, status=status)


def fault_error(faultstring: str | None, faultcode: Any, detail: Any, subcodes: Any, *,
                status: int | None) -> SoapFaultError:
    """The error for a fault: SOAP 1.2 subcodes follow the code (``soap:Sender / app:Locked``);
    ``detail`` is an element's value as ``element_value`` gives it."""
    code = None if faultcode is None else str(faultcode).strip()
    if subcodes:
        code = " / ".join([code or "", *(str(s) for s in subcodes)]).strip(" /")
    string = None if faultstring is None else str(faultstring).strip()
    detail_data = element_value(detail) if isinstance(detail, etree._Element) else detail
    where = f" (HTTP {status})" if status is not None else ""
    return SoapFaultError(f"SOAP fault {code or '(no code)'}: {string or '(no faultstring)'}{where}",
                          faultcode=code, faultstring=string, detail=to_plain(detail_data or None),
                          hint="the partner refused the call: the fault code, string and detail say why")


def fault_body(error: SoapFaultError) -> dict[str, Any]:
    """The body of a failed step's result, so that later steps and reports can read the fault."""
    return {"fault": {"code": error.faultcode, "string": error.faultstring, "detail": error.detail}}


# --- plain data -------------------------------------------------------------------------------


def to_plain(value: Any) -> Any:
    """JSON-compatible data from what zeep returns.

    * ``xsd:decimal`` -> an ``int`` when whole, a ``float`` when a float holds it exactly
      (``1234.50`` -> ``1234.5``), otherwise the exact decimal as a string: amounts never change
      silently, and an assertion comparing that string with a number fails loudly instead;
    * dates, times and datetimes -> ISO 8601 strings; durations -> ISO 8601 durations;
    * ``base64Binary``/``hexBinary`` -> base64 text; ``xsd:any`` content -> ``xml_to_data``;
    * QNames -> ``{namespace}local`` text; anything else -> ``str()``.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return decimal_to_plain(value)
    if isinstance(value, zeep.xsd.CompoundValue):
        return to_plain(serialize(value))
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, etree._Element):
        return xml_to_data(value) if isinstance(value.tag, str) else None
    if isinstance(value, etree.QName):
        return value.text
    if isinstance(value, datetime.timedelta) or type(value).__name__ == "Duration":
        import isodate  # type: ignore[import-untyped]  # zeep's own dependency for xsd:duration

        return str(isodate.duration_isoformat(value))
    return str(value)


def serialize(value: Any) -> Any:
    """zeep's objects as dicts and lists (leaves untouched)."""
    return zeep.helpers.serialize_object(value, dict)  # type: ignore[no-untyped-call]


def decimal_to_plain(value: decimal.Decimal) -> float | int | str:
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value() and abs(value) < 2**53:
        return int(value)
    as_float = float(value)
    return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
