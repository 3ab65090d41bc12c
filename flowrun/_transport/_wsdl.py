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

import functools
import hashlib
import logging
import threading
import time
import urllib.parse
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import zeep.exceptions
import zeep.wsdl
import zeep.wsdl.bindings
import zeep.xsd
from lxml import etree

from flowrun._errors import (
    DefinitionError,
    FlowrunError,
    ResponseParseError,
    ResponseTooLargeError,
    SoapArgumentError,
    SoapPortError,
    SoapVersionError,
    UnsafeXmlError,
    WsdlError,
    WsdlNotFetchedError,
)
from flowrun._eval import parse_xml
from flowrun._load._schema import did_you_mean
from flowrun._models._files import NotRegularFileError, open_regular
from flowrun._models._record import ValueRecord
from flowrun._models._web_origin import web_origin
from flowrun._transport._soap import Exchanger, FlowrunTransport, zeep_settings
from flowrun._transport._soap_data import SoapVersion

Origin = tuple[str, str, int]
_LOG = logging.getLogger("flowrun.soap")

# A WSDL or schema is a definition, not a payload: 10 MiB is generous for the largest real ones.
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
WSDL_REFRESH_S = 300.0
_MAX_PARSED_WSDLS = 32
_DEFAULT_PORTS = {"https": 443, "http": 80}


def origin_of(url: str) -> Origin | None:
    return web_origin(url)


@attrs.frozen(eq=False, repr=False)
class LoadPolicy(ValueRecord):
    """Where a WSDL and the documents it imports may be read from."""

    origins: frozenset[Origin]
    # Local files are allowed under this directory only; None: no local file at all.
    local_root: Path | None = None
    # Offline checks (``flowrun validate``) read local files only: http(s) is never fetched.
    offline: bool = False

    def locate(self, location: str) -> str | Path:
        """The URL or the local path to read for ``location``; ``UnsafeXmlError`` when refused."""
        scheme = urllib.parse.urlsplit(location).scheme.lower()
        if scheme in _DEFAULT_PORTS:
            if self.offline:
                raise _not_fetched(location)
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


@attrs.frozen(eq=False, repr=False)
class WsdlSource(ValueRecord):
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


SOAP_ENCODING_NAMESPACE = "http://schemas.xmlsoap.org/soap/encoding/"


@functools.cache
def soap_encoding_schema() -> bytes:
    return resources.files("flowrun._transport").joinpath("schemas/soap-encoding.xsd").read_bytes()


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
        if url.rstrip("/") == SOAP_ENCODING_NAMESPACE.rstrip("/"):
            # zeep imports the SOAP encoding schema by its namespace URL for every rpc/encoded
            # WSDL: the copy shipped with flowrun answers, nothing is fetched.
            return soap_encoding_schema()
        if self._fetch is None:
            return super().load(url)
        target = self._policy.locate(url)
        data = self._fetch(target) if isinstance(target, str) else read_local_document(target, source=url)
        check_document(data, source=url)
        return data


# --- parsed WSDLs ---------------------------------------------------------------------------


@attrs.frozen(eq=False, repr=False)
class _Read(ValueRecord):
    """The bytes of a WSDL and when (or from which file state) they were read."""

    content: bytes
    stamp: Any
    # Hashed once when read: hashing a 1 MB WSDL on every call cost a millisecond a call.
    digest: str = attrs.field(init=False)

    @digest.default
    def _digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@attrs.frozen(eq=False, repr=False)
