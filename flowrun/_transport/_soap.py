"""zeep over flowrun's own httpx client: SOAP calls through the alias's pooled client.

zeep's stock ``Transport`` sends through a ``requests`` session, which reads ``REQUESTS_CA_BUNDLE``
and proxies from the environment and never sees the alias's SSL context. The transports here
subclass zeep's and route what zeep calls (``load``, ``post_xml``, ``post``, ``get``) through the
alias's pooled ``httpx.Client`` (``Exchanger``): one pool, one SSL context, one credential, one
retry policy for REST and SOAP alike. No ``requests`` session is ever created.

Every reply is read under the step's byte cap (decoded bytes, see ``_decode``) and within the
attempt's total deadline (``_streams``), and passes ``flowrun._eval.parse_xml`` (no DOCTYPE:
no DTD, entity, billion laughs or external DTD) before zeep sees it; zeep's own ``forbid_dtd``
and ``forbid_entities`` stay on behind that. WSDL loading is in ``flowrun._transport._wsdl``,
faults and plain data in ``flowrun._transport._soap_data``.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import zeep
import zeep.exceptions
import zeep.transports
import zeep.wsse.username
from lxml import etree

from flowrun._errors import (
    DefinitionError,
    FlowrunError,
    ResponseParseError,
    ResponseTooLargeError,
    SoapArgumentError,
    SoapOperationError,
    SoapReplyError,
    StepFailure,
    UnexpectedStatusError,
    UnsafeXmlError,
    WsdlError,
)
from flowrun._eval import parse_xml
from flowrun._load._schema import did_you_mean
from flowrun._models._aliases import Credential, RetryPolicy
from flowrun._models._record import ValueRecord
from flowrun._models._results import Attempt, TlsInfo
from flowrun._models._web_origin import web_origin
from flowrun._transport._decode import decoded
from flowrun._transport._errors import classify, failed_before_sending, refusal_page
from flowrun._transport._http import TlsInfoReader
from flowrun._transport._retry import Outcome, run_with_retry
from flowrun._transport._soap_data import (
    ENVELOPE_VERSIONS,
    NO_ATTACHMENTS,
    SOAP11_ENVELOPE,
    SOAP12_ENVELOPE,
    ArgValueError,
    Attachments,
    ReplyData,
    ReplySchema,
    ReplyValueError,
    SoapVersion,
    fault_from_element,
    find_fault,
    operation_schema,
    prepare_args,
    reply_data,
)
from flowrun._transport._streams import begin_attempt, end_attempt

if TYPE_CHECKING:
    from flowrun._registry import ResolvedConnection
    from flowrun._transport._wsdl import ChosenBinding

SOAP11_CONTENT_TYPE = "text/xml; charset=utf-8"
SOAP12_CONTENT_TYPE = "application/soap+xml; charset=utf-8"
_EXCERPT_CHARS = 500
_DEFAULT_WAIT_S = 30.0


def zeep_settings(*, strict: bool = True) -> zeep.Settings:
    """The only zeep settings flowrun uses. ``forbid_external`` stays off: see ``flowrun._transport._wsdl``."""
    return _SETTINGS[strict]


_SETTINGS = {
    strict: zeep.Settings(strict=strict, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True,
                          forbid_external=False)
    for strict in (True, False)
}


# --- HTTP through the alias's client ------------------------------------------------------------


@attrs.frozen(eq=False, repr=False)
class Reply(ValueRecord):
    """A complete HTTP reply, read under the byte cap. zeep reads ``status_code``, ``content``,
    ``headers`` and ``encoding``, which this offers without a second decoding of the body."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    url: str
    tls: TlsInfo | None = None

    @property
    def encoding(self) -> str:
        for parameter in self.content_type.split(";")[1:]:
            name, _, value = parameter.strip().partition("=")
            if name.lower() == "charset" and value.strip('"'):
                return value.strip('"')
        return "utf-8"

    @property
    def content_type(self) -> str:
        return str(self.headers.get("Content-Type", ""))

    def header_pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple(self.headers.multi_items())


