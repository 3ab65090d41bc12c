"""WSDLs: where their documents may come from, parsed once per content, and which binding to call.

Where a document may come from (``LoadPolicy``): ``http(s)`` only from the origins the step
allows (the alias's, its ``trusted_origins``, and the WSDL URL's; which of them get the alias's credential and client
certificate is the origin rule's decision, ``flowrun._models._web_origin``, made by the
``Exchanger`` for each fetch), local files only for a WSDL the step names by its
local path, and then only from that WSDL's directory tree. ``file://`` is a local file like any
other; every other scheme is refused. Every document passes ``flowrun._eval.parse_xml`` (no
DOCTYPE) before zeep parses it, with a byte cap.

zeep's ``forbid_external`` stays off on purpose: it refuses every ``http(s)`` import, including a
WSDL's schema beside it on the same partner (``/ledger.xsd`` next to ``/ledger?wsdl``). The origin
rule is the narrower guard that still lets such imports through.

``WSDL_CACHE`` keys a parsed ``zeep.wsdl.Document`` by the SHA-256 of the WSDL's bytes, its
location (relative imports resolve against it), the load policy and strictness, so N calls
parse once. A local WSDL is read again when its size or modification time changes; a WSDL URL is
fetched again after ``WSDL_REFRESH_S``. Unchanged bytes reuse the parsed document.
"""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import attrs
import zeep.exceptions
import zeep.wsdl
import zeep.wsdl.bindings
from lxml import etree

from flowrun._errors import (
    DefinitionError,
    FlowrunError,
    ResponseParseError,
    ResponseTooLargeError,
    UnsafeXmlError,
    WsdlError,
)
from flowrun._eval import parse_xml
from flowrun._load._schema import did_you_mean
from flowrun._models._files import NotRegularFileError, open_regular
from flowrun._models._web_origin import web_origin
from flowrun._transport._soap import Exchanger, FlowrunTransport, zeep_settings
from flowrun._transport._soap_data import SoapVersion

Origin = tuple[str, str, int]

# A WSDL or schema is a definition, not a payload: 10 MiB is generous for the largest real ones.
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
WSDL_REFRESH_S = 300.0
_MAX_PARSED_WSDLS = 32
_DEFAULT_PORTS = {"https": 443, "http": 80}


def origin_of(url: str) -> Origin | None:
    return web_origin(url)


@attrs.frozen
class LoadPolicy:
    """Where a WSDL and the documents it imports may be read from."""

    origins: frozenset[Origin]
    # Local files are allowed under this directory only; None: no local file at all.
    local_root: Path | None = None

    def locate(self, location: str) -> str | Path:
        """The URL or the local path to read for ``location``; ``UnsafeXmlError`` when refused."""
        scheme = urllib.parse.urlsplit(location).scheme.lower()
        if scheme in _DEFAULT_PORTS:
            origin = origin_of(location)
            if origin is None or origin not in self.origins:
                allowed = ", ".join(sorted(f"{s}://{h}:{p}" for s, h, p in self.origins)) or "none"
                raise UnsafeXmlError(
                    f"{location} is not on the WSDL's or the alias's host and port; refused",
                    hint=f"documents are fetched only from {allowed}; host the schema next to the WSDL, "
                         "or keep a local copy of the WSDL and its schemas")
            return location
        if scheme == "file":
            path = Path(urllib.parse.unquote(urllib.parse.urlsplit(location).path))
        elif len(scheme) > 1:  # "c:" is a Windows drive, not a scheme
            raise UnsafeXmlError(f"{location}: only https, http and local files are read; refused")
        else:
            path = Path(location)
        if self.local_root is None:
            raise UnsafeXmlError(
                f"{location} is a local file, and local files are read only for a WSDL the step names "
                "by its local path; refused",
                hint="fetch the schemas over https from the WSDL's host, or keep the WSDL locally")
        resolved = path.resolve()
        if not resolved.is_relative_to(self.local_root):
            raise UnsafeXmlError(
                f"{location} is outside the WSDL's directory {self.local_root}; refused",
                hint="keep the schemas a local WSDL imports in its directory (or below it)")
        return resolved


@attrs.frozen
class WsdlSource:
    """A WSDL the step names: an http(s) URL, or an absolute local path (then local imports are allowed)."""

    location: str
    local: bool

    @property
    def local_root(self) -> Path | None:
        return Path(self.location).parent if self.local else None


