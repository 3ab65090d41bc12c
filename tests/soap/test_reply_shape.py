"""The reply shape contract (docs/flows.md, "SOAP replies") against the Shapes test service.

``body`` is the reply element as an object keyed by its children's local names, never unwrapped;
repeated elements are arrays (always, where the schema allows several); attributes are
``"@name"``; simpleContent text is ``"#text"``; reply SOAP headers are ``soap_headers``; faults
``fault``. WSDL mode and raw-envelope mode (naming the wsdl) give the same shape and values.
"""

from __future__ import annotations

import base64
import decimal
import re
from typing import Any

import pytest

from flowrun._errors import OutputNotFoundError, ResponseParseError, SoapFaultError, SoapReplyError, UnsafeXmlError
from flowrun._models._results import StepResult
from flowrun._models._steps import ResponseSpec, SoapStep
from flowrun._soap import SoapExecutor
from flowrun.testing import PartnerServer
from flowrun.testing._soap_service import DOCUMENT_BYTES, SHAPES_NAMESPACE

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
D = decimal.Decimal


def shapes_step(partner: PartnerServer, operation: str, args: dict[str, Any], **fields: Any) -> SoapStep:
    return SoapStep(id=operation.lower(), alias="ledger", wsdl=f"{partner.url}/shapes?wsdl", operation=operation,
                    path="/shapes", args=args, **fields)


def raw_step(partner: PartnerServer, operation: str, args: dict[str, str], *, wsdl: bool = True,
             **fields: Any) -> SoapStep:
    inner = "".join(f"<s:{name}>{value}</s:{name}>" for name, value in args.items())
    envelope = (f'<soap:Envelope xmlns:soap="{SOAP11}" xmlns:s="{SHAPES_NAMESPACE}"><soap:Body>'
                f"<s:{operation}>{inner}</s:{operation}></soap:Body></soap:Envelope>")
    return SoapStep(id=f"raw_{operation.lower()}", alias="ledger", envelope=envelope, path="/shapes",
                    wsdl=f"{partner.url}/shapes?wsdl" if wsdl else None,
                    soap_action=f"{SHAPES_NAMESPACE}#{operation}", **fields)


def run(soap: SoapExecutor, step: SoapStep) -> StepResult:
    return soap.run(step, {"inputs": {}})


def test_a_single_child_reply_is_never_unwrapped(soap: SoapExecutor, partner: PartnerServer) -> None:
    step = shapes_step(partner, "Add", {"a": 2, "b": 3},
                       response=ResponseSpec(outputs={"sum": "body.AddResult"}))

    result = run(soap, step).raise_for_failure()

    assert result.body == {"AddResult": 5}
    assert result.outputs == {"sum": 5}
    raw = run(soap, raw_step(partner, "Add", {"a": "2", "b": "3"},
                             response=ResponseSpec(outputs={"sum": "body.AddResult"}))).raise_for_failure()
    assert raw.body == result.body and raw.outputs == result.outputs


def test_two_single_child_levels_nest(soap: SoapExecutor, partner: PartnerServer) -> None:
    result = run(soap, shapes_step(partner, "Echo", {"amount": "1.5"})).raise_for_failure()

    assert result.body == {"EchoResult": {"amount": D("1.5"), "received": "1.5"}}


STATEMENT = {
    "@account": "42",
    "Entry": [
        {"@id": 1, "amount": {"@currency": "EUR", "#text": D("10.05")}, "bookedAt": "2026-01-01T08:30:00Z",
         "valueDate": "2026-01-01"},
        {"@id": 2, "amount": {"@currency": "EUR", "#text": D("20.05")}, "bookedAt": "2026-01-02T08:30:00Z",
         "valueDate": "2026-01-02"},
    ],
    "note": "end of statement",
}


def test_attributes_simple_content_arrays_and_reply_headers(soap: SoapExecutor, partner: PartnerServer) -> None:
    outputs = {"first": 'body.Statement.Entry[0].amount."#text"',
               "currency": 'body.Statement.Entry[1].amount."@currency"',
               "token": "soap_headers.Session.token", "count": "length(body.Statement.Entry)"}
    step = shapes_step(partner, "GetStatement", {"account": "42"}, response=ResponseSpec(outputs=outputs))

    result = run(soap, step).raise_for_failure()

    assert result.body == {"Statement": STATEMENT}
    assert result.soap_headers == {"Session": {"token": "session-7", "expires": 300}}
    assert result.outputs == {"first": D("10.05"), "currency": "EUR", "token": "session-7", "count": 2}
    assert "_value_1" not in repr(result.to_dict(include_body=True))
    raw = run(soap, raw_step(partner, "GetStatement", {"account": "42"}, response=ResponseSpec(outputs=outputs)))
    assert raw.raise_for_failure().body == result.body
    assert raw.soap_headers == result.soap_headers and raw.outputs == result.outputs


def test_max_occurs_many_is_an_array_even_with_one_item(soap: SoapExecutor, partner: PartnerServer) -> None:
    one = run(soap, shapes_step(partner, "GetStatement", {"account": "42", "mode": "one"})).raise_for_failure()
    assert one.body["Statement"]["Entry"] == STATEMENT["Entry"][:1]
    none = run(soap, shapes_step(partner, "GetStatement", {"account": "42", "mode": "none"})).raise_for_failure()
    assert "Entry" not in none.body["Statement"]
    # Without a schema an element is an array only when it repeats.
    raw = run(soap, raw_step(partner, "GetStatement", {"account": "42", "mode": "one"}, wsdl=False))
    assert raw.raise_for_failure().body["Statement"]["Entry"] == {
        "@id": "1", "amount": {"@currency": "EUR", "#text": "10.05"}, "bookedAt": "2026-01-01T08:30:00Z",
        "valueDate": "2026-01-01"}


