"""JSON bodies: the runner's shortcut for the common body gives what ``json.loads`` gives, and
refuses what it refuses."""

from __future__ import annotations

import codecs
import json

import pytest

from flowrun._errors import ResponseParseError
from flowrun._models._numbers import WrittenNumber
from flowrun._runner import json_body, parse_body

VALID = [
    b'{"account":"42","balance":1234.5}',
    b'[1, 2.50, {"a": null}]',
    b'  {"a": 1}',
    b'{"a": 1}\n',
    b'{"a": 1} \r\n\t ',
    b"\n[]",
    b"7",
    b'"text"',
    codecs.BOM_UTF8 + b'{"a": "\xc3\xa9"}',
    '{"a": "é"}'.encode("utf-16-le"),
    '{"a": "é"}'.encode("utf-16"),
    '[1]'.encode("utf-32-be"),
    b'{"a": "\\ud800"}',
]


@pytest.mark.parametrize("content", VALID, ids=range(len(VALID)))
def test_a_valid_body_reads_as_json_loads_reads_it(content: bytes) -> None:
    expected = json.loads(content, parse_float=WrittenNumber)
    assert json_body(content) == expected
    assert repr(json_body(content)) == repr(expected)  # numbers keep their text


INVALID = [b'{"a": 1} x', b'{"a": 1}\xc2\xa0', b"{", b'{"a": 1}{"b": 2}', b"[1,]", b"{\x00}", b"  "]


@pytest.mark.parametrize("content", INVALID, ids=range(len(INVALID)))
def test_an_invalid_body_is_refused_as_json_loads_refuses_it(content: bytes) -> None:
    with pytest.raises(ValueError) as expected:
        json.loads(content, parse_float=WrittenNumber)
    with pytest.raises(ResponseParseError) as refused:
        parse_body(content, "application/json")
    assert str(expected.value) in str(refused.value)