def read_local_document(path: Path, *, source: str) -> bytes:
    try:
        with open_regular(path) as handle:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except NotRegularFileError as exc:
        raise WsdlError(f"{source} is {exc.kind}, not a file; refused") from None
    except OSError as exc:
        raise WsdlError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ResponseTooLargeError(f"{source} has more than the cap of {MAX_DOCUMENT_BYTES} bytes")
    return data


def check_document(data: bytes, *, source: str) -> None:
    """The check every WSDL and schema passes before zeep parses it (a DOCTYPE -> UnsafeXmlError)."""
    try:
        parse_xml(data, source=source)
    except ResponseParseError as error:
        raise WsdlError(error.message) from None


class LoaderTransport(FlowrunTransport):
    """Reads a WSDL and its imports under a ``LoadPolicy``. Sealed once the WSDL is parsed: a
    cached document keeps no live client and loads nothing afterwards."""

    def __init__(self, policy: LoadPolicy, fetch: Callable[[str], bytes], *, first: tuple[str, bytes]) -> None:
        super().__init__()
        self._policy = policy
        self._fetch: Callable[[str], bytes] | None = fetch
        self._first: tuple[str, bytes] | None = first

    def seal(self) -> None:
        self._fetch = None
        self._first = None

    def load(self, url: str) -> bytes:
        if self._first is not None and url == self._first[0]:
            return self._first[1]
        if self._fetch is None:
            return super().load(url)
        target = self._policy.locate(url)
        data = self._fetch(target) if isinstance(target, str) else read_local_document(target, source=url)
        check_document(data, source=url)
        return data


# --- parsed WSDLs ---------------------------------------------------------------------------


@attrs.frozen
class _Read:
    """The bytes of a WSDL and when (or from which file state) they were read."""

    content: bytes
    stamp: Any


@attrs.frozen
class CacheStats:
    parses: int
    hits: int
    fetches: int


class WsdlCache:
    """Parsed WSDLs by content: one ``zeep.wsdl.Document`` per (bytes, location, policy, strict).

    Documents are shared by every executor and thread of the process: zeep only reads them
    once parsed. Beyond ``max_documents`` the least recently used leaves first.
    """

    def __init__(self, *, max_documents: int = _MAX_PARSED_WSDLS, refresh_s: float = WSDL_REFRESH_S) -> None:
        self._documents: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._read: dict[tuple[str, Hashable], _Read] = {}
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._lock = threading.Lock()
        self._max = max_documents
        self.refresh_s = refresh_s
        self._parses = self._hits = self._fetches = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._parses, self._hits, self._fetches)

    def clear(self) -> None:
        """Forget every document and reset the counters."""
        with self._lock:
            self._documents.clear()
            self._read.clear()
            self._locks.clear()
            self._parses = self._hits = self._fetches = 0

    def document(self, source: WsdlSource, policy: LoadPolicy, exchanger: Exchanger, *, fetch_key: Hashable,
                 strict: bool = True) -> Any:
        """The parsed document for ``source``, parsing only bytes not seen before.

        ``fetch_key`` names who fetches a WSDL URL (the alias and environment): a partner may show
        different aliases different WSDLs.
        """
        content = self._content(source, exchanger, fetch_key)
        key = (hashlib.sha256(content).hexdigest(), source.location, policy, strict)
        with self._lock:
            document = self._hit(key)
            if document is not None:
                return document
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one parse per key, while other WSDLs go on
            with self._lock:
                document = self._hit(key)
                if document is not None:
                    return document
            check_document(content, source=source.location)
            document = _parse(source, content, policy, exchanger, strict)
            with self._lock:
                self._parses += 1
                self._documents[key] = document
                self._locks.pop(key, None)
                while len(self._documents) > self._max:
                    self._documents.popitem(last=False)
            return document

    def _hit(self, key: tuple[Any, ...]) -> Any:
        document = self._documents.get(key)
        if document is not None:
            self._documents.move_to_end(key)
            self._hits += 1
        return document

    def _content(self, source: WsdlSource, exchanger: Exchanger, fetch_key: Hashable) -> bytes:
        memo_key = (source.location, fetch_key if not source.local else None)
        with self._lock:
            known = self._read.get(memo_key)
        if source.local:
            path = Path(source.location)
            try:
                status = path.stat()
            except OSError:
                raise DefinitionError(f"the WSDL file {path} does not exist or cannot be read",
                                      hint="a relative wsdl path is resolved from the file that names the step"
                                      ) from None
            stamp: Any = (status.st_size, status.st_mtime_ns, status.st_ino)
            if known is not None and known.stamp == stamp:
                return known.content
            data = read_local_document(path, source=source.location)
        else:
            now = time.monotonic()
            if known is not None and now - known.stamp < self.refresh_s:
                return known.content
            data = exchanger.fetch_document(source.location, max_bytes=MAX_DOCUMENT_BYTES)
            stamp = now
            with self._lock:
                self._fetches += 1
        with self._lock:
            self._read[memo_key] = _Read(data, stamp)
        return data


