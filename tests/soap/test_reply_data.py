"""The reply shape rules on schema constructs the Shapes service does not serve: repeating
sequences, xs:all, choices, xsd:any, xsi:type, mixed content; parsed by real zeep from a WSDL."""

from __future__ import annotations

import decimal
from pathlib import Path
from typing import Any

import pytest

from flowrun._eval import parse_xml
from flowrun._transport._soap_data import ReplyValueError, operation_schema, reply_data
from flowrun._transport._wsdl import LoadPolicy, WsdlSource, _parse, choose_binding

NS = "urn:flowrun:rules:1"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL = f"""<?xml version="1.0"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="{NS}" targetNamespace="{NS}">
  <wsdl:types><xsd:schema targetNamespace="{NS}" elementFormDefault="qualified">
    <xsd:element name="Get"><xsd:complexType><xsd:sequence/></xsd:complexType></xsd:element>
    <xsd:element name="GetResponse"><xsd:complexType><xsd:sequence>
      <xsd:element name="pairs" minOccurs="0"><xsd:complexType>
        <xsd:sequence maxOccurs="unbounded">
          <xsd:element name="k" type="xsd:string"/><xsd:element name="v" type="xsd:int"/>
        </xsd:sequence>
      </xsd:complexType></xsd:element>
      <xsd:element name="any" minOccurs="0"><xsd:complexType><xsd:all>
        <xsd:element name="x" type="xsd:boolean"/><xsd:element name="y" type="xsd:date"/>
      </xsd:all></xsd:complexType></xsd:element>
      <xsd:element name="pick" minOccurs="0"><xsd:complexType><xsd:choice>
        <xsd:element name="iban" type="xsd:string"/><xsd:element name="amount" type="xsd:decimal"/>
      </xsd:choice></xsd:complexType></xsd:element>
      <xsd:element name="open" minOccurs="0"><xsd:complexType><xsd:sequence>
        <xsd:element name="known" type="xsd:long"/><xsd:any processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
      </xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="loose" type="xsd:anyType" minOccurs="0"/>
      <xsd:element name="empty" minOccurs="0"><xsd:complexType><xsd:sequence>
        <xsd:element name="n" type="xsd:int" minOccurs="0"/></xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="count" type="xsd:int" minOccurs="0"/>
      <xsd:element name="ratio" type="xsd:double" minOccurs="0"/>
      <xsd:element name="blob" type="xsd:base64Binary" minOccurs="0"/>
    </xsd:sequence></xsd:complexType></xsd:element>
  </xsd:schema></wsdl:types>
  <wsdl:message name="In"><wsdl:part name="p" element="tns:Get"/></wsdl:message>
  <wsdl:message name="Out"><wsdl:part name="p" element="tns:GetResponse"/></wsdl:message>
  <wsdl:portType name="P"><wsdl:operation name="Get"><wsdl:input message="tns:In"/><wsdl:output message="tns:Out"/>
  </wsdl:operation></wsdl:portType>
  <wsdl:binding name="B" type="tns:P"><soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="Get"><soap:operation soapAction="Get"/><wsdl:input><soap:body use="literal"/></wsdl:input>
    <wsdl:output><soap:body use="literal"/></wsdl:output></wsdl:operation></wsdl:binding>
</wsdl:definitions>"""


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory = tmp_path_factory.mktemp("rules")
    path = directory / "rules.wsdl"
    path.write_text(WSDL, encoding="utf-8")
    document = _parse(WsdlSource(str(path), local=True), WSDL.encode(), LoadPolicy(frozenset(), Path(directory)),
                      None, True)  # type: ignore[arg-type]  # no exchanger: a local WSDL fetches nothing
    chosen = choose_binding(document, service=None, port=None, soap_version=None, wsdl=str(path))
    return operation_schema(chosen.binding.get("Get"))


def body(schema: Any, inner: str, *, strict: bool = True) -> Any:
    envelope = (f'<soap:Envelope xmlns:soap="{SOAP11}" xmlns:t="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
                f' xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body><t:GetResponse>{inner}</t:GetResponse>'
                "</soap:Body></soap:Envelope>")
    return reply_data(parse_xml(envelope.encode()), schema=schema, strict=strict).body


def test_a_repeating_sequence_is_arrays_in_any_order(schema: Any) -> None:
    data = body(schema, "<t:pairs><t:k>a</t:k><t:v>1</t:v><t:k>b</t:k><t:v>2</t:v></t:pairs>")
    assert data == {"pairs": {"k": ["a", "b"], "v": [1, 2]}}


def test_xs_all_accepts_any_order_in_strict_mode(schema: Any) -> None:
    assert body(schema, "<t:any><t:y>2026-02-01</t:y><t:x>1</t:x></t:any>") == {"any": {"y": "2026-02-01", "x": True}}


def test_choice_types_the_branch_present(schema: Any) -> None:
    assert body(schema, "<t:pick><t:amount>-0.50</t:amount></t:pick>") == {"pick": {"amount": decimal.Decimal("-0.50")}}


def test_xsd_any_takes_undeclared_children_untyped(schema: Any) -> None:
    data = body(schema, "<t:open><t:known>9007199254740993</t:known><t:extra a='1'>x</t:extra></t:open>")
    assert data == {"open": {"known": 9007199254740993, "extra": {"@a": "1", "#text": "x"}}}


def test_xsi_type_and_mixed_content(schema: Any) -> None:
    data = body(schema, '<t:loose><t:n xsi:type="xsd:int">7</t:n><t:f xsi:type="xsd:boolean">false</t:f>'
                        "tail text</t:loose>")
    assert data == {"loose": {"n": 7, "f": False, "#text": "tail text"}}


def test_empty_values(schema: Any) -> None:
    assert body(schema, "<t:empty/><t:count/><t:ratio>INF</t:ratio><t:blob> AAEC\n AwQ= </t:blob>") == {
        "empty": {}, "count": None, "ratio": float("inf"), "blob": "AAECAwQ="}


@pytest.mark.parametrize(("inner", "where", "problem"), [
    ("<t:count>12a</t:count>", "GetResponse/count", "'12a' is not a valid xs:int"),
    ("<t:any><t:x>yes</t:x><t:y>2026-02-01</t:y></t:any>", "GetResponse/any/x", "not an xs:boolean"),
    ("<t:any><t:x>1</t:x><t:y>01.02.2026</t:y></t:any>", "GetResponse/any/y", "not a valid xs:date"),
    ("<t:pick><t:amount>1e3</t:amount></t:pick>", "GetResponse/pick/amount", "no exponent"),
    ("<t:count>1</t:count><t:pairs/>", "GetResponse/pairs", "out of the schema's order"),
    ("<t:surprise/>", "GetResponse/surprise", "does not declare this element"),
])
def test_values_and_elements_that_do_not_fit(schema: Any, inner: str, where: str, problem: str) -> None:
    with pytest.raises(ReplyValueError) as raised:
        body(schema, inner)
    assert raised.value.path == where
    assert problem in raised.value.problem


def test_lax_mode_accepts_order_and_extras_but_not_bad_values(schema: Any) -> None:
    assert body(schema, "<t:count>1</t:count><t:pairs/><t:surprise>s</t:surprise>", strict=False) == {
        "count": 1, "pairs": {}, "surprise": "s"}
    with pytest.raises(ReplyValueError):
        body(schema, "<t:count>x</t:count>", strict=False)