class Exchanger:
    """Sends one step's requests through the alias's client with its credential, timeouts, byte
    cap and retry policy. ``attempts`` holds every attempt of the SOAP calls (and of a WSDL fetch
    that failed); ``last_reply`` and ``last_request`` what the step's result shows."""

    def __init__(self, client: httpx.Client, *, resolved: ResolvedConnection, auth: httpx.Auth | None,
                 timeout: httpx.Timeout, max_bytes: int, retry_policy: RetryPolicy,
                 tls_reader: TlsInfoReader | None = None,
                 anonymous: Callable[[], httpx.Client] | None = None) -> None:
        self._client = client
        # For documents on origins the origin rule does not trust: no certificate, no credential.
        self._anonymous = anonymous
        self._resolved = resolved
        self._auth = auth
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._retry_policy = retry_policy
        self._tls_reader = tls_reader
        self.attempts: list[Attempt] = []
        self.last_reply: Reply | None = None
        self.last_request: tuple[str, str, tuple[tuple[str, str], ...], bytes | None] | None = None

    def call(self, method: str, url: str, *, content: bytes | None = None,
             headers: Mapping[str, str] | None = None) -> Reply:
        """One call with retries (recorded in ``attempts``); raises the last failure."""
        outcome, attempts = run_with_retry(
            self._retry_policy, method,
            lambda: self._paced(lambda: self._once(method, url, content, headers or {}, self._max_bytes)))
        self.attempts.extend(attempts)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.value is not None
        self.last_reply = outcome.value
        return outcome.value

    def _paced(self, send: Callable[[], Outcome[Reply]]) -> Outcome[Reply]:
        """One request to the alias's origin, after the alias's rate and concurrency limits (if it
        has them) give its turn: the bucket and slots REST steps through the alias take theirs from too."""
        resolved = self._resolved
        if resolved.rate_limit is None and resolved.concurrency_limit is None:
            return send()
        from flowrun._transport._rate import gate_for, lease_seconds

        gate = gate_for(resolved)
        assert gate is not None
        try:
            held = gate.enter(lease_seconds(self._timeout.read if self._timeout.read is not None else _DEFAULT_WAIT_S))
        except StepFailure as error:  # no slot in time, or the shared limits' store failed: not sent
            return Outcome(error=error, sent=False)
        try:
            outcome = send()
        finally:
            gate.leave(held)
        gate.answered(outcome.status, outcome.retry_after, self._retry_policy.max_interval_s)
        return outcome

    def fetch_document(self, url: str, *, max_bytes: int) -> bytes:
        """GET a WSDL or schema (retried as any GET); the status must be 2xx. The attempts are
        kept only when the fetch fails: they are then the step's only attempts."""
        client, auth, resolved = self._client, self._auth, self._resolved
        # A document on the alias's own origin counts against its rate limit; one elsewhere does not.
        paced = web_origin(url) == resolved.origin_rule.home
        if not resolved.origin_rule.trusts_url(url):
            if self._anonymous is None:
                raise WsdlError(f"{url} is not on the alias's origin ({resolved.origin_rule.describe()}) and "
                                "this transport has no client without credentials; refused",
                                hint="list the origin in the alias's trusted_origins, or keep a local copy")
            client, auth, resolved = self._anonymous(), None, attrs.evolve(resolved, client_identity=None)
        def fetch() -> Outcome[Reply]:
            return self._once("GET", url, None, {"Accept": "text/xml, application/xml, */*"}, max_bytes,
                              client=client, auth=auth, resolved=resolved)

        outcome, attempts = run_with_retry(self._retry_policy, "GET",
                                           lambda: self._paced(fetch) if paced else fetch())
        if outcome.error is not None:
            self.attempts.extend(attempts)
            raise outcome.error
        reply = outcome.value
        assert reply is not None
        if not 200 <= reply.status_code < 300:
            raise WsdlError(f"fetching {url} returned HTTP {reply.status_code}",
                            hint="check the wsdl URL of the step (a WSDL is often at the endpoint with ?wsdl)")
        return reply.content

    def _once(self, method: str, url: str, content: bytes | None, headers: Mapping[str, str],
              max_bytes: int, *, client: httpx.Client | None = None, auth: httpx.Auth | None = None,
              resolved: ResolvedConnection | None = None) -> Outcome[Reply]:
        # One attempt (a call, or a WSDL or schema fetch) ends by its total deadline (``_streams``).
        attempt = begin_attempt(self._timeout.read if self._timeout.read is not None else _DEFAULT_WAIT_S)
        try:
            if client is None:
                client, auth, resolved = self._client, self._auth, self._resolved
            assert resolved is not None
            return self._send(method, url, content, headers, max_bytes, client, auth, resolved)
        finally:
            end_attempt(attempt)

    def _send(self, method: str, url: str, content: bytes | None, headers: Mapping[str, str],
              max_bytes: int, client: httpx.Client, auth: httpx.Auth | None,
              resolved: ResolvedConnection) -> Outcome[Reply]:
        request = client.build_request(method, url, content=content, headers=dict(headers), timeout=self._timeout)
        self.last_request = (method, url, tuple(request.headers.multi_items()), content)
        try:
            response = client.send(request, stream=True, auth=auth)
        except FlowrunError as error:  # a credential that cannot be applied (an OAuth2 token refused)
            return Outcome(error=error, sent=False)
        except (httpx.HTTPError, OSError) as exc:
            return Outcome(error=classify(exc, url=url, resolved=resolved), sent=not failed_before_sending(exc))
        try:
            tls = self._tls_reader.read(response) if self._tls_reader is not None and client is self._client else None
            body = _read_capped(response, max_bytes, url)
        except FlowrunError as error:
            return Outcome(error=error, status=response.status_code)
        except (httpx.HTTPError, OSError) as exc:
            return Outcome(error=classify(exc, url=url, resolved=resolved), status=response.status_code)
        finally:
            response.close()
        refused = refusal_page(response.status_code, body, url=url, resolved=resolved)
        if refused is not None:  # nginx refused our certificate with an HTTP answer
            return Outcome(error=refused, status=response.status_code)
        reply = Reply(response.status_code, response.headers, body, str(response.url), tls)
        return Outcome(value=reply, status=reply.status_code, retry_after=response.headers.get("Retry-After"))


