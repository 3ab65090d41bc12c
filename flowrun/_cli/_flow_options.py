"""Options shared by ``flowrun run`` and ``flowrun test``: steps search path, ``--connect-to``,
and the exit code of a set of results."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from flowrun._errors import UsageError
from flowrun._models._flow_results import FlowResult

Address = tuple[str, int]


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
        "like curl --connect-to: reach a local or staging copy of a partner (repeatable)",
    )


def connect_to_mapping(values: Sequence[str]) -> dict[Address, Address]:
    mapping: dict[Address, Address] = {}
    for value in values:
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
