"""`flowrun run` reads only the alias records its flow needs; lines are found around those records only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowrun._load._aliases import load_alias_records
from flowrun._load._json import parse_json

RECORDS = [
    {"kind": "keystore", "name": "ks", "type": "pem", "file": "client.pem"},
    {"kind": "trust_store_cert", "name": "root", "format": "pem", "file": "root.pem"},
    {"kind": "protocol_profile", "name": "mtls", "port": 443, "keystore": "ks", "trust_store_certs": ["root"]},
    {"kind": "credential", "name": "none", "type": "none"},
    {"kind": "alias", "name": "partner",
     "connection": {"url": "https://partner.example", "protocol_profile": "mtls", "credential": "none",
                    "mutual_authentication": True}},
]


def _unused(i: int) -> dict[str, object]:
    return {"kind": "alias", "name": f"unused_{i}", "connection": {"url": f"https://u{i}.example/x"}}


@pytest.mark.parametrize("indent", [None, 1, 4])
def test_lines_around_an_item_equal_the_whole_scan(indent: int | None) -> None:
    text = json.dumps([*RECORDS, *(_unused(i) for i in range(5)), [1, {"a": [2, "]}"]}]], indent=indent)
    whole = parse_json(text).lines
    for pointer in whole:
        assert parse_json(text).line(pointer) == whole[pointer], pointer
    assert parse_json(text).line("/4/connection/nothing") == whole["/4/connection"]


def test_items_are_found_past_blanks_commas_and_brackets_in_strings() -> None:
    # Line breaks of every kind, a comma on its own line, strings holding brackets, quotes and commas.
    text = ('\r\n[\r\n\t{"kind": "credential", "name": "a]}", "type": "none"}\r\n,\r\n'
            '  [ "[", {"x": "\\"]"} ] ,{"kind": "alias", "name": "b,{", "connection": {"url": "https://b"}}\n]\n')
    whole = parse_json(text).lines
    for pointer in whole:
        assert parse_json(text).line(pointer) == whole[pointer], pointer
    assert parse_json(text).line("/2/connection/url") == 5


def test_a_run_builds_only_the_records_its_aliases_lead_to(tmp_path: Path) -> None:
    broken = {"kind": "alias", "name": "broken", "connection": {"url": 42}}  # a schema error, unused
    (tmp_path / "a.json").write_text(json.dumps([*RECORDS, broken, *(_unused(i) for i in range(50))], indent=1))
    needed = load_alias_records([tmp_path / "a.json"], aliases={"partner"})
    assert set(needed.aliases) == {"partner"}
    assert set(needed.protocol_profiles) == {"mtls"} and set(needed.keystores) == {"ks"}
    assert set(needed.trust_store_certs) == {"root"} and set(needed.credentials) == {"none"}
    # The record's own line, as a whole read gives it.
    assert needed.aliases["partner"].origin.line == parse_json((tmp_path / "a.json").read_text()).lines["/4"]
    from flowrun._errors import SchemaError

    with pytest.raises(SchemaError):  # validate and `alias list` still read everything
        load_alias_records([tmp_path / "a.json"])


def test_what_the_index_cannot_answer_reads_everything(tmp_path: Path) -> None:
    from flowrun._errors import DuplicateNameError, FlowrunError

    path = tmp_path / "a.json"
    path.write_text(json.dumps([*RECORDS, RECORDS[-1]], indent=1))
    with pytest.raises(DuplicateNameError):
        load_alias_records([path], aliases={"partner"})
    path.write_text(json.dumps(RECORDS, indent=1))
    with pytest.raises(FlowrunError, match="nope"):  # unknown names get the full read's error later
        from flowrun._registry import Registry

        Registry.load(path, aliases={"nope"}).resolve("nope")
