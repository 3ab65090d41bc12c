"""``flowrun schema aliases|flow|step``: print a JSON Schema shipped in the package.

Editors use these for completion and checking (``"$schema"`` or a settings entry); the loaders
validate with the same files, so what is printed is exactly what flowrun accepts.
"""

from __future__ import annotations

import argparse
from typing import Any

from flowrun._cli._output import Console
from flowrun._errors import FlowrunError
from flowrun._load._schema import SCHEMA_NAMES, schema_text

__all__ = ["register", "run_schema"]


def register(subparsers: Any, name: str, summary: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=summary + ". Redirect to a file for your editor: "
        "flowrun schema aliases > aliases.schema.json",
    )
    parser.add_argument("schema", choices=SCHEMA_NAMES, metavar="{" + ",".join(SCHEMA_NAMES) + "}",
                        help="aliases: the records of an alias directory; flow: a flow file; step: a step file")
    parser.set_defaults(handler=run_schema)


def run_schema(args: argparse.Namespace, console: Console) -> int:
    name: str = args.schema
    try:
        text = schema_text(name)
    except (FileNotFoundError, OSError):
        raise FlowrunError(
            f"the {name} schema is not shipped with this installation of flowrun",
            hint="the schema files are package data under flowrun/_load/schemas/: reinstall flowrun",
        ) from None
    console.stream.write(text if text.endswith("\n") else text + "\n")
    return 0
