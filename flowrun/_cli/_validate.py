"""``flowrun validate FLOW...``: every problem of the flows, offline, with file:line and pointer.

Checks, in order: JSON and schema; ``uses`` definitions found; data pills, conditions,
assertions and outputs; SOAP steps against their local WSDL (service/port, soap_version,
operation, args; a WSDL URL is not fetched: a note says so); aliases exist and resolve
(keystores opened with their passwords when the environment holds them, else a warning); alias
records with literal secrets (warnings); credentials a connection would send over plain http
(errors, every one of them).
Nothing is sent over the network. Exit 2 when any error is found, else 0 (warnings included).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowrun._cli._common import add_aliases_option, add_env_option, aliases_dir
from flowrun._cli._flow_files import flow_files
from flowrun._cli._flow_options import add_steps_option
from flowrun._cli._output import Console
from flowrun._errors import FlowrunError, UsageError
from flowrun._flow_checks import (
    Problem,
    alias_problems,
    check_alias_records,
    check_flow,
    check_literal_secrets,
    check_references,
)
from flowrun._models._flow import Flow
from flowrun._wording import counted

__all__ = ["register", "validate_command", "validate_paths"]


def register(subparsers: Any, name: str, summary: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary,
        description="Check flow files without running them: schema, step definitions, data pills "
        "(syntax, inputs, earlier steps, declared env variables), assertions, SOAP steps against their local "
        "WSDL (service/port, soap_version, operation, args; WSDL URLs are not fetched), and the aliases they use "
        "(resolvable offline; keystores are opened when their passwords are in the environment). "
        "Every problem is reported with file:line, JSON pointer and a hint.",
        epilog="Exit codes: 0 no errors (warnings may be shown), 2 at least one error.",
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="FLOW",
                        help="flow files, or directories searched for flow files; none with --aliases DIR: "
                        "check the alias records alone (every alias resolved, every keystore opened)")
    add_aliases_option(parser)
    add_steps_option(parser)
    add_env_option(parser)
    parser.add_argument("--json", action="store_true", help="print the problems as JSON")
    parser.set_defaults(handler=validate_command)


def validate_paths(paths: list[Path], *, aliases: Path | None, steps_dirs: list[Path],
                   env: str | None = None, blocked: dict[Path, list[str]] | None = None,
                   ) -> tuple[list[Path], list[Problem]]:
    """The flow files found and every problem, errors and warnings, sorted by file and line.
    ``blocked`` receives, per flow file, the aliases it uses that have errors."""
    from flowrun._load._flows import FlowLoader

    if not paths:
        if aliases is None:
            raise UsageError("nothing to validate: give flow files or directories, or --aliases DIR alone "
                             "to check the alias records", hint="flowrun validate --aliases aliases")
        problems: list[Problem] = []
        registry = _registry(aliases, problems)
        if registry is not None:
            problems.extend(check_alias_records(registry, env))
            problems.extend(check_literal_secrets(registry))
        return [], _sorted(problems)
    files = flow_files(paths)
    loader = FlowLoader(steps_dirs=steps_dirs, collect=True)
    flows: list[Flow] = []
    problems = []
    flow_file: dict[int, Path] = {}
    for file in files:
        flow = loader.load(file)
        if flow is not None:
            flows.append(flow)
            flow_file[id(flow)] = file
            problems.extend(check_flow(flow, refused=loader.refused_steps.get(file.resolve(), ())))
    problems.extend(Problem("error", error) for error in loader.problems)
    if aliases is not None or any(flow.alias_names for flow in flows):
        registry = _registry(aliases if aliases is not None else _default_aliases(), problems)
        if registry is not None:
            problems.extend(check_references(flows, registry, env))
            problems.extend(check_literal_secrets(registry))
        if blocked is not None:
            for flow in flows:
                broken = _broken_aliases(flow, registry, env)
                if broken:
                    blocked[flow_file[id(flow)]] = broken
    return files, _sorted(problems)


def _broken_aliases(flow: Flow, registry: Any, env: str | None) -> list[str]:
    """The aliases a flow uses that do not resolve (all of them when the records do not load)."""
    if registry is None:
        return sorted(flow.alias_names)
    return [name for name in sorted(flow.alias_names)
            if any(problem.is_error for problem in alias_problems(registry, name, env))]


def _default_aliases() -> Path:
    return aliases_dir(argparse.Namespace(aliases=None))


def _registry(directory: Path, problems: list[Problem]) -> Any:
    """The registry of ``directory``, with the problems of each alias file collected (every
    schema error of a file, not only the first)."""
    from flowrun._load._aliases import alias_files, load_alias_records, records_from_document, schema_problems
    from flowrun._load._json import read_json_file
    from flowrun._registry import Registry

    try:
        files = alias_files(directory)
    except FlowrunError as error:
        problems.append(Problem("error", error))
        return None
    readable: list[Path] = []
    for file in files:
        try:
            document = read_json_file(file)
            errors: list[FlowrunError] = list(schema_problems(document))
            if not errors:
                records_from_document(document, problems=errors)
            if errors:
                problems.extend(Problem("error", error) for error in errors)
                continue
        except FlowrunError as error:
            problems.append(Problem("error", error))
        else:
            readable.append(file)
    try:
        registry = Registry(load_alias_records(readable), check_origins=False)
        problems.extend(Problem("error", error) for error in registry.origin_problems())
        return registry
    except FlowrunError as error:
        problems.append(Problem("error", error))
        return None


def _sorted(problems: list[Problem]) -> list[Problem]:
    unique: dict[str, Problem] = {}
    for problem in problems:
        unique.setdefault(f"{problem.severity}|{problem.error}", problem)
    return sorted(unique.values(), key=lambda p: (p.error.file or "", p.error.line or 0, p.error.pointer or ""))


class _NoteCollector(logging.Handler):
    """Notes the key material logs at INFO (a password-encrypted store readable by others): runs
    keep quiet about them, ``validate`` shows them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.notes: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.INFO and hasattr(record, "code"):
            self.notes.append((str(record.code), record.getMessage()))


