"""A ~1 MB WSDL with hundreds of operations, for the SOAP pair that checks calls stay flat in WSDL size.

It is the Ledger service (``flowrun.testing``'s ``ledger.xsd``, binding ``LedgerBinding``: the
partner answers its ``GetBalance``) plus ``operations`` more operations, each with its own request
and reply elements of eight fields and a documentation paragraph, as large enterprise WSDLs have.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

_FIELDS = 8
_DOC = ("Returns the requested record as held by the ledger at the time of the call. " * 2).strip()


def _element(name: str, index: int) -> str:
    fields = "\n".join(f'          <xsd:element name="field{f}_{index}" type="xsd:string" minOccurs="0"/>'
                       for f in range(_FIELDS))
    return (f'      <xsd:element name="{name}">\n        <xsd:annotation><xsd:documentation>{_DOC}'
            f'</xsd:documentation></xsd:annotation>\n        <xsd:complexType>\n          <xsd:sequence>\n'
            f'{fields}\n          </xsd:sequence>\n        </xsd:complexType>\n      </xsd:element>')


def big_wsdl_text(operations: int) -> str:
    names = ["GetBalance", *(f"Operation{i:04d}" for i in range(operations))]
    elements = "\n".join(_element(f"Operation{i:04d}", i) + "\n" + _element(f"Operation{i:04d}Response", i)
                         for i in range(operations))
    messages = "\n".join(
        f'  <wsdl:message name="{n}Request"><wsdl:part name="parameters" element="tns:{n}"/></wsdl:message>\n'
        f'  <wsdl:message name="{n}Response"><wsdl:part name="parameters" element="tns:{n}Response"/>'
        f'</wsdl:message>' for n in names)
    port_ops = "\n".join(
        f'    <wsdl:operation name="{n}"><wsdl:documentation>{_DOC}</wsdl:documentation>'
        f'<wsdl:input message="tns:{n}Request"/><wsdl:output message="tns:{n}Response"/></wsdl:operation>'
        for n in names)
    binding_ops = "\n".join(
        f'    <wsdl:operation name="{n}">\n      <soap:operation soapAction="urn:flowrun:ledger:1#{n}" '
        f'style="document"/>\n      <wsdl:input><soap:body use="literal"/></wsdl:input>\n'
        f'      <wsdl:output><soap:body use="literal"/></wsdl:output>\n    </wsdl:operation>' for n in names)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions name="BigLedger" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="urn:flowrun:ledger:1" targetNamespace="urn:flowrun:ledger:1">
  <wsdl:types>
    <xsd:schema>
      <xsd:import namespace="urn:flowrun:ledger:1" schemaLocation="ledger.xsd"/>
    </xsd:schema>
    <xsd:schema targetNamespace="urn:flowrun:ledger:1" elementFormDefault="qualified">
{elements}
    </xsd:schema>
  </wsdl:types>
{messages}
  <wsdl:portType name="LedgerPortType">
{port_ops}
  </wsdl:portType>
  <wsdl:binding name="LedgerBinding" type="tns:LedgerPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
{binding_ops}
  </wsdl:binding>
  <wsdl:service name="Ledger">
    <wsdl:port name="LedgerPort" binding="tns:LedgerBinding">
      <soap:address location="https://localhost/ledger"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""


def write_big_wsdl(directory: Path, operations: int = 360) -> Path:
    """``directory/big-ledger.wsdl`` (and the ``ledger.xsd`` it imports beside it)."""
    directory.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files("flowrun.testing") / "ledger.xsd") as xsd:
        shutil.copyfile(xsd, directory / "ledger.xsd")
    path = directory / "big-ledger.wsdl"
    path.write_text(big_wsdl_text(operations), encoding="utf-8")
    return path