def _read_capped(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLargeError(f"{url} announced {int(declared)} bytes, more than the cap of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    for chunk in decoded(response):
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLargeError(f"{url} sent more than the cap of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def timeout_for(resolved: ResolvedConnection, step_timeout: float | None) -> httpx.Timeout:
    """The step's timeout, else the connection's, as REST steps use them."""
    if step_timeout is None:
        return httpx.Timeout(resolved.read_timeout_s, connect=resolved.connect_timeout_s)
    return httpx.Timeout(step_timeout, connect=min(resolved.connect_timeout_s, step_timeout))


# --- zeep transports ----------------------------------------------------------------------------


class FlowrunTransport(zeep.transports.Transport):
    """Base: zeep's attributes without zeep's ``requests`` session (never created, never used)."""

    def __init__(self) -> None:
        # zeep.transports.Transport.__init__ would open a requests.Session: not called on purpose.
        self.cache = None
        self.load_timeout = None
        self.operation_timeout = None
        self._close_session = False
        self.session = None

    def load(self, url: str) -> bytes:
        raise UnsafeXmlError(f"{url}: documents are loaded only while a WSDL is parsed; refused")

    def get(self, address: str, params: Any, headers: Any) -> Reply:
        raise WsdlError(f"{address}: HTTP GET bindings are not supported; use a SOAP binding")

    def post(self, address: str, message: bytes, headers: Any) -> Reply:
        raise WsdlError(f"{address}: this transport only loads documents")

    def post_xml(self, address: str, envelope: etree._Element, headers: Any) -> Reply:
        return self.post(address, etree.tostring(envelope, xml_declaration=True, encoding="utf-8"), headers)


class CallTransport(FlowrunTransport):
    """Sends the SOAP calls of one step through an ``Exchanger``.

    Headers, weakest first: the alias's, zeep's (Content-Type, SOAPAction), the step's, and the
    step's ``soap_action`` override. Replies zeep should not read raise here instead: a SOAP Fault
    becomes ``SoapFaultError`` (SOAP 1.1 or 1.2, whatever the binding), and a status other than
    2xx without a fault is an unexpected status, not zeep's "unknown fault".
    """

    def __init__(self, exchanger: Exchanger, *, base_headers: Mapping[str, str], step_headers: Mapping[str, str],
                 soap_action: str | None) -> None:
        super().__init__()
        self.exchanger = exchanger
        self._base_headers = dict(base_headers)
        self._step_headers = dict(step_headers)
        self._soap_action = soap_action
        self.envelope: Envelope | None = None

    def post(self, address: str, message: bytes, headers: Any) -> Reply:
        merged = {**self._base_headers, **dict(headers or {}), **self._step_headers}
        if self._soap_action is not None:
            set_soap_action(merged, self._soap_action)
        reply = self.exchanger.call("POST", address, content=message, headers=merged)
        self.envelope = read_envelope(reply)
        return reply


def set_soap_action(headers: dict[str, str], action: str) -> None:
    """Put ``action`` where the SOAP version reads it: the SOAPAction header (1.1) or the action
    parameter of the Content-Type (1.2)."""
    content_type_key = next((k for k in headers if k.lower() == "content-type"), "Content-Type")
    content_type = headers.get(content_type_key, SOAP11_CONTENT_TYPE)
    for key in [k for k in headers if k.lower() == "soapaction"]:
        del headers[key]
    if content_type.lower().startswith("application/soap+xml"):
        params = [p for p in content_type.split(";") if not p.strip().lower().startswith("action=")]
        headers[content_type_key] = "; ".join(p.strip() for p in [*params, f'action="{action}"'])
    else:
        headers["SOAPAction"] = f'"{action}"'


@attrs.frozen(eq=False, repr=False)
class Envelope(ValueRecord):
    """A reply's envelope, parsed once (None: an empty 2xx answer, as one-way operations get),
    and its MTOM/XOP attachments."""

    root: etree._Element | None
    attachments: Attachments = NO_ATTACHMENTS


def read_envelope(reply: Reply) -> Envelope:
    """Parse a reply safely. A SOAP Fault raises ``SoapFaultError`` (the same way for both modes
    and whatever the binding's version); a 2xx reply goes on; others raise."""
    ok = 200 <= reply.status_code < 300
    if ok and not reply.content.strip():
        return Envelope(None)
    content, attachments = reply.content, NO_ATTACHMENTS
    if reply.content_type.split(";", 1)[0].strip().lower() == "multipart/related":
        content, attachments = _multipart(reply)
    try:
        root = parse_xml(content, source=f"the reply from {reply.url}")
    except (ResponseParseError, UnsafeXmlError):
        if ok:
            raise
        # An error page (often HTML, with a DOCTYPE) is never parsed: the status is the news.
        raise unexpected_status(reply) from None
    fault = find_fault(root)
    if fault is not None:
        raise fault_from_element(fault, status=reply.status_code)
    if not ok:
        raise unexpected_status(reply)
    if etree.QName(root).localname != "Envelope" or etree.QName(root).namespace not in ENVELOPE_VERSIONS:
        raise ResponseParseError(f"the reply from {reply.url} is XML but not a SOAP envelope: its root element is "
                                 f"{root.tag}", hint="check the endpoint (alias URL and the step's path)")
    return Envelope(root, attachments)


def _multipart(reply: Reply) -> tuple[bytes, Attachments]:
    """The root part (the ``start`` parameter's, else the first) and the other parts by Content-ID."""
    head = f"Content-Type: {reply.content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + reply.content)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    if not parts:
        raise ResponseParseError(f"the multipart/related reply from {reply.url} has no parts",
                                 hint="the partner's MTOM reply is broken: ask them for the raw reply")
    start = str(message.get_param("start", "") or "").strip("<>")
    ids = [str(part.get("Content-ID", "")).strip().strip("<>") for part in parts]
    root_index = ids.index(start) if start in ids else 0
    attachments = {ids[i]: bytes(part.get_payload(decode=True) or b"")
                   for i, part in enumerate(parts) if i != root_index and ids[i]}
    return bytes(parts[root_index].get_payload(decode=True) or b""), Attachments(attachments)


def unexpected_status(reply: Reply) -> UnexpectedStatusError:
    excerpt = reply.content[:_EXCERPT_CHARS].decode("utf-8", "replace")
    return UnexpectedStatusError(
        f"HTTP {reply.status_code} from {reply.url}, and the body is not a SOAP fault",
        status=reply.status_code, body_excerpt=excerpt, content_type=reply.content_type or None,
        headers=reply.header_pairs(),
        hint="check the endpoint (alias URL and the step's path) and the partner's logs")


# --- calling ----------------------------------------------------------------------------------


def soap_headers_value(headers: Mapping[str, Any]) -> Any:
    """zeep's ``_soapheaders`` for the step's ``soap_headers``.

    Keys in Clark notation (``{urn:partner}Token``) become elements built here (a mapping value
    gives child elements in the same namespace); plain keys name header parts the WSDL declares
    and go to zeep, which checks them. Mixing the two kinds is refused.
    """
    if not headers:
        return None
    clark = [key for key in headers if key.startswith("{")]
    if clark and len(clark) != len(headers):
        raise DefinitionError("soap_headers mixes {namespace}Name keys with plain names",
                              hint="give every header as {namespace}Name, or only names the WSDL declares")
    if not clark:
        return dict(headers)
    return [_header_element(key, value) for key, value in headers.items()]


def _header_element(name: str, value: Any) -> etree._Element:
    try:
        element = etree.Element(name)
    except ValueError:
        raise DefinitionError(f"soap_headers key {name!r} is not a valid {{namespace}}Name") from None
    namespace = etree.QName(element).namespace
    if isinstance(value, Mapping):
        for child_name, child_value in value.items():
            qualified = child_name if child_name.startswith("{") else f"{{{namespace}}}{child_name}"
            element.append(_header_element(qualified, child_value))
    elif value is not None:
        element.text = value if isinstance(value, str) else _text(value)
    return element


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def wsse_token(credential: Credential | None) -> Any:
    """zeep's WS-Security UsernameToken for a ``wsse_username_token`` credential, else None."""
    if credential is None or credential.type != "wsse_username_token":
        return None
    if not credential.username or credential.password is None:
        raise DefinitionError(f"credential '{credential.name}' (wsse_username_token) needs username and password",
                              **credential.origin.location())
    return zeep.wsse.username.UsernameToken(  # type: ignore[no-untyped-call]
        credential.username, credential.password.reveal(), use_digest=credential.digest)


@attrs.frozen(eq=False, repr=False)
class SoapReply(ValueRecord):
    """What a SOAP call gave back: the HTTP reply, ``body`` and ``soap_headers`` in the documented
    shape, and the parsed envelope (None for an empty one-way answer) for ``xpath:`` outputs."""

    reply: Reply
    body: Any
    root: etree._Element | None
    soap_headers: dict[str, Any] = attrs.field(factory=dict)


def call_operation(document: Any, chosen: ChosenBinding, transport: CallTransport, *, address: str,
                   operation: str, args: Mapping[str, Any], soap_headers: Mapping[str, Any],
                   wsse: Any, step_id: str, wsdl: str, strict: bool = True) -> SoapReply:
    """Call ``operation``: zeep builds the envelope, the reply is read here (see ``_soap_data``)."""
    operations = chosen.operations()
    if operation not in operations:
        raise SoapOperationError(
            f"the WSDL binding {chosen.qname} has no operation '{operation}'{did_you_mean(operation, operations)}",
            hint=f"operations: {', '.join(sorted(operations))}", step=step_id)
    bound = chosen.binding.get(operation)
    where = f"operation {operation} of {wsdl}"
    try:
        kwargs = prepare_args(bound.input.body.type if bound.input is not None and bound.input.body else None,
                              args, operation)
    except ArgValueError as exc:
        raise SoapArgumentError(f"args of {where}: {exc.path}: {exc.problem}", step=step_id) from None
    except READ_ERRORS as exc:
        raise WsdlError(f"the input of {where} cannot be read: {type(exc).__name__}: {exc}", step=step_id) from None
    header_value = soap_headers_value(soap_headers)
    if header_value is not None:
        kwargs["_soapheaders"] = header_value
    client = zeep.Client(document, transport=transport,  # type: ignore[no-untyped-call]
                         settings=zeep_settings(strict=document.settings.strict), wsse=wsse)
    try:
        envelope, http_headers = chosen.binding._create(operation, (), kwargs, client=client,
                                                        options={"address": address})
    except FlowrunError:
        raise
    except (TypeError, zeep.exceptions.ValidationError) as exc:
        named = _named_problem(chosen, operation, args, wsdl, step_id)
        if named is not None:  # a misspelt or missing name, as ``flowrun validate`` words it
            raise named from None
        raise SoapArgumentError(f"args do not fit {where}: {exc}", step=step_id,
                              hint=f"the operation's signature: {_signature(bound)}") from None
    except (zeep.exceptions.Error, LookupError, ValueError, AttributeError, ArithmeticError) as exc:
        raise WsdlError(f"cannot build the request of {where}: {type(exc).__name__}: {exc}", step=step_id) from None
    try:
        transport.post_xml(address, envelope, http_headers)
    except (ResponseParseError, UnsafeXmlError) as error:
        error.message = f"the reply to {where}: {error.message}"
        error.args = (error.message,)
        raise
    reply, received = transport.exchanger.last_reply, transport.envelope
    assert reply is not None and received is not None
    try:
        data = reply_data(received.root, schema=operation_schema(bound), strict=strict,
                          attachments=received.attachments)
    except ReplyValueError as exc:
        raise reply_error(exc, where) from None
    except READ_ERRORS as exc:  # a schema construct zeep models in a way not foreseen here
        raise SoapReplyError(f"the reply to {where} cannot be read with its WSDL: {type(exc).__name__}: {exc}",
                             hint="a raw envelope step without wsdl reads the reply untyped") from None
    return SoapReply(reply, data.body, received.root, data.soap_headers)


def _named_problem(chosen: Any, operation: str, args: Mapping[str, Any], wsdl: str,
                   step_id: str) -> FlowrunError | None:
    """The first name in ``args`` the operation does not have (or the first it needs and does not
    get), with the closest known name; None when the names are right and the values are not."""
    from flowrun._transport._wsdl import argument_problems, operation_parameters

    try:
        problem = next(argument_problems(args, operation_parameters(chosen, operation, wsdl=wsdl), "/args",
                                         operation, step_id), None)
    except FlowrunError:
        return None
    if problem is not None:
        problem.pointer = None  # relative to the step, not to the flow file a run names
        problem.message = f"{problem.message} (WSDL {wsdl})"
        problem.args = (problem.message,)
    return problem


def _signature(bound: Any) -> str:
    try:
        return f"{bound.name}({bound.input.signature() if bound.input is not None else ''})"
    except (AttributeError, LookupError, TypeError, ValueError):
        return bound.name if hasattr(bound, "name") else "?"


# What reading a reply or args against zeep's model of a schema may raise beyond ReplyValueError.
READ_ERRORS = (zeep.exceptions.Error, AttributeError, TypeError, ValueError, LookupError, ArithmeticError,
               RecursionError)


def reply_error(exc: ReplyValueError, where: str) -> SoapReplyError:
    return SoapReplyError(f"the reply to {where} does not fit the WSDL at {exc.path}: {exc.problem}")


def envelope_version(root: etree._Element) -> SoapVersion:
    namespace = etree.QName(root).namespace or ""
    version = ENVELOPE_VERSIONS.get(namespace)
    if version is None or etree.QName(root).localname != "Envelope":
        raise DefinitionError(
            f"the envelope's root element is {root.tag}, not a SOAP 1.1 or 1.2 Envelope",
            hint=f"the root must be {{{SOAP11_ENVELOPE}}}Envelope or {{{SOAP12_ENVELOPE}}}Envelope")
    return version


def call_raw(exchanger: Exchanger, *, address: str, text: str, source: str, soap_action: str | None,
             base_headers: Mapping[str, str], step_headers: Mapping[str, str], wsse: Any,
             schema: ReplySchema | None = None, strict: bool = True, wsdl: str | None = None) -> SoapReply:
    """POST an envelope as written, byte for byte in UTF-8; with a WS-Security credential the
    envelope is parsed, given its Security header and serialized again. With ``schema`` (the step
    names a ``wsdl``) the reply is typed as in operation mode."""
    content = text.encode("utf-8")
    try:
        envelope = parse_xml(content, source=source)
    except ResponseParseError as error:
        raise DefinitionError(error.message, hint="the envelope must be a well-formed SOAP Envelope") from None
    version = envelope_version(envelope)
    if wsse is not None:
        envelope, _ = wsse.apply(envelope, {})
        content = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
    headers = {**base_headers, "Content-Type": SOAP11_CONTENT_TYPE if version == "1.1" else SOAP12_CONTENT_TYPE}
    if version == "1.1":
        headers["SOAPAction"] = '""'
    headers.update(step_headers)
    if soap_action is not None:
        set_soap_action(headers, soap_action)
    reply = exchanger.call("POST", address, content=content, headers=headers)
    received = read_envelope(reply)
    where = source if wsdl is None else f"{source} ({wsdl})"
    try:
        data: ReplyData = reply_data(received.root, schema=schema, strict=strict, attachments=received.attachments)
    except ReplyValueError as exc:
        raise reply_error(exc, where) from None
    except READ_ERRORS as exc:
        raise SoapReplyError(f"the reply to {where} cannot be read: {type(exc).__name__}: {exc}") from None
    return SoapReply(reply, data.body, received.root, data.soap_headers)