def test_nil_is_null(soap: SoapExecutor, partner: PartnerServer) -> None:
    step = shapes_step(partner, "GetStatement", {"account": "42", "mode": "nil"},
                       response=ResponseSpec(outputs={"note": "body.Statement.note"}))
    result = run(soap, step).raise_for_failure()
    assert result.outputs == {"note": None}  # present and nil: a value, not a miss


def test_strict_refuses_extra_and_reordered_elements_and_lax_accepts_them(soap: SoapExecutor,
                                                                          partner: PartnerServer) -> None:
    for mode, problem in (("extra", "does not declare"), ("reordered", "out of the schema's order")):
        strict = run(soap, shapes_step(partner, "GetStatement", {"account": "42", "mode": mode}))
        assert isinstance(strict.error, SoapReplyError), strict.error
        assert problem in strict.error.message
        assert "GetStatementResponse/Statement/Entry/" in strict.error.message
        assert "shapes?wsdl" in strict.error.message and "GetStatement" in strict.error.message
        lax = run(soap, shapes_step(partner, "GetStatement", {"account": "42", "mode": mode}, strict=False))
        entries = lax.raise_for_failure().body["Statement"]["Entry"]
        assert entries[0]["amount"] == {"@currency": "EUR", "#text": D("10.05")}
        if mode == "extra":
            assert entries[0]["surprise"] == "new in v2"


def test_a_value_not_valid_for_its_type_names_the_element(soap: SoapExecutor, partner: PartnerServer) -> None:
    result = run(soap, shapes_step(partner, "GetStatement", {"account": "42", "mode": "bad-decimal"}))

    assert isinstance(result.error, SoapReplyError)
    assert "GetStatementResponse/Statement/Entry/amount" in result.error.message
    assert "'1.234,50' is not a valid xs:decimal" in result.error.message
    raw = run(soap, raw_step(partner, "GetStatement", {"account": "42", "mode": "bad-decimal"}))
    assert isinstance(raw.error, SoapReplyError)
    text = run(soap, raw_step(partner, "GetStatement", {"account": "42", "mode": "bad-decimal"}, wsdl=False))
    assert text.raise_for_failure().body["Statement"]["Entry"][0]["amount"]["#text"] == "1.234,50"


def test_one_way_operation_answered_202_is_success(soap: SoapExecutor, partner: PartnerServer) -> None:
    result = run(soap, shapes_step(partner, "Notify", {"message": "hello"})).raise_for_failure()

    assert result.http_status == 202
    assert result.body is None
    missing = run(soap, shapes_step(partner, "Notify", {"message": "hello"},
                                    response=ResponseSpec(outputs={"x": "body.id"})))
    assert isinstance(missing.error, OutputNotFoundError)


def test_mtom_attachment_is_resolved(soap: SoapExecutor, partner: PartnerServer) -> None:
    result = run(soap, shapes_step(partner, "GetDocument", {"id": "contract"})).raise_for_failure()

    assert result.body["name"] == "contract.bin"
    assert base64.b64decode(result.body["content"]) == DOCUMENT_BYTES


def test_fault_with_actor_and_detail(soap: SoapExecutor, partner: PartnerServer) -> None:
    result = run(soap, shapes_step(partner, "Fail", {"reason": "backend down"}))

    assert isinstance(result.error, SoapFaultError)
    assert result.fault == {"code": "soap:Server", "string": "backend down", "actor": "urn:flowrun:shapes:backend",
                            "detail": {"Problem": {"@severity": "high", "code": "E42"}}}


@pytest.mark.parametrize("amount", ["0.00005", "12345678901234567.89", "-1234.50"])
def test_decimals_round_trip_exactly(soap: SoapExecutor, partner: PartnerServer, amount: str) -> None:
    before = len(partner.requests)
    for given in (D(amount), amount):
        result = run(soap, shapes_step(partner, "Echo", {"amount": given})).raise_for_failure()
        assert result.body["EchoResult"] == {"amount": D(amount), "received": amount}
        assert str(result.body["EchoResult"]["amount"]) == amount
    sent = [r.body for r in partner.requests[before:] if r.method == "POST"]
    assert len(sent) == 2
    assert all(re.search(rb"<(\w+:)?amount>" + re.escape(amount.encode()) + rb"</", body) for body in sent), sent


@pytest.mark.parametrize(("mode", "error", "text"), [
    ("not-xml", ResponseParseError, "is not well-formed XML"),
    ("html", UnsafeXmlError, "is an HTML page"),
    ("plain-xml", ResponseParseError, "is XML but not a SOAP envelope: its root element is status"),
])
def test_a_reply_that_is_not_an_envelope_names_the_operation(soap: SoapExecutor, partner: PartnerServer,
                                                             mode: str, error: type[Exception], text: str) -> None:
    result = run(soap, shapes_step(partner, "GetStatement", {"account": "42", "mode": mode}))

    assert isinstance(result.error, error), result.error
    assert text in result.error.message
    assert "the reply to operation GetStatement of" in result.error.message and "shapes?wsdl" in result.error.message


def test_raw_mode_reads_mtom_and_one_way_answers_too(soap: SoapExecutor, partner: PartnerServer) -> None:
    document = run(soap, raw_step(partner, "GetDocument", {"id": "c"})).raise_for_failure()
    assert base64.b64decode(document.body["content"]) == DOCUMENT_BYTES
    notify = run(soap, raw_step(partner, "Notify", {"message": "m"})).raise_for_failure()
    assert (notify.http_status, notify.body) == (202, None)
