"""``flowrun import postman|curl|openapi``: flows, step definitions and alias records from what
users already have. The work is done by ``flowrun.importers``, loaded only for this command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowrun._cli._output import Console

if TYPE_CHECKING:
    from flowrun.importers import ImportResult

__all__ = ["register", "run_import"]


def register(subparsers: Any, name: str, summary: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=summary + ". Every file is checked by flowrun's loaders before "
        "anything is written; secrets become environment variable references, listed at the end.",
        epilog="Exit codes: 0 imported, 2 the source cannot be imported or files exist (see --force).",
    )
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    postman = sources.add_parser("postman", help="a Postman collection (v2.0, v2.1)")
    postman.add_argument("collection", type=Path, metavar="COLLECTION.json")
    postman.add_argument("--environment", type=Path, metavar="ENV.json", help="a Postman environment export")
    curl = sources.add_parser("curl", help="a curl command line (quote it as one argument)")
    curl.add_argument("command", metavar="'curl ...'")
    curl.add_argument("--name", help="the name of the step and the flow (default: from the URL; the alias is "
                      "named after the host)")
    openapi = sources.add_parser("openapi", help="an OpenAPI 3 document (JSON, or YAML with flowrun[yaml])")
    openapi.add_argument("spec", type=Path, metavar="SPEC")
    for sub in (postman, curl, openapi):
        sub.add_argument("--out", type=Path, metavar="DIR",
                         help="write aliases/, steps/ and flows/ under DIR" + (
                             " (without it, the files are printed)" if sub is curl else ""),
                         required=sub is not curl)
        sub.add_argument("--dry-run", action="store_true", help="print what would be written, write nothing")
        sub.add_argument("--force", action="store_true", help="overwrite files that exist in DIR")
        sub.add_argument("--json", action="store_true", help="print the summary as JSON")
        sub.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace, console: Console) -> int:
    from flowrun import importers

    out: Path | None = args.out
    result: ImportResult
    if args.source == "postman":
        from flowrun.importers._postman import import_postman
        result = import_postman(args.collection, environment=args.environment, out=out)
    elif args.source == "curl":
        from flowrun.importers._curl import import_curl
        result = import_curl(args.command, name=args.name, out=out)
    else:
        from flowrun.importers._openapi import import_openapi
        result = import_openapi(args.spec, out=out)
    written: list[Path] = []
    dry = args.dry_run or out is None
    if out is None or args.dry_run:
        importers.check_result(result, out)
    else:
        written = importers.write_result(result, out, force=args.force)
    if args.json:
        console.print_json({**result.to_dict(), "written": [str(p) for p in written], "dry_run": dry})
        return 0
    for relative, data in sorted(result.files.items()):
        if dry:
            console.print(console.style(f"--- {relative} (not written)", "cyan"))
            console.stream.write(importers.render(data))
    for path in written:
        console.print(f"{console.style('wrote', 'green')}  {path}")
    if result.env_vars:
        console.print("set these environment variables (secrets are never copied into the files):")
        for name, why in sorted(result.env_vars.items()):
            console.print(f"  {name}  {why}")
    if result.not_translated:
        console.print(console.style(f"not translated ({len(result.not_translated)}), kept in the step and flow "
                                    "descriptions:", "yellow"))
        for item in result.not_translated:
            console.print(f"  {item.line()}")
    for note in result.notes:
        console.print(f"{console.style('note', 'blue')}: {note}")
    return 0
