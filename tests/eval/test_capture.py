"""Captures (JMESPath and XPath), safe XML parsing, and the plain-data view of XML."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from flowrun._errors import CaptureError, ResponseParseError, SchemaError, UnsafeXmlError
from flowrun._eval import (
    capture,
    capture_json,
    capture_xpath,
    check_capture,
    parse_xml,
    strip_namespaces,
    xml_to_data,
)

SOAP_RESPONSE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- ledger answer -->
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <soap:Body>
    <GetBalanceResponse xmlns="urn:bank:ledger">
      <account id="7" xmlns:x="urn:extra" x:origin="core">7</account>
      <balance currency="EUR">120.50</balance>
      <entry><amount>10</amount><label>fee</label></entry>
      <entry><amount>-2.5</amount><label>refund</label></entry>
      <memo/>
      <closed xsi:nil="true"/>
    </GetBalanceResponse>
  </soap:Body>
</soap:Envelope>
"""

LEDGER = {"l": "urn:bank:ledger", "soap": "http://schemas.xmlsoap.org/soap/envelope/"}


@pytest.fixture
def root() -> etree._Element:
    return parse_xml(SOAP_RESPONSE)


# --- JSON ---------------------------------------------------------------------------------


@pytest.fixture
def response() -> dict[str, Any]:
    return {
        "status": 200,
        "headers": {"content-type": "application/json", "x-request-id": "r-1"},
        "body": {"balance": 12.5, "items": [{"id": 1}, {"id": 2}], "owner": None},
    }


def test_capture_json(response: dict[str, Any]) -> None:
    assert capture_json("body.balance", response) == 12.5
    assert capture_json("status", response) == 200
    assert capture_json('headers."x-request-id"', response) == "r-1"
    assert capture_json("body.items[*].id", response) == [1, 2]
    assert capture_json("length(body.items)", response) == 2
    assert capture_json("body.owner", response) is None


def test_capture_json_missing_value_is_null(response: dict[str, Any]) -> None:
    assert capture_json("body.nothing.deeper", response) is None


def test_capture_json_syntax_error(response: dict[str, Any]) -> None:
    with pytest.raises(CaptureError) as caught:
        capture_json("body..balance", response)
    assert caught.value.message == "invalid JMESPath expression 'body..balance': unexpected '.' at character 6"


def test_capture_json_type_error(response: dict[str, Any]) -> None:
    with pytest.raises(CaptureError, match=r"'length\(body.balance\)' function length\(\) expects"):
        capture_json("length(body.balance)", response)


# --- safe parsing -------------------------------------------------------------------------


def test_parse_xml_returns_the_root(root: etree._Element) -> None:
    assert etree.QName(root).localname == "Envelope"


def test_not_well_formed_xml() -> None:
    with pytest.raises(ResponseParseError, match="the response is not well-formed XML"):
        parse_xml(b"<a><b></a>")


def test_empty_document() -> None:
    with pytest.raises(ResponseParseError, match="empty"):
        parse_xml(b"  \n")


def test_source_names_the_document() -> None:
    with pytest.raises(ResponseParseError, match=r"^ledger\.wsdl is not well-formed"):
        parse_xml(b"<a>", source="ledger.wsdl")


def test_utf8_bom_and_latin1_are_read() -> None:
    assert parse_xml(b"\xef\xbb\xbf<a>ok</a>").text == "ok"
    latin = '<?xml version="1.0" encoding="ISO-8859-1"?><a>café</a>'.encode("latin-1")
    assert parse_xml(latin).text == "café"
    wide = '<?xml version="1.0" encoding="UTF-16"?><a>Zoë</a>'.encode("utf-16")
    assert parse_xml(wide).text == "Zoë"


def test_doctype_in_cdata_is_text_not_a_declaration() -> None:
    root = parse_xml(b"<page><![CDATA[<!DOCTYPE html><html></html>]]></page>")
    assert root.text == "<!DOCTYPE html><html></html>"


def test_external_entity_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'
           "<foo>&xxe;</foo>").encode()
    with pytest.raises(UnsafeXmlError) as caught:
        parse_xml(xxe)
    assert "DOCTYPE" in caught.value.message
    assert "TOP-SECRET" not in str(caught.value)


def test_parameter_entity_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.dtd"
    secret.write_text('<!ENTITY leak "TOP-SECRET">')
    document = (f'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY % p SYSTEM "{secret.as_uri()}"> %p;]>'
                "<foo>&leak;</foo>").encode()
    with pytest.raises(UnsafeXmlError):
        parse_xml(document)


