"""Secret references: ``{"env": "NAME"}``, ``{"file": "path"}``, ``{"source": "vault", "name": "bank/api_key"}``
(a ``SecretSource`` the embedding service gives the registry) or (discouraged) a literal.

A ``SecretRef`` never shows its value: not in ``repr``, not in errors. ``reveal()`` reads it at
the moment it is needed, so that a rotated secret file is picked up without a restart. A registry
binds each reference of its records to its own ``reveal_secret``, so that every secret a run uses
is resolved in one place (the registry's secret sources).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs

from flowrun._errors import SecretFormatError, SecretUnavailableError
from flowrun._models._files import NotRegularFileError, open_regular
from flowrun._models._origin import NOWHERE, Origin
from flowrun._models._record import ValueRecord

MAX_SECRET_FILE_BYTES = 64 * 1024


@runtime_checkable
class SecretSource(Protocol):
    """Where a service keeps its secrets (Vault, a cloud secret manager, a dict in tests).

    ``get_secret(name)`` returns the secret's value, or None when the source has no such secret.
    The registry asks at the moment the secret is needed (a keystore opened, a request signed),
    never caches the value itself, and never shows it."""

    def get_secret(self, name: str) -> str | None: ...


@attrs.frozen(eq=False, repr=False)
class SecretRef(ValueRecord):
    env: str | None = None
    file: Path | None = None
    literal: str | None = attrs.field(default=None, repr=lambda _: "'***'")
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)
    # {"source": "vault", "name": "bank/api_key"}: a secret a SecretSource given to the registry holds.
    source: str | None = None
    name: str | None = None
    # Set by the registry that holds the record: every reveal() goes through it.
    resolver: Callable[[SecretRef], str] | None = attrs.field(default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        given = [x for x in (self.env, self.file, self.literal, self.name) if x is not None]
        if len(given) != 1:
            raise ValueError("a secret is exactly one of env, file, a source's name or a literal value")
        if (self.source is None) != (self.name is None):
            raise ValueError("a secret from a secret source names both the source and the secret's name")

    @classmethod
    def from_env(cls, name: str) -> SecretRef:
        return cls(env=name)

    @classmethod
    def from_value(cls, value: str) -> SecretRef:
        return cls(literal=value)

    @classmethod
    def from_source(cls, source: str, name: str) -> SecretRef:
        """A secret the registry's ``SecretSource`` for ``source`` holds under ``name``."""
        return cls(source=source, name=name)

    @property
    def is_literal(self) -> bool:
        return self.literal is not None

    def describe(self) -> str:
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.file is not None:
            return f"file {self.file}"
        if self.name is not None:
            return f"secret '{self.name}' of source '{self.source}'"
        return "a literal value"

    def reveal_line(self, environ: Mapping[str, str] | None = None) -> str:
        """The value, refused when it holds a line break: it would end the header it goes into,
        and httpx's "Illegal header value" would blame the partner."""
        value = self.reveal(environ)
        if "\n" in value or "\r" in value:
            index = min(i for i in (value.find("\n"), value.find("\r")) if i >= 0)
            where = ("at its end" if not value[index:].strip("\r\n")
                     else f"at character {index + 1}" if index else "at its start")
            raise SecretFormatError(f"the secret from {self.describe()} contains a line break (CR or LF) {where}",
                                    hint="strip it: remove the line break where the secret is stored "
                                         "(a file written with echo, a CRLF .env file, a Kubernetes secret made "
                                         "from a file)", **self.origin.location())
        return value

    def reveal(self, environ: Mapping[str, str] | None = None) -> str:
        """The value, through the registry that holds this reference when there is one."""
        if self.resolver is not None and environ is None:
            return self.resolver(self)
        return self.read(environ)

    def read(self, environ: Mapping[str, str] | None = None, source: SecretSource | None = None) -> str:
        """The value from where the reference points: the environment, a file, ``source``, or the literal."""
        if self.name is not None:
            return self._from_source(source)
        if self.literal is not None:
            return self.literal
        if self.env is not None:
            value = (os.environ if environ is None else environ).get(self.env)
            if value is None:
                raise SecretUnavailableError(
                    f"environment variable {self.env} is not set",
                    hint=f"export {self.env}=... before running, or point the secret at a file",
                    **self.origin.location(),
                )
            return value
        assert self.file is not None
        try:
            # Opening a FIFO would block, reading /dev/zero never ends: regular files only.
            try:
                handle = open_regular(self.file)
            except NotRegularFileError as exc:
                raise SecretUnavailableError(
                    f"secret file {self.file} is not a regular file: {exc.strerror}",
                    hint="point the secret at a file that holds it", **self.origin.location()) from None
            with handle:
                data = handle.read(MAX_SECRET_FILE_BYTES + 1)
            if len(data) > MAX_SECRET_FILE_BYTES:
                raise SecretUnavailableError(
                    f"secret file {self.file} is larger than {MAX_SECRET_FILE_BYTES} bytes: not a secret",
                    hint="point the secret at the file that holds only the secret", **self.origin.location())
            # Secret files usually end with a newline that is not part of the secret.
            return data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SecretUnavailableError(
                f"secret file {self.file} is not UTF-8 text", **self.origin.location()
            ) from None
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SecretUnavailableError(
                f"cannot read secret file {self.file}: {reason}",
                hint="check the path (relative to the file that names it) and its permissions",
                **self.origin.location(),
            ) from None

    def _from_source(self, source: SecretSource | None) -> str:
        if source is None:
            raise SecretUnavailableError(
                f"{self.describe()}: no secret source named '{self.source}' was given to the registry",
                hint=f"pass it in Python: Registry.load(dir, secrets={{'{self.source}': MySource()}}); "
                "the command line reads only {\"env\": ...} and {\"file\": ...} secrets",
                **self.origin.location())
        assert self.name is not None
        try:
            value = source.get_secret(self.name)
        except Exception as error:  # the service's own client: its failure is a secret not available
            raise SecretUnavailableError(
                f"{self.describe()}: the secret source failed ({type(error).__name__})",
                hint="check the secret source's connection and permissions", **self.origin.location(),
            ) from None
        if value is None:
            raise SecretUnavailableError(
                f"{self.describe()} does not exist",
                hint=f"store the secret under '{self.name}' in source '{self.source}', or fix the name",
                **self.origin.location())
        if not isinstance(value, str):
            raise SecretUnavailableError(f"{self.describe()}: the secret source returned "
                                         f"{type(value).__name__}, not text", **self.origin.location())
        return value