@contextlib.contextmanager
def _collecting_notes() -> Iterator[_NoteCollector]:
    logger = logging.getLogger("flowrun")
    collector = _NoteCollector()
    previous = logger.level
    logger.addHandler(collector)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield collector
    finally:
        logger.removeHandler(collector)
        logger.setLevel(previous)


def validate_command(args: argparse.Namespace, console: Console) -> int:
    blocked: dict[Path, list[str]] = {}
    with _collecting_notes() as collected:
        files, problems = validate_paths(list(args.paths), aliases=args.aliases, steps_dirs=list(args.steps),
                                         env=args.env, blocked=blocked)
    errors = [p for p in problems if p.is_error]
    warnings = [p for p in problems if not p.is_error]
    if args.json:
        console.print_json({
            "status": "failed" if errors else "passed",
            "files": [str(f) for f in files],
            "problems": [{"severity": p.severity, **p.error.to_dict()} for p in problems],
            "notes": [{"code": code, "message": message} for code, message in collected.notes],
        })
        return 2 if errors else 0
    for problem in problems:
        _print_problem(console, problem)
    for code, message in collected.notes:
        console.print(f"{console.style(f'note[{code}]', 'blue')}: {message}")
    failing = {p.error.file for p in errors}
    for file in files:
        if str(file) in failing or str(file.resolve()) in failing:
            continue
        if file in blocked:
            # The flow itself is fine, but it cannot run: an alias it uses has an error above.
            names = ", ".join(f"'{name}'" for name in blocked[file])
            which = f"alias {names} has" if len(blocked[file]) == 1 else f"aliases {names} have"
            console.print(f"{console.style('fail', 'red')} {file}: {which} errors (above)")
        else:
            console.print(f"{console.style('ok', 'green')}  {file}")
    checked = (counted(len(files), "flow file") if files
               else f"alias records in {args.aliases}")
    summary = f"{checked} checked: {counted(len(errors), 'error')}, {counted(len(warnings), 'warning')}"
    console.print(console.style(summary, "red" if errors else "green", "bold"))
    return 2 if errors else 0


def _print_problem(console: Console, problem: Problem) -> None:
    error = problem.error
    if problem.is_error:
        console.print_error(error)
        return
    label = console.style(f"warning[{error.code}]", "yellow", "bold")
    console.print(f"{label}: {error}")
    if error.hint:
        console.print(f"  {console.style('hint', 'cyan')}: {error.hint}")
