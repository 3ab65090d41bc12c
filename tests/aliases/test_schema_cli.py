"""``flowrun schema NAME`` prints the JSON Schema the loaders validate with."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from flowrun._cli import main
from flowrun._load._schema import SCHEMA_NAMES, schema_text
from tests.aliases._setup import REPO


def test_aliases_schema_is_printed_as_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "aliases"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == json.loads(schema_text("aliases"))
    Draft202012Validator.check_schema(json.loads(out))


def test_printed_aliases_schema_accepts_the_shipped_alias_files(capsys: pytest.CaptureFixture[str]) -> None:
    main(["schema", "aliases"])
    validator = Draft202012Validator(json.loads(capsys.readouterr().out))
    for path in sorted((REPO / "aliases").glob("*.json")):
        assert list(validator.iter_errors(json.loads(path.read_text(encoding="utf-8")))) == [], path.name


@pytest.mark.parametrize("name", [n for n in SCHEMA_NAMES if n != "aliases"])
def test_other_schemas_print_or_say_they_are_missing(capsys: pytest.CaptureFixture[str], name: str) -> None:
    shipped = (REPO / "flowrun" / "_load" / "schemas" / f"{name}.schema.json").is_file()
    code = main(["schema", name])
    out, err = capsys.readouterr()
    if shipped:
        assert code == 0 and json.loads(out)["$schema"].startswith("https://json-schema.org/")
    else:
        assert code == 2 and out == ""
        assert f"the {name} schema is not shipped" in err


def test_unknown_schema_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "alias"]) == 2
    assert "invalid choice" in capsys.readouterr().err