WSDL_CACHE = WsdlCache()


def _parse(source: WsdlSource, content: bytes, policy: LoadPolicy, exchanger: Exchanger, strict: bool) -> Any:
    def fetch(url: str) -> bytes:
        return exchanger.fetch_document(url, max_bytes=MAX_DOCUMENT_BYTES)

    loader = LoaderTransport(policy, fetch, first=(source.location, content))
    try:
        return zeep.wsdl.Document(source.location, loader,  # type: ignore[arg-type]
                                  settings=zeep_settings(strict=strict))
    except FlowrunError:
        raise
    except (zeep.exceptions.DTDForbidden, zeep.exceptions.EntitiesForbidden) as exc:
        raise UnsafeXmlError(f"{source.location} (or a document it imports) declares a DTD or entities: "
                             f"{exc}; refused") from None
    except (zeep.exceptions.Error, NotImplementedError, KeyError, ValueError, etree.LxmlError) as exc:
        raise WsdlError(f"the WSDL {source.location} cannot be used: {type(exc).__name__}: {exc}") from None
    finally:
        loader.seal()


# --- choosing a binding ---------------------------------------------------------------------


@attrs.frozen
class ChosenBinding:
    binding: Any
    service: str | None
    port: str | None

    @property
    def version(self) -> SoapVersion:
        return "1.2" if isinstance(self.binding, zeep.wsdl.bindings.Soap12Binding) else "1.1"

    @property
    def qname(self) -> str:
        return str(self.binding.name)

    def operations(self) -> list[str]:
        return list(self.binding.all())


def choose_binding(document: Any, *, service: str | None, port: str | None, soap_version: SoapVersion,
                   wsdl: str) -> ChosenBinding:
    """The SOAP binding to call: the step's ``service``/``port`` when named; otherwise the only
    one, or the only one of the step's ``soap_version`` (a WSDL often has a 1.1 and a 1.2 port).
    A WSDL without ``wsdl:service`` offers its bindings: the address comes from the alias anyway."""
    services: Mapping[str, Any] = document.services
    if service is not None and service not in services:
        raise DefinitionError(f"the WSDL {wsdl} has no service '{service}'{did_you_mean(service, list(services))}",
                              hint=f"services: {', '.join(services) or 'none'}")
    candidates = [
        ChosenBinding(p.binding, name, p.name)
        for name, s in services.items() if service is None or name == service
        for p in s.ports.values()
    ]
    if port is not None:
        named = [c for c in candidates if c.port == port]
        if not named:
            ports = sorted({str(c.port) for c in candidates})
            raise DefinitionError(f"the WSDL {wsdl} has no port '{port}'{did_you_mean(port, ports)}",
                                  hint=f"ports: {', '.join(ports) or 'none'}")
        candidates = named
    elif not candidates and service is None:
        candidates = [ChosenBinding(b, None, None) for b in document.bindings.values()]
    soap = [c for c in candidates
            if isinstance(c.binding, zeep.wsdl.bindings.Soap11Binding | zeep.wsdl.bindings.Soap12Binding)]
    if not soap:
        raise WsdlError(f"the WSDL {wsdl} has no SOAP binding for the chosen service and port")
    if len({c.qname for c in soap}) > 1:
        soap = [c for c in soap if c.version == soap_version] or soap
    if len({c.qname for c in soap}) > 1:
        listing = ", ".join(f"{c.service}/{c.port}" for c in soap)
        raise DefinitionError(f"the WSDL {wsdl} offers several SOAP {soap_version} ports: {listing}",
                              hint="name one with the step's service and port")
    return soap[0]
