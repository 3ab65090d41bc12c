"""WSDL layouts real partners publish, and WSDLs that used to crash: bindings in imported WSDLs
(the WSDL spec's and Apache CXF's layout), an explicit soap_version the WSDL lacks, rpc/literal
and rpc/encoded (with the SOAP encoding schema shipped in the package), broken definitions that
must end in a flowrun error naming the WSDL, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowrun._errors import DefinitionError, FlowrunError, WsdlError
from flowrun._models._steps import ResponseSpec, SoapStep
from flowrun._soap import SoapExecutor
from flowrun.testing import PartnerServer

REPO = Path(__file__).resolve().parents[2]
SHAPES = (REPO / "flowrun" / "testing" / "shapes.wsdl").read_text(encoding="utf-8")


def _split(text: str, start: str, end: str = "</wsdl:definitions>") -> tuple[str, str, str]:
    a, b = text.index(start), text.index(end)
    return text[:a], text[a:b], text[b:]


def cxf_layout(directory: Path, *, with_service: bool = True) -> Path:
    """interface.wsdl (types, messages, portType) <- binding.wsdl (binding) <- service.wsdl (service)."""
    head_end = SHAPES.index(">", SHAPES.index("<wsdl:definitions")) + 1
    before_binding = SHAPES[:SHAPES.index("  <wsdl:binding")]
    binding = SHAPES[SHAPES.index("  <wsdl:binding"):SHAPES.index("  <wsdl:service")]
    service = SHAPES[SHAPES.index("  <wsdl:service"):SHAPES.index("</wsdl:definitions>")]
    (directory / "interface.wsdl").write_text(before_binding + "</wsdl:definitions>\n", encoding="utf-8")
    (directory / "binding.wsdl").write_text(
        SHAPES[:head_end] + '\n  <wsdl:import namespace="urn:flowrun:shapes:1" location="interface.wsdl"/>\n'
        + binding + "</wsdl:definitions>\n", encoding="utf-8")
    (directory / "service.wsdl").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" '
        'xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:tns="urn:flowrun:shapes:1" '
        'targetNamespace="urn:flowrun:shapes:service">\n'
        '  <wsdl:import namespace="urn:flowrun:shapes:1" location="binding.wsdl"/>\n'
        + (service if with_service else "") + "</wsdl:definitions>\n", encoding="utf-8")
    return directory / "service.wsdl"


@pytest.mark.parametrize("with_service", [True, False])
def test_a_binding_in_an_imported_wsdl(soap: SoapExecutor, partner: PartnerServer, tmp_path: Path,
                                       with_service: bool) -> None:
    wsdl = cxf_layout(tmp_path, with_service=with_service)
    step = SoapStep(id="add", alias="ledger", wsdl=str(wsdl), operation="Add", path="/shapes",
                    args={"a": 40, "b": 2}, response=ResponseSpec(outputs={"sum": "body.AddResult"}))

    assert soap.run(step).raise_for_failure().outputs == {"sum": 42}


def test_an_explicit_soap_version_the_wsdl_lacks_is_an_error(soap: SoapExecutor, partner: PartnerServer) -> None:
    before = len(partner.requests)
    result = soap.run(SoapStep(id="v12", alias="ledger", wsdl=f"{partner.url}/shapes?wsdl", operation="Add",
                               path="/shapes", args={"a": 1, "b": 1}, soap_version="1.2"))

    assert isinstance(result.error, DefinitionError)
    assert "asks for SOAP 1.2" in result.error.message and "SOAP 1.1 bindings only" in result.error.message
    assert not [r for r in partner.requests[before:] if r.method == "POST"]
    ok = soap.run(SoapStep(id="v11", alias="ledger", wsdl=f"{partner.url}/shapes?wsdl", operation="Add",
                           path="/shapes", args={"a": 1, "b": 1}, soap_version="1.1"))
    assert ok.raise_for_failure().body == {"AddResult": 2}


BROKEN = {
    # A soap:header naming a message the WSDL does not define (zeep: IndexError / KeyError).
    "undefined_header_message": lambda text: text.replace(
        '<soap:header message="tns:SessionHeader" part="session" use="literal"/>',
        '<soap:header message="tns:NoSuchHeader" part="session" use="literal"/>'),
    "header_part_missing": lambda text: text.replace(
        '<soap:header message="tns:SessionHeader" part="session" use="literal"/>',
        '<soap:header message="tns:SessionHeader" part="nope" use="literal"/>'),
    "not_xml": lambda text: text[: len(text) // 2],
    "unknown_type": lambda text: text.replace('type="xsd:int"/>\n          <xsd:element name="b"',
                                              'type="tns:Nope"/>\n          <xsd:element name="b"'),
    "binding_of_unknown_port_type": lambda text: text.replace('type="tns:ShapesPortType"', 'type="tns:Nope"'),
    "port_of_unknown_binding": lambda text: text.replace('binding="tns:ShapesBinding"', 'binding="tns:Nope"'),
    "message_of_unknown_element": lambda text: text.replace('element="tns:AddResponse"', 'element="tns:Nope"'),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_wsdl_is_a_flowrun_error_naming_it(soap: SoapExecutor, partner: PartnerServer, tmp_path: Path,
                                                    kind: str) -> None:
    wsdl = tmp_path / f"{kind}.wsdl"
    wsdl.write_text(BROKEN[kind](SHAPES), encoding="utf-8")
    for operation, args in (("Add", {"a": 1, "b": 2}), ("GetStatement", {"account": "1"})):
        result = soap.run(SoapStep(id="call", alias="ledger", wsdl=str(wsdl), operation=operation, path="/shapes",
                                   args=args))
        if result.ok:
            continue  # zeep reads some damage leniently; then the call must simply work
        assert isinstance(result.error, FlowrunError)
        assert isinstance(result.error, WsdlError | DefinitionError), result.error
        assert wsdl.name in str(result.error) or operation in str(result.error), result.error


RPC_WSDL = """<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/"
    xmlns:tns="urn:flowrun:shapes:1" targetNamespace="urn:flowrun:shapes:1">
  {types}
  <wsdl:message name="AddIn"><wsdl:part name="a" type="{int_type}"/><wsdl:part name="b" type="xsd:int"/></wsdl:message>
  <wsdl:message name="AddOut"><wsdl:part name="AddResult" type="xsd:int"/></wsdl:message>
  <wsdl:portType name="ShapesRpc">
    <wsdl:operation name="Add"><wsdl:input message="tns:AddIn"/><wsdl:output message="tns:AddOut"/></wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="ShapesRpcBinding" type="tns:ShapesRpc">
    <soap:binding style="rpc" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="Add">
      <soap:operation soapAction="urn:flowrun:shapes:1#Add"/>
      <wsdl:input><soap:body use="{use}" namespace="urn:flowrun:shapes:1"{style}/></wsdl:input>
      <wsdl:output><soap:body use="{use}" namespace="urn:flowrun:shapes:1"{style}/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="ShapesRpc">
    <wsdl:port name="ShapesRpcPort" binding="tns:ShapesRpcBinding">
      <soap:address location="https://localhost/shapes"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""
