"""The pure parts of SOAP handling: faults, SOAPAction, headers, where documents may come from."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from flowrun._errors import DefinitionError, UnsafeXmlError
from flowrun._transport._soap import set_soap_action, soap_headers_value
from flowrun._transport._soap_data import SOAP12_ENVELOPE, fault_from_element, find_fault
from flowrun._transport._wsdl import LoadPolicy


def test_a_soap12_fault_with_subcodes_and_detail() -> None:
    envelope = etree.fromstring(f"""
        <env:Envelope xmlns:env="{SOAP12_ENVELOPE}" xmlns:app="urn:app"><env:Body><env:Fault>
          <env:Code><env:Value>env:Sender</env:Value>
            <env:Subcode><env:Value>app:Locked</env:Value></env:Subcode></env:Code>
          <env:Reason><env:Text xml:lang="en">account locked</env:Text></env:Reason>
          <env:Role>urn:app:ledger</env:Role>
          <env:Detail><app:Lock><app:until>2026-12-31</app:until></app:Lock></env:Detail>
        </env:Fault></env:Body></env:Envelope>""")
    fault = find_fault(envelope)
    assert fault is not None

    error = fault_from_element(fault, status=500)

    assert error.faultcode == "env:Sender / app:Locked"
    assert error.faultstring == "account locked"
    assert error.detail == {"Lock": {"until": "2026-12-31"}}
    assert error.actor == "urn:app:ledger"
    assert "HTTP 500" in error.message


def test_set_soap_action_per_version() -> None:
    soap11 = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"old"'}
    set_soap_action(soap11, "urn:new")
    assert soap11 == {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:new"'}

    soap12 = {"Content-Type": 'application/soap+xml; charset=utf-8; action="old"', "SOAPAction": '"old"'}
    set_soap_action(soap12, "urn:new")
    assert soap12 == {"Content-Type": 'application/soap+xml; charset=utf-8; action="urn:new"'}


def test_soap_headers_value() -> None:
    assert soap_headers_value({}) is None
    assert soap_headers_value({"Session": "s-1"}) == {"Session": "s-1"}
    (element,) = soap_headers_value({"{urn:auth}Token": {"value": "t", "{urn:other}flag": True}})
    assert element.tag == "{urn:auth}Token"
    assert [(child.tag, child.text) for child in element] == [("{urn:auth}value", "t"), ("{urn:other}flag", "true")]
    with pytest.raises(DefinitionError, match="mixes"):
        soap_headers_value({"{urn:auth}Token": "t", "Session": "s"})


def test_load_policy(tmp_path: Path) -> None:
    policy = LoadPolicy(frozenset({("https", "partner.example", 443)}), local_root=tmp_path)
    assert policy.locate("https://PARTNER.example/x.xsd") == "https://PARTNER.example/x.xsd"
    assert policy.locate(str(tmp_path / "a" / "b.xsd")) == (tmp_path / "a" / "b.xsd").resolve()
    assert policy.locate((tmp_path / "c.xsd").as_uri()) == (tmp_path / "c.xsd").resolve()
    for refused in ("https://partner.example:8443/x.xsd", "http://partner.example/x.xsd",
                    str(tmp_path.parent / "x.xsd"), f"{tmp_path}/../x.xsd", "ftp://partner.example/x.xsd"):
        with pytest.raises(UnsafeXmlError, match="refused"):
            policy.locate(refused)
    remote_only = LoadPolicy(frozenset({("https", "partner.example", 443)}))
    with pytest.raises(UnsafeXmlError, match="local file"):
        remote_only.locate(str(tmp_path / "b.xsd"))
