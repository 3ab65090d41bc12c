"""Damaged sources never end in a traceback: each corpus file with one node replaced by another
JSON value either imports or fails with a flowrun error naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowrun._errors import FlowrunError
from flowrun.importers import check_result
from flowrun.importers._curl import import_curl
from flowrun.importers._openapi import import_openapi
from flowrun.importers._postman import import_postman
from tests.importers.conftest import CORPUS

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=8)
    | st.sampled_from(["{{x}}", "https://{{h}}/a", ":id", "#/components/x", "$ref", "raw", "formdata"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["key", "value", "mode", "raw", "url", "item", "request", "type", "in", "name", "$ref", "schema",
         "content", "parameters", "src", "disabled"]), inner, max_size=3),
    max_leaves=6)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_nodes(child, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_nodes(child, (*path, index)))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = new
    return copy


def _mutated(data: Any, choice: int, new: Any) -> Any:
    nodes = _nodes(data)
    return _replace(data, nodes[choice % len(nodes)], new)


SOURCES = [CORPUS / "postman" / "newman-inherited-entities.postman_collection.json",
           CORPUS / "postman" / "postman-collection-collection-v2.json",
           CORPUS / "openapi" / "oai-petstore-expanded.json", CORPUS / "openapi" / "oai-uspto.json"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=st.integers(0, 10_000), new=VALUES)
def test_damaged_sources_fail_cleanly(source: Path, tmp_path: Path, choice: int, new: Any) -> None:
    data = _mutated(json.loads(source.read_text(encoding="utf-8")), choice, new)
    damaged = tmp_path / source.name
    damaged.write_text(json.dumps(data), encoding="utf-8")
    importer = import_postman if source.parent.name == "postman" else import_openapi
    try:
        result = importer(damaged, out=tmp_path)
        check_result(result, tmp_path)
    except FlowrunError as error:
        assert error.file is not None or error.code == "import.invalid_output"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["-X", "POST", "-H", "A: b", "-d", "x=1", "-F", "f=@a.txt", "-u", "u:p", "-G",
                                 "--cert", "c.pem", "--key", "k.pem", "--cacert", "ca.pem", "--json", "{}", "-L",
                                 "-sSL", "-XPUT", "--data-urlencode", "a b", "https://h.example/p?q=1", "-m", "0",
                                 "'", "--cert-type", "P12", "-k", "--compressed", "@f"]), max_size=8))
def test_odd_curl_lines_fail_cleanly(words: list[str]) -> None:
    try:
        import_curl("curl " + " ".join(words), out=Path("/tmp/out"), cwd=Path("/tmp"))
    except FlowrunError as error:
        assert error.code.startswith("import.")