ENCODED_TYPES = """<wsdl:types><xsd:schema targetNamespace="urn:flowrun:shapes:1">
    <xsd:import namespace="http://schemas.xmlsoap.org/soap/encoding/"/>
    <xsd:complexType name="ArrayOfInt"><xsd:complexContent><xsd:restriction base="soapenc:Array">
      <xsd:attribute ref="soapenc:arrayType" wsdl:arrayType="xsd:int[]"/>
    </xsd:restriction></xsd:complexContent></xsd:complexType>
  </xsd:schema></wsdl:types>"""


@pytest.mark.parametrize("use", ["literal", "encoded"])
def test_rpc_wsdls(soap: SoapExecutor, partner: PartnerServer, tmp_path: Path, use: str) -> None:
    encoded = use == "encoded"
    wsdl = tmp_path / f"rpc-{use}.wsdl"
    wsdl.write_text(RPC_WSDL.format(
        use=use, types=ENCODED_TYPES if encoded else "", int_type="soapenc:int" if encoded else "xsd:int",
        style=' encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"' if encoded else ""), encoding="utf-8")
    before = len(partner.requests)
    step = SoapStep(id="add", alias="ledger", wsdl=str(wsdl), operation="Add", path="/shapes", args={"a": 2, "b": 3},
                    response=ResponseSpec(outputs={"sum": "body.AddResult"}))

    result = soap.run(step).raise_for_failure()

    assert result.outputs == {"sum": 5}
    assert result.body == {"AddResult": 5}
    # Only the call went out: the SOAP encoding schema came from the package.
    assert [r.method for r in partner.requests[before:]] == ["POST"]
    envelope = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:s="urn:flowrun:shapes:1">'
                "<soap:Body><s:Add><a>2</a><b>3</b></s:Add></soap:Body></soap:Envelope>")
    raw = soap.run(SoapStep(id="raw", alias="ledger", wsdl=str(wsdl), envelope=envelope, path="/shapes",
                            response=ResponseSpec(outputs={"sum": "body.AddResult"})))
    assert raw.raise_for_failure().outputs == result.outputs  # typed by the WSDL: 5, not "5"


@pytest.mark.parametrize(("args", "expected"), [
    # Names are worded as `flowrun validate` words them; values as zeep finds them.
    ({"a": 1}, "operation Add needs 'b', missing from the args"),
    ({"a": 1, "b": 2, "c": 3}, "operation Add has no input element 'c'"),
    ({"a": 1, "bb": 2}, "operation Add has no input element 'bb' (did you mean 'b'?)"),
    ({"a": "1.5", "b": 2}, "Add/a: '1.5' is not a valid xs:int"),
    ({"a": True, "b": 2}, "Add/a: 'True' is not a valid xs:int"),
])
def test_args_that_do_not_fit_the_operation(soap: SoapExecutor, partner: PartnerServer, args: dict[str, object],
                                            expected: str) -> None:
    before = len(partner.requests)
    result = soap.run(SoapStep(id="add", alias="ledger", wsdl=f"{partner.url}/shapes?wsdl", operation="Add",
                               path="/shapes", args=args))

    assert isinstance(result.error, DefinitionError), result.error
    assert expected in result.error.message
    assert "Add" in str(result.error) and "shapes?wsdl" in str(result.error)
    assert not [r for r in partner.requests[before:] if r.method == "POST"]


def test_a_document_message_with_two_parts_types_the_first_reply_element(soap: SoapExecutor,
                                                                         partner: PartnerServer,
                                                                         tmp_path: Path) -> None:
    # The reply element is the Body's first child: here the first of the two parts zeep would wrap.
    text = SHAPES.replace('<wsdl:message name="AddOut"><wsdl:part name="parameters" element="tns:AddResponse"/>',
                          '<wsdl:message name="AddOut"><wsdl:part name="parameters" element="tns:AddResponse"/>'
                          '<wsdl:part name="extra" element="tns:Session"/>')
    wsdl = tmp_path / "two-parts.wsdl"
    wsdl.write_text(text, encoding="utf-8")
    result = soap.run(SoapStep(id="add", alias="ledger", wsdl=str(wsdl), operation="Add", path="/shapes",
                               args={"a": 1, "b": 2}))
    assert result.raise_for_failure().body == {"AddResult": 3}
