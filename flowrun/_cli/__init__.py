"""The ``flowrun`` command line: ``main(argv) -> exit code``.

Each sub-command lives in its own module and registers itself through ``register(subparsers)``;
this module only dispatches and turns flowrun errors into one-line messages and exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from flowrun._cli import _collector
from flowrun._errors import FlowrunError, UsageError
from flowrun._version import __version__

if TYPE_CHECKING:
    from flowrun._cli._output import Console

# Sub-command modules, imported lazily so that `flowrun run` does not pay for `keystore` or `demo`.
_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("flowrun._cli._run", "run a flow file (once, per data row, or N times) and report"),
    "validate": ("flowrun._cli._validate", "check flow files offline: schema, data pills, aliases, keystores"),
    "test": ("flowrun._cli._test", "run many flows (files or directories) with JUnit XML and JSON reports"),
    "keystore": ("flowrun._cli._keystore", "inspect Java keystores, PKCS12 and PEM files offline"),
    "alias": ("flowrun._cli._alias", "list, show and test Connection & Credential aliases"),
    "certs": ("flowrun._cli._certs", "check when the certificates of keystores and trust store certs expire"),
    "schema": ("flowrun._cli._schema", "print the JSON Schema of alias records, flows or steps"),
    "import": ("flowrun._cli._import", "write flows, steps and aliases from a Postman collection, curl or OpenAPI"),
    "demo": ("flowrun._cli._demo", "run the sample flows against an embedded partner that requires mutual TLS"),
    "worker": ("flowrun._cli._worker", "run flows and data rows sent through a broker (Celery, flowrun[celery])"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse echoes unrecognised arguments; one of them may be a password typed by mistake.
        if message.startswith("unrecognized arguments:"):
            words = message.split(":", 1)[1].split()
            shown = [w if w.startswith("-") else "..." for w in words]
            message = "unrecognized arguments: " + " ".join(shown)
        # Likewise a word where a command or a choice was expected: the choices say enough.
        message = re.sub(r"invalid choice: '.*?' \(choose from", "invalid choice (choose from", message, flags=re.S)
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flowrun",
        description="Run REST and SOAP integration steps through Connection & Credential aliases, "
        "with mutual TLS from JKS, JCEKS, PKCS12 and PEM keystores.",
        epilog="Exit codes: 0 success, 1 a step or assertion failed, 2 bad usage or definitions.",
    )
    parser.add_argument("--version", action="version", version=f"flowrun {__version__}")
    parser.add_argument("--no-color", action="store_true", help="never colour the output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    import importlib

    for name, (module_name, summary) in _COMMANDS.items():
        if command is not None and name != command:
            continue  # parsing one command's arguments needs its parser only (~1 ms for the others)
        module = importlib.import_module(module_name)
        module.register(subparsers, name, summary)
    return parser


def _first_command(argv: Sequence[str]) -> str | None:
    """The command named by ``argv``; None where the top-level parser must know all of them
    (``flowrun --help run`` lists every command)."""
    for arg in argv:
        if arg in _COMMANDS:
            return arg
        if not arg.startswith("-") or arg in ("-h", "--help"):
            return None
    return None


class _WarningPrinter(logging.Handler):
    """Prints flowrun's logged warnings (an unprotected key file) like errors: ``warning[code]: ...``."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        code = getattr(record, "code", "warning")
        self.console.print(f"{self.console.style(f'warning[{code}]', 'yellow', 'bold')}: {record.getMessage()}")


@contextlib.contextmanager
def _printing_warnings(console: Console) -> Iterator[None]:
    logger = logging.getLogger("flowrun")
    handler = _WarningPrinter(console)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    from flowrun._cli._output import Console
    from flowrun._models._redact import Secrets

    # One command, one set of secrets: everything its runs sent is masked on both streams and in reports.
    secrets = Secrets()
    console = Console.for_stream(sys.stdout, no_color="--no-color" in args_list, secrets=secrets)
    err_console = Console.for_stream(sys.stderr, no_color="--no-color" in args_list, secrets=secrets)
    with _printing_warnings(err_console):
        return _main(args_list, console, err_console)


def _main(args_list: list[str], console: Console, err_console: Console) -> int:
    try:
        parser = build_parser(_first_command(args_list))
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exit_:  # --help and --version
            return int(exit_.code or 0)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return 2
        if args.command != "run":  # run releases the collector after its first result
            _collector.release()
        return int(handler(args, console))
    except FlowrunError as error:
        err_console.print_error(error)
        return error.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:  # a defect: flowrun's own error line; the traceback only with -v
        from flowrun._runner import internal_error

        defect = internal_error(exc)
        err_console.print_error(defect)
        if "-v" in args_list or "--verbose" in args_list:
            err_console.print(defect.details.rstrip())
        return defect.exit_code


def console_main() -> None:
    from flowrun._cli._pipes import flush_quietly, quiet_broken_pipes

    _collector.hold()
    quiet_broken_pipes()
    try:
        code = main()
        flush_quietly()
    finally:
        _collector.exiting()
    sys.exit(code)
