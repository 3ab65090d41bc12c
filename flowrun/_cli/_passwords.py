"""Password options shared by commands: the value never appears on the command line.

A password comes from an environment variable (``--password-env VAR``), a file
(``--password-file FILE``, first line) or standard input (``--password-stdin``, one line).
There is deliberately no ``--password VALUE``: argv is visible to every user of the machine
(``ps``) and lands in shell history. Errors name the variable or the file, never the value.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import TextIO

from flowrun._errors import SecretUnavailableError, UsageError
from flowrun._models._secret import MAX_SECRET_FILE_BYTES

__all__ = ["add_key_password_options", "add_store_password_options", "key_password", "store_password",
           "variable_name"]


_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def variable_name(value: str) -> str:
    """argparse ``type`` of the ``-env`` options: `--password-env "$PASS"` passes the password
    itself, so a value that is not a variable name is refused without being printed."""
    if not _VARIABLE_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            "takes the NAME of an environment variable, and the value given is not a variable name "
            "(it is not shown: it may be the password itself); write e.g. --password-env BANK_KEYSTORE_PASSWORD, "
            "not --password-env \"$BANK_KEYSTORE_PASSWORD\"")
    return value


def add_store_password_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("store password (never on the command line)")
    exclusive = group.add_mutually_exclusive_group()
    exclusive.add_argument("--password-env", metavar="VAR", type=variable_name,
                           help="read the store password from environment variable VAR")
    exclusive.add_argument("--password-file", metavar="FILE", type=Path,
                           help="read the store password from the first line of FILE")
    exclusive.add_argument("--password-stdin", action="store_true",
                           help="read the store password from one line of standard input")


def add_key_password_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("key password (default: the store password, as keytool does)")
    exclusive = group.add_mutually_exclusive_group()
    exclusive.add_argument("--key-password-env", metavar="VAR", type=variable_name,
                           help="read the key password from environment variable VAR")
    exclusive.add_argument("--key-password-file", metavar="FILE", type=Path,
                           help="read the key password from the first line of FILE")


def store_password(args: argparse.Namespace, *, stdin: TextIO | None = None) -> str | None:
    """The store password the options name, or None when none was given."""
    if args.password_env:
        return _from_env(args.password_env, "--password-env")
    if args.password_file is not None:
        return _from_file(args.password_file, "--password-file")
    if args.password_stdin:
        return _from_stdin(stdin if stdin is not None else sys.stdin)
    return None


def key_password(args: argparse.Namespace) -> str | None:
    if args.key_password_env:
        return _from_env(args.key_password_env, "--key-password-env")
    if args.key_password_file is not None:
        return _from_file(args.key_password_file, "--key-password-file")
    return None


def _from_env(name: str, option: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise SecretUnavailableError(
            f"environment variable {name} (named by {option}) is not set",
            hint=f"export {name} before running flowrun, or pass the password in a file instead",
        )
    if value == "":
        # CI systems expand a missing secret to an empty string: refuse rather than try "".
        raise SecretUnavailableError(
            f"environment variable {name} (named by {option}) is empty",
            hint=f"set {name} to the password; a CI secret that is not defined expands to an empty value",
        )
    return value


def _from_file(path: Path, option: str) -> str:
    try:
        # A pipe is fine (--password-file <(pass show bank) keeps the password off disk); the read
        # is bounded, so a device such as /dev/zero ends in an error instead of filling memory.
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
        if len(data) > MAX_SECRET_FILE_BYTES:
            raise SecretUnavailableError(
                f"password file {path} (named by {option}) is larger than {MAX_SECRET_FILE_BYTES} bytes",
                hint="name the file that holds only the password")
        text = data.decode("utf-8")
    except FileNotFoundError:
        if "/" in str(path) and path.parent.is_dir():
            raise SecretUnavailableError(f"password file {path} (named by {option}) does not exist",
                                         hint="check the path") from None
        # Not a path into an existing folder: `--password-file "$PASS"` must not print the password.
        raise SecretUnavailableError(f"the password file named by {option} does not exist (its name is not "
                                     f"shown: it may be a password given in its place)",
                                     hint=f"check the path given to {option}") from None
    except IsADirectoryError:
        raise SecretUnavailableError(f"password file {path} (named by {option}) is a directory",
                                     hint="name the file that holds the password") from None
    except UnicodeDecodeError:
        raise SecretUnavailableError(f"password file {path} (named by {option}) is not UTF-8 text",
                                     hint="write the password as UTF-8 text on the first line") from None
    except OSError as error:
        raise SecretUnavailableError(
            f"password file {path} (named by {option}) cannot be read: {error.strerror}",
            hint="check the file's permissions",
        ) from None
    if not text:
        # A file holding just a line break stands for an empty password; an empty file is a mistake.
        raise SecretUnavailableError(f"password file {path} (named by {option}) is empty",
                                     hint="write the password on the first line of the file")
    return _first_line(text)


def _from_stdin(stream: TextIO) -> str:
    line = stream.readline()
    if not line:
        raise UsageError("--password-stdin: standard input is empty",
                         hint="pipe the password in, e.g. printf '%s\\n' \"$PASS\" | flowrun ...")
    return _first_line(line)


def _first_line(text: str) -> str:
    # Only the line break goes: spaces can be part of a password.
    return text.split("\n", 1)[0].removesuffix("\r")
