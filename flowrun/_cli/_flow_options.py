"""Options shared by ``flowrun run`` and ``flowrun test``: inputs (``-i``, ``--inputs-file``,
``--data``), steps search path, ``--connect-to``, and the exit code of a set of results.

Inputs come from ``--inputs-file`` (a JSON object), then ``-i name=value`` (text, converted to the
declared type), then each ``--data`` row (CSV columns or JSON object keys; an empty CSV cell
counts as not given)."""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowrun._errors import DefinitionError, UsageError
from flowrun._models._flow_results import FlowResult

Address = tuple[str, int]
CONNECT_TO_ENV = "FLOWRUN_CONNECT_TO"


def add_input_options(parser: argparse.ArgumentParser, *, data_help: str) -> None:
    parser.add_argument("-i", "--input", dest="inputs", metavar="NAME=VALUE", action="append", default=[],
                        help="an input value, converted to the input's declared type (repeatable)")
    parser.add_argument("--inputs-file", metavar="FILE", type=Path,
                        help="a JSON object of input values (-i wins over it)")
    parser.add_argument("--data", metavar="FILE", type=Path, help=data_help)


def given_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """The inputs of ``--inputs-file`` and ``-i`` (``-i`` wins)."""
    base: dict[str, Any] = _inputs_file(args.inputs_file) if args.inputs_file is not None else {}
    base.update(parse_input_options(args.inputs))
    return base


def given_rows(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """The rows of ``--data`` (at least one), or None without it."""
    if args.data is None:
        return None
    rows = data_rows(args.data)
    if not rows:
        raise DefinitionError("the data file has no rows", file=args.data)
    return rows


def parse_input_options(values: list[str]) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-i {value!r}: expected NAME=VALUE", hint="e.g. -i account=7")
        inputs[name.strip()] = text
    return inputs


def _inputs_file(path: Path) -> dict[str, Any]:
    from flowrun._load._json import read_json_file

    document = read_json_file(path)
    if not isinstance(document.data, dict):
        raise DefinitionError("an inputs file holds one JSON object of input values", file=path, line=1)
    return dict(document.data)


def data_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``--data`` file: CSV with a header row, or a JSON array of objects."""
    if path.suffix.lower() == ".json":
        from flowrun._load._json import read_json_file

        document = read_json_file(path)
        data = document.data
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise DefinitionError("a JSON data file holds an array of objects (one per iteration)",
                                  file=path, line=1)
        return [dict(row) for row in data]
    import csv

    from flowrun._models._files import NotRegularFileError, open_regular

    try:
        with io.TextIOWrapper(open_regular(path), encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            rows: list[dict[str, Any]] = []
            for row in reader:
                if None in row:
                    raise DefinitionError(f"row {reader.line_num} has more cells than the header",
                                          file=path, line=reader.line_num)
                rows.append({key.strip(): value for key, value in row.items() if value not in (None, "")})
            if reader.fieldnames is None:
                raise DefinitionError("the CSV data file is empty (the first row names the inputs)", file=path)
            return rows
    except FileNotFoundError:
        raise DefinitionError("data file not found", file=path) from None
    except NotRegularFileError as error:
        raise DefinitionError(f"the data file is {error.kind}, not a file", file=path,
                              hint="name a regular CSV or JSON file: FIFOs, devices and sockets are never read"
                              ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DefinitionError(f"cannot read the CSV data file: {error}", file=path) from None


def add_steps_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--steps", metavar="DIR", type=Path, action="append", default=[],
        help="a directory of reusable step definitions, searched after the flow's directory and ./steps "
        "(repeatable)",
    )


def add_connect_to_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect-to", metavar="HOST:PORT:TO_HOST:TO_PORT", action="append", default=[],
        help="open connections for HOST:PORT at TO_HOST:TO_PORT instead (TLS still checks HOST), "
        "like curl --connect-to: reach a local or staging copy of a partner (repeatable; also read from "
        f"${CONNECT_TO_ENV})",
    )


def connect_to_mapping(values: Sequence[str]) -> dict[Address, Address]:
    """``--connect-to`` values, after those of ``$FLOWRUN_CONNECT_TO`` (separated by spaces or
    commas; ``flowrun demo --serve`` writes it into demo.env), which the command line overrides."""
    mapping: dict[Address, Address] = {}
    from_env = os.environ.get(CONNECT_TO_ENV, "").replace(",", " ").split()
    for value in [*from_env, *values]:
        parts = value.rsplit(":", 3)
        if len(parts) != 4 or not all(parts) or not parts[1].isdigit() or not parts[3].isdigit():
            raise UsageError(f"--connect-to {value!r}: expected HOST:PORT:TO_HOST:TO_PORT",
                             hint="e.g. --connect-to api.bank.example:8443:127.0.0.1:9443")
        mapping[(parts[0].lower(), int(parts[1]))] = (parts[2], int(parts[3]))
    return mapping


def exit_code(results: Sequence[FlowResult]) -> int:
    """0 when every flow passed; else the highest exit code among the failures' errors
    (1 a step or assertion failed, 2 a definition, keystore or data pill problem)."""
    code = 0
    for result in results:
        if result.ok:
            continue
        code = max(code, result.error.exit_code if result.error is not None else 1)
    return code