def test_billion_laughs_is_refused() -> None:
    entities = "".join(
        f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10 if level > 1 else "lol"}">' for level in range(1, 10)
    )
    bomb = f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><lolz>&lol9;</lolz>'.encode()
    with pytest.raises(UnsafeXmlError):
        parse_xml(bomb)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def test_external_dtd_is_refused_without_a_connection(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    document = f'<?xml version="1.0"?><!DOCTYPE foo SYSTEM "http://127.0.0.1:{port}/x.dtd"><foo/>'.encode()
    with pytest.raises(UnsafeXmlError):
        parse_xml(document)
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?>\n<!-- c --><?pi x?>\n<!DOCTYPE foo []><foo/>',
        b"<!DOCTYPE foo><foo/>",
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE foo [<!ENTITY x "y">]><foo>&x;</foo>'.encode("utf-16"),
        '<?xml version="1.0" encoding="UTF-16BE"?><!DOCTYPE foo [<!ENTITY x "y">]><foo>&x;</foo>'.encode(
            "utf-16-be"
        ),
        '<!DOCTYPE foo [<!ENTITY x "y">]><foo>&x;</foo>'.encode("utf-32"),
    ],
    ids=["after-prolog", "bare", "utf-16", "utf-16-be-no-bom", "utf-32"],
)
def test_every_doctype_is_refused(document: bytes) -> None:
    with pytest.raises(UnsafeXmlError, match="declares a DOCTYPE"):
        parse_xml(document)