class CacheStats(ValueRecord):
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
        self._fetching: dict[tuple[str, Hashable], threading.Lock] = {}
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
            self._fetching.clear()
            self._parses = self._hits = self._fetches = 0

    def document(self, source: WsdlSource, policy: LoadPolicy, exchanger: Exchanger, *, fetch_key: Hashable,
                 strict: bool = True) -> Any:
        """The parsed document for ``source``, parsing only bytes not seen before.

        ``fetch_key`` names who fetches a WSDL URL (the alias and environment): a partner may show
        different aliases different WSDLs.
        """
        read = self._content(source, exchanger, fetch_key)
        content = read.content
        key = (read.digest, source.location, policy, strict)
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

    def _content(self, source: WsdlSource, exchanger: Exchanger, fetch_key: Hashable) -> _Read:
        memo_key = (source.location, fetch_key if not source.local else None)
        with self._lock:
            known = self._read.get(memo_key)
        if not source.local:
            if known is not None and time.monotonic() - known.stamp < self.refresh_s:
                return known
            return self._fetch(source, exchanger, memo_key)
        path = Path(source.location)
        try:
            status = path.stat()
        except OSError:
            raise DefinitionError(f"the WSDL file {path} does not exist or cannot be read",
                                  hint="a relative wsdl path is resolved from the file that names the step"
                                  ) from None
        stamp: Any = (status.st_size, status.st_mtime_ns, status.st_ino)
        if known is not None and known.stamp == stamp:
            return known
        data = read_local_document(path, source=source.location)
        read = _Read(data, stamp)
        with self._lock:
            self._read[memo_key] = read
        return read

    def _fetch(self, source: WsdlSource, exchanger: Exchanger, memo_key: tuple[str, Hashable]) -> _Read:
        """Fetch a WSDL URL, once for all the threads that want it now (a for_each's items):
        the others wait and take the same bytes, so an alias's rate limit is not spent on copies."""
        with self._lock:
            fetching = self._fetching.setdefault(memo_key, threading.Lock())
        with fetching:
            with self._lock:
                known = self._read.get(memo_key)
            now = time.monotonic()
            if known is not None and now - known.stamp < self.refresh_s:
                return known
            data = exchanger.fetch_document(source.location, max_bytes=MAX_DOCUMENT_BYTES)
            read = _Read(data, now)
            with self._lock:
                self._fetches += 1
                self._read[memo_key] = read
            return read


WSDL_CACHE = WsdlCache()


# What zeep raises for a WSDL it cannot read: its own errors, and plain Python ones from lookups of
# names the WSDL does not define (a soap:header naming an undefined message is an IndexError).
ZEEP_DEFINITION_ERRORS = (zeep.exceptions.Error, NotImplementedError, LookupError, ValueError, TypeError,
                          AttributeError, AssertionError, RecursionError, etree.LxmlError)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, IndexError | KeyError) and "definition" in str(exc).lower():
        return f"it names something it does not define: {str(exc).strip(chr(34) + chr(39))}"
    return f"{type(exc).__name__}: {exc}"


def _parse(source: WsdlSource, content: bytes, policy: LoadPolicy, exchanger: Exchanger, strict: bool) -> Any:
    def fetch(url: str) -> bytes:
        return exchanger.fetch_document(url, max_bytes=MAX_DOCUMENT_BYTES)

    loader = LoaderTransport(policy, fetch, first=(source.location, content))
    try:
        # zeep warns (UserWarning) about parts it cannot resolve and goes on: those become log
        # records naming the WSDL; a call of the operation concerned then fails with a WsdlError.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            document = zeep.wsdl.Document(source.location, loader,  # type: ignore[arg-type]
                                          settings=zeep_settings(strict=strict))
        for warning in caught:
            _LOG.warning("the WSDL %s: %s", source.location, warning.message)
        return document
    except FlowrunError:
        raise
    except (zeep.exceptions.DTDForbidden, zeep.exceptions.EntitiesForbidden) as exc:
        raise UnsafeXmlError(f"{source.location} (or a document it imports) declares a DTD or entities: "
                             f"{exc}; refused") from None
    except ZEEP_DEFINITION_ERRORS as exc:
        raise WsdlError(f"the WSDL {source.location} cannot be used: {_reason(exc)}") from None
    finally:
        loader.seal()


# --- choosing a binding ---------------------------------------------------------------------


@attrs.frozen(eq=False, repr=False)
class ChosenBinding(ValueRecord):
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


