"""Caches for key material and SSL contexts, keyed by content, so renewal needs no restart.

One keystore, one profile, many aliases: an SSLContext is built once per distinct (keystore
content, key choice, trust set, TLS settings). A file is re-hashed only when its stat changes;
a changed file (a renewed certificate) gives a new key, hence a new context on next resolution.
Passwords enter keys only as an HMAC under a per-process random key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import ssl
import threading
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import attrs

from flowrun._errors import KeystoreNotFoundError, TrustCertError
from flowrun._models._record import ValueRecord
from flowrun._tls._context import TlsSettings, build_ssl_context
from flowrun._tls._model import ClientIdentity

if TYPE_CHECKING:
    from cryptography import x509

T = TypeVar("T")
_PROCESS_KEY = secrets.token_bytes(32)


def secret_fingerprint(value: str | None) -> bytes:
    if value is None:
        return b""
    return hmac.new(_PROCESS_KEY, value.encode("utf-8"), hashlib.sha256).digest()


@attrs.frozen(eq=False, repr=False)
class FileContent(ValueRecord):
    path: Path
    data: bytes = attrs.field(repr=False)
    digest: str


class ContentCache:
    """Reads files, re-reading only when size, mtime or inode change."""

    def __init__(self) -> None:
        self._files: dict[Path, tuple[tuple[int, int, int], FileContent]] = {}
        self._lock = threading.Lock()

    def read(self, path: Path, *, error: type[KeystoreNotFoundError] | type[TrustCertError]) -> FileContent:
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise error(f"file not found: {path}", file=path) from None
        except OSError as exc:
            raise error(f"cannot read {path}: {exc.strerror or exc}", file=path) from None
        if path.is_dir():
            raise error(f"{path} is a directory, not a file", file=path)
        signature = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        with self._lock:
            cached = self._files.get(path)
            if cached is not None and cached[0] == signature:
                return cached[1]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise error(f"cannot read {path}: {exc.strerror or exc}", file=path) from None
        content = FileContent(path, data, hashlib.sha256(data).hexdigest())
        with self._lock:
            self._files[path] = (signature, content)
        return content


class BuildCache:
    """A thread-safe memo that counts builds (tests and benchmarks read ``builds``)."""

    def __init__(self) -> None:
        self._values: dict[Hashable, object] = {}
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}
        self.builds = 0

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                return self._values[key]  # type: ignore[return-value]
            key_lock = self._building.setdefault(key, threading.Lock())
        # One builder per key; other threads asking for the same key wait for it.
        with key_lock:
            with self._lock:
                if key in self._values:
                    return self._values[key]  # type: ignore[return-value]
            value = build()
            with self._lock:
                self._values[key] = value
                self.builds += 1
                self._building.pop(key, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self.builds = 0


@attrs.frozen(eq=False, repr=False)
class IdentityKey(ValueRecord):
    keystore_digest: str
    key_file_digest: str | None
    type: str | None
    key_alias: str | None
    password: bytes = attrs.field(repr=False)
    key_password: bytes = attrs.field(repr=False)
    chain_certs: tuple[str, ...] = ()


class TlsCache:
    """Process-wide caches shared by every registry."""

    def __init__(self) -> None:
        self.files = ContentCache()
        self.identities = BuildCache()
        self.contexts = BuildCache()

    def context(self, identity_key: IdentityKey | None, identity: Callable[[], ClientIdentity] | None,
                trust_digests: Sequence[str], trust: Callable[[], Sequence[x509.Certificate | bytes]],
                settings: TlsSettings) -> ssl.SSLContext:
        key = (identity_key, tuple(sorted(trust_digests)), settings)

        def build() -> ssl.SSLContext:
            return build_ssl_context(identity() if identity is not None else None, trust(), settings)

        return self.contexts.get(key, build)


TLS_CACHE = TlsCache()


def clear_caches() -> None:
    TLS_CACHE.identities.clear()
    TLS_CACHE.contexts.clear()