def test_utf7_cannot_hide_a_doctype(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    # "+ADw-" is "<" in UTF-7: the DOCTYPE has no "<" byte at all.
    document = (
        b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE foo +AFs-+ADw-!ENTITY +ACU- p SYSTEM +ACI-'
        + secret.as_uri().encode()
        + b"+ACI-+AD4- +ACU-p+ADs-+AF0-+AD4-<foo>a</foo>"
    )
    with pytest.raises(UnsafeXmlError, match="encoding 'UTF-7'"):
        parse_xml(document)


@pytest.mark.parametrize(
    "document",
    [
        b'{"balance": 1}',
        b"<!-- only a comment -->",
        "<a/>".encode("cp500"),  # EBCDIC
        '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'.encode("utf-16-be"),  # no BOM, no declaration
    ],
    ids=["json", "comment-only", "ebcdic", "utf-16-without-signature"],
)
def test_documents_that_do_not_start_with_an_element(document: bytes) -> None:
    with pytest.raises(ResponseParseError, match="is not XML: it does not start with an element"):
        parse_xml(document)


def test_declared_encoding_that_does_not_match_the_bytes() -> None:
    with pytest.raises(ResponseParseError, match="declares the encoding 'UTF-16', but its bytes are not in it"):
        parse_xml(b'<?xml version="1.0" encoding="UTF-16"?><a/>')


def test_html_page_is_named() -> None:
    with pytest.raises(UnsafeXmlError, match="is an HTML page"):
        parse_xml(b"<!doctype html><html><body>502 Bad Gateway</body></html>")


# --- XPath --------------------------------------------------------------------------------


def test_xpath_with_namespaces(root: etree._Element) -> None:
    assert capture_xpath("//l:balance", root, LEDGER) == "120.50"
    assert capture_xpath("//l:balance/@currency", root, LEDGER) == "EUR"
    assert capture_xpath("/soap:Envelope/soap:Body/l:GetBalanceResponse/l:account", root, LEDGER) == "7"


def test_xpath_several_matches_give_a_list(root: etree._Element) -> None:
    assert capture_xpath("//l:entry/l:label", root, LEDGER) == ["fee", "refund"]
    assert capture_xpath("//l:entry/l:amount/text()", root, LEDGER) == ["10", "-2.5"]


def test_xpath_no_match_is_none(root: etree._Element) -> None:
    assert capture_xpath("//l:nothing", root, LEDGER) is None


def test_xpath_numbers_booleans_and_strings(root: etree._Element) -> None:
    assert capture_xpath("count(//l:entry)", root, LEDGER) == 2
    assert isinstance(capture_xpath("count(//l:entry)", root, LEDGER), int)
    assert capture_xpath("sum(//l:entry/l:amount)", root, LEDGER) == 7.5
    assert capture_xpath("boolean(//l:memo)", root, LEDGER) is True
    assert capture_xpath("string(//l:balance)", root, LEDGER) == "120.50"
    assert capture_xpath("number('x')", root) is None


def test_xpath_empty_element_and_element_with_children(root: etree._Element) -> None:
    assert capture_xpath("//l:memo", root, LEDGER) == ""
    assert capture_xpath("//l:entry[1]", root, LEDGER) == {"amount": "10", "label": "fee"}


def test_xpath_default_namespace_needs_a_prefix(root: etree._Element) -> None:
    # XPath 1.0 has no default namespace: the unprefixed name matches nothing.
    assert capture_xpath("//balance", root) is None


def test_xpath_local_name_is_namespace_agnostic(root: etree._Element) -> None:
    assert capture_xpath("//*[local-name()='balance']", root) == "120.50"


def test_xpath_ignore_namespaces(root: etree._Element) -> None:
    assert capture_xpath("/Envelope/Body/GetBalanceResponse/balance", root, ignore_namespaces=True) == "120.50"
    assert capture_xpath("//account/@origin", root, ignore_namespaces=True) == "core"
    # The original tree keeps its namespaces.
    assert capture_xpath("//l:balance", root, LEDGER) == "120.50"
    assert capture_xpath("//balance", root) is None


def test_strip_namespaces_keeps_the_plain_attribute_on_a_clash() -> None:
    element = parse_xml(b'<a xmlns:x="urn:x" x:id="namespaced" id="plain"/>')
    assert strip_namespaces(element).items() == [("id", "plain")]


def test_xpath_syntax_error(root: etree._Element) -> None:
    with pytest.raises(CaptureError) as caught:
        capture_xpath("//l:balance[", root, LEDGER)
    assert caught.value.message.startswith("invalid XPath '//l:balance['")


def test_xpath_undeclared_prefix_lists_the_document_namespaces(root: etree._Element) -> None:
    with pytest.raises(CaptureError) as caught:
        capture_xpath("//b:balance", root)
    assert "XPath '//b:balance' cannot be evaluated" in caught.value.message
    assert "(default)=urn:bank:ledger" in caught.value.hint
    assert "soap=http://schemas.xmlsoap.org/soap/envelope/" in caught.value.hint
    assert "local-name()" in caught.value.hint


def test_xpath_empty_prefix_is_refused(root: etree._Element) -> None:
    with pytest.raises(CaptureError, match="cannot be used"):
        capture_xpath("//balance", root, {"": "urn:bank:ledger"})


# --- dispatcher and static checks -----------------------------------------------------------


def test_capture_dispatches_on_kind(root: etree._Element) -> None:
    assert capture("body.x", {"body": {"x": 1}}, kind="json") == 1
    assert capture("//l:balance", root, kind="xml", namespaces=LEDGER) == "120.50"
    assert capture("//balance", SOAP_RESPONSE, kind="xml", ignore_namespaces=True) == "120.50"


def test_capture_xml_needs_a_document() -> None:
    with pytest.raises(CaptureError, match="needs an XML document, got dict"):
        capture("//a", {"a": 1}, kind="xml")


def test_capture_xml_bytes_are_parsed_safely() -> None:
    with pytest.raises(UnsafeXmlError):
        capture("//a", b"<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>", kind="xml")


def test_check_capture() -> None:
    check_capture("body.items[0].id", kind="json")
    check_capture("//l:balance", kind="xml", namespaces=LEDGER)
    with pytest.raises(SchemaError) as caught:
        check_capture("body..x", kind="json", pointer="/steps/0/response/outputs/x")
    assert caught.value.pointer == "/steps/0/response/outputs/x"
    assert "unexpected '.'" in caught.value.message
    with pytest.raises(SchemaError, match="Undefined namespace prefix"):
        check_capture("//b:balance", kind="xml", pointer="/p")
    with pytest.raises(SchemaError, match="invalid XPath"):
        check_capture("//a[", kind="xml")


# --- XML as data --------------------------------------------------------------------------


def test_xml_to_data(root: etree._Element) -> None:
    body = root.find("soap:Body/l:GetBalanceResponse", LEDGER)
    assert body is not None
    assert xml_to_data(body) == {
        "GetBalanceResponse": {
            "account": {"@id": "7", "@origin": "core", "#text": "7"},
            "balance": {"@currency": "EUR", "#text": "120.50"},
            "entry": [{"amount": "10", "label": "fee"}, {"amount": "-2.5", "label": "refund"}],
            "memo": "",
            "closed": None,
        }
    }


def test_xml_to_data_leaf_and_mixed_content() -> None:
    assert xml_to_data(parse_xml(b"<a>text</a>")) == {"a": "text"}
    assert xml_to_data(parse_xml(b"<a>one <b>two</b> three<!-- c --></a>")) == {
        "a": {"b": "two", "#text": "one  three"}
    }
    assert xml_to_data(parse_xml(b"<a><b>1</b><b>2</b><b>3</b></a>")) == {"a": {"b": ["1", "2", "3"]}}


def test_a_miss_shows_the_partners_keys_escaped_on_one_line() -> None:
    from flowrun._eval._capture import describe_miss

    body = {"x\ny": 1, "b\x1b[31m": 2, "balance": 3}
    message = describe_miss("body.balanse", {"body": body}, ("body", "balanse"))

    assert "\n" not in message and "\x1b" not in message
    assert "x\\x0ay" in message and "b\\x1b[31m" in message
    assert "did you mean 'balance'?" in message