def choose_binding(document: Any, *, service: str | None, port: str | None, soap_version: SoapVersion | None,
                   wsdl: str) -> ChosenBinding:
    """The SOAP binding to call: the step's ``service``/``port`` when named; otherwise the only
    one, or the only one of the step's ``soap_version`` (a WSDL often has a 1.1 and a 1.2 port;
    without ``soap_version`` 1.1 is preferred). A ``soap_version`` the WSDL has no binding for is
    an error, never a silent fallback. A WSDL without ``wsdl:service`` offers its bindings, and
    those of the WSDLs it imports: the address comes from the alias anyway."""
    services: Mapping[str, Any] = document.services
    if service is not None and service not in services:
        raise SoapPortError(f"the WSDL {wsdl} has no service '{service}'{did_you_mean(service, list(services))}",
                            hint=f"services: {', '.join(services) or 'none'}", field="service")
    candidates = [
        ChosenBinding(p.binding, name, p.name)
        for name, s in services.items() if service is None or name == service
        for p in s.ports.values()
    ]
    if port is not None:
        named = [c for c in candidates if c.port == port]
        if not named:
            ports = sorted({str(c.port) for c in candidates})
            raise SoapPortError(f"the WSDL {wsdl} has no port '{port}'{did_you_mean(port, ports)}",
                                hint=f"ports: {', '.join(ports) or 'none'}", field="port")
        candidates = named
    elif not candidates and service is None:
        candidates = [ChosenBinding(b, None, None) for b in all_bindings(document)]
    soap = [c for c in candidates
            if isinstance(c.binding, zeep.wsdl.bindings.Soap11Binding | zeep.wsdl.bindings.Soap12Binding)]
    if not soap:
        raise WsdlError(f"the WSDL {wsdl} has no SOAP binding for the chosen service and port")
    if soap_version is not None:
        versioned = [c for c in soap if c.version == soap_version]
        if not versioned:
            offered = " and ".join(sorted({c.version for c in soap}))
            raise SoapVersionError(
                f"the step asks for SOAP {soap_version}, and the WSDL {wsdl} has SOAP {offered} bindings only",
                hint=f'remove "soap_version" from the step, or set it to {offered.split(" and ")[0]}')
        soap = versioned
    elif len({c.qname for c in soap}) > 1:
        soap = [c for c in soap if c.version == "1.1"] or soap
    if len({c.qname for c in soap}) > 1:
        listing = ", ".join(f"{c.service}/{c.port}" if c.service else c.qname for c in soap)
        raise SoapPortError(f"the WSDL {wsdl} offers several SOAP {soap[0].version} bindings: {listing}",
                            hint="name one with the step's service and port")
    return soap[0]


def all_bindings(document: Any) -> list[Any]:
    """The bindings of the WSDL and of every WSDL it imports (the layout of the WSDL spec and of
    Apache CXF puts the binding in an imported document)."""
    found: dict[str, Any] = {}
    for definition in [document, *getattr(document, "_definitions", {}).values()]:
        for name, binding in getattr(definition, "bindings", {}).items():
            found.setdefault(str(name), binding)
    return list(found.values())


# --- what validate reads: operations and their parameters ---------------------------------------


@attrs.frozen(eq=False, repr=False)
class Parameter(ValueRecord):
    """One input element (or attribute) of an operation. ``children`` is None when its content
    is not checked by name: a simple value, or a type open to any element (``xs:any``)."""

    name: str
    required: bool
    children: tuple[Parameter, ...] | None = None

    def child(self, name: str) -> Parameter | None:
        return next((c for c in self.children or () if c.name == name), None)


def operation_names(chosen: ChosenBinding) -> list[str]:
    return sorted(chosen.operations())


def operation_parameters(chosen: ChosenBinding, operation: str, *, wsdl: str) -> Parameter:
    """The input of ``operation`` as zeep maps ``args`` to it: the body's elements by name
    (document/literal wrapped: the wrapper's children; rpc: the message parts)."""
    try:
        message = chosen.binding.get(operation).input
        body = message.body if message is not None else None
        if body is None:
            return Parameter(operation, True, ())
        return Parameter(operation, True, _children(body.type, depth=0))
    except ZEEP_DEFINITION_ERRORS as exc:
        raise WsdlError(f"the input of operation {operation} in the WSDL {wsdl} cannot be read: "
                        f"{_reason(exc)}") from None


def operation_headers(chosen: ChosenBinding, operation: str, *, wsdl: str) -> Parameter:
    """The SOAP headers the WSDL declares for ``operation``'s input, by part name (none required:
    a partner may take them from elsewhere, and zeep checks what is sent)."""
    try:
        message = chosen.binding.get(operation).input
        header = message.header if message is not None else None
        # zeep names header parts by their wsdl:part name, not by the element they refer to.
        parts = getattr(header.type, "elements", []) if header is not None else []
        return Parameter(operation, False, tuple(Parameter(str(name), False, _children(element.type, depth=1))
                                                 for name, element in parts))
    except ZEEP_DEFINITION_ERRORS as exc:
        raise WsdlError(f"the SOAP headers of operation {operation} in the WSDL {wsdl} cannot be read: "
                        f"{_reason(exc)}") from None


_MAX_DEPTH = 12  # recursive schemas (a type containing itself) stop being checked here


def _children(xsd_type: Any, *, depth: int) -> tuple[Parameter, ...] | None:
    if depth > _MAX_DEPTH or not hasattr(xsd_type, "elements_nested"):
        return None
    found: list[Parameter] = []
    if not _collect(xsd_type.elements_nested, found, optional=False, depth=depth):
        return None
    found.extend(Parameter(str(name), bool(getattr(attribute, "required", False)))
                 for name, attribute in getattr(xsd_type, "attributes", ()) if name)
    return tuple(found)


def _collect(nested: Any, found: list[Parameter], *, optional: bool, depth: int) -> bool:
    """Elements of an indicator tree into ``found``; False when an ``xs:any`` opens it."""
    for _, item in nested:
        if isinstance(item, zeep.xsd.Any):
            return False
        if isinstance(item, zeep.xsd.Element):
            required = not optional and item.min_occurs >= 1 and not item.nillable
            found.append(Parameter(str(item.name), required, _children(item.type, depth=depth + 1)))
        elif isinstance(item, zeep.xsd.Choice):
            if not _collect(_indicator_items(item), found, optional=True, depth=depth):
                return False
        elif isinstance(item, zeep.xsd.Group | zeep.xsd.Sequence | zeep.xsd.All):
            inner_optional = optional or getattr(item, "min_occurs", 1) == 0
            if not _collect(_indicator_items(item), found, optional=inner_optional, depth=depth):
                return False
    return True


def _indicator_items(indicator: Any) -> list[tuple[str | None, Any]]:
    if isinstance(indicator, zeep.xsd.Group):
        return [(None, indicator.child)]
    return [(getattr(item, "name", None), item) for item in indicator]


def load_offline(source: WsdlSource) -> Any:
    """The parsed document of a local WSDL without any network: documents it imports over
    http(s) make ``WsdlNotFetchedError`` (``flowrun validate`` says it could not check them)."""
    policy = LoadPolicy(frozenset(), source.local_root, offline=True)
    return WSDL_CACHE.document(source, policy, _OFFLINE, fetch_key=None)


class _Offline:
    def fetch_document(self, url: str, *, max_bytes: int) -> bytes:
        raise _not_fetched(url)


_OFFLINE: Any = _Offline()


def _not_fetched(location: str) -> WsdlNotFetchedError:
    return WsdlNotFetchedError(f"{location} is a remote document: not fetched offline, checked when the step runs")


def argument_problems(args: Mapping[str, Any], parameter: Any, pointer: str, operation: str, step_id: str, *,
                       field: str = "args", noun: str = "input element") -> Iterator[FlowrunError]:
    """``args`` (or ``soap_headers``) against ``parameter``'s children, nested mappings too: an
    unknown name (with the closest known one) at its pointer, and the required ones missing.
    ``flowrun validate`` reports them all; a run raises the first when zeep refuses the args."""
    from flowrun._eval._template import suggest

    if parameter.children is None:
        return
    known = [child.name for child in parameter.children]
    top = pointer.endswith(f"/{field}")
    where = f"operation {operation}" if top else f"element '{parameter.name}' of {operation}"
    meant: set[str] = set()  # a misspelt name is reported once, not again as missing
    for name, value in args.items():
        child = parameter.child(name)
        if child is None:
            guess = suggest(name, known)
            if guess is not None:
                meant.add(guess)
            listed = "SOAP headers" if noun == "SOAP header" else "elements"
            suggestion = f" (did you mean '{guess}'?)" if guess else ""
            yield SoapArgumentError(f"{where} has no {noun} '{name}'{suggestion}",
                                    hint=f"its {listed}: {', '.join(known) if known else 'none'}",
                                    pointer=f"{pointer}/{_escape(name)}", step=step_id)
            continue
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            if isinstance(item, Mapping):
                inner = f"{pointer}/{_escape(name)}" + (f"/{index}" if isinstance(value, list) else "")
                yield from argument_problems(item, child, inner, operation, step_id, field=field,
                                             noun="element" if noun == "SOAP header" else noun)
    missing = [child.name for child in parameter.children
               if child.required and child.name not in args and child.name not in meant]
    if missing:
        yield SoapArgumentError(f"{where} needs {', '.join(repr(m) for m in missing)}, missing from the {field}",
                                hint=f"add {'it' if len(missing) == 1 else 'them'} to the step's {field}",
                                pointer=pointer, step=step_id)


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")
