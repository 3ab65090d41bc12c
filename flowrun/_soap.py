"""SOAP steps: ``SoapExecutor`` (sync) and ``AsyncSoapExecutor`` (asyncio).

::

    from flowrun import Registry, ResponseSpec, SoapExecutor, SoapStep

    with SoapExecutor(Registry.load("aliases")) as soap:
        step = SoapStep(alias="ledger", wsdl="steps/ledger.wsdl", operation="GetBalance",
                        args={"account": "42"}, response=ResponseSpec(outputs={"balance": "body.balance"}))
        print(soap.run(step).raise_for_failure().outputs["balance"])

A SOAP step uses the same alias, pooled client, SSL context, credential and retry policy as a
REST step; only the body is an envelope. Two modes:

* **operation**: ``wsdl`` (a local path, or an http(s) URL; a URL on the alias's origin, or on
  one of its ``trusted_origins``, is fetched through the alias's client with its credential and
  TLS identity, any other through a client with neither, schema imports included) +
  ``operation`` + ``args``. The WSDL is parsed once per process
  (``flowrun._transport._wsdl.WSDL_CACHE``). The call goes to the alias's base URL plus the
  step's ``path``: the WSDL's ``soap:address`` is never used, since a WSDL published by a
  partner routinely names an internal host or the production one.
* **raw envelope**: ``envelope`` text is POSTed as written, with ``soap_action``; the SOAP
  version comes from the envelope's namespace. Data pill values inside the envelope are
  XML-escaped; an envelope that is one single pill is inserted as is. A raw step may name its
  ``wsdl`` too: it is then only read, for the schema that types the reply.

Both modes give the same reply shape (``flowrun._transport._soap_data``, docs/flows.md "SOAP
steps"): ``body`` is the reply element keyed by its children's local names, never unwrapped,
``soap_headers`` the reply's headers; ``xpath:`` outputs read the envelope. A SOAP Fault (with
HTTP 500 or 200) fails the step with ``SoapFaultError`` (code, string, actor, detail), and the
result carries it as ``fault`` (and ``body.fault``); ``response.expect_fault`` makes it the
expected answer. A ``wsse_username_token`` credential adds a WS-Security UsernameToken header; ``basic``,
``bearer``, ``api_key`` and ``oauth2_client_credentials`` authenticate the HTTP request as in REST.

zeep loads only when a SOAP step runs: ``import flowrun`` and REST-only runs never import it.

``AsyncSoapExecutor`` runs the sync path in a worker thread. zeep's ``AsyncTransport`` would need
a second client pool (an ``httpx.AsyncClient`` per alias beside the sync client zeep still uses
for WSDLs), overwrites the client's headers, and parses WSDLs synchronously on the event loop
anyway; one pool and one code path are worth more than saving a thread per concurrent call.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

import attrs

from flowrun._errors import AssertionFailedError, DefinitionError, FlowrunError, SoapFaultError
from flowrun._eval import is_single_pill, render, render_text, value_to_text
from flowrun._models._record import RecordRepr
from flowrun._models._redact import REDACTED, Secrets, is_credential_header, with_query_credential
from flowrun._models._results import RequestInfo, StepResult
from flowrun._models._steps import SoapStep
from flowrun._registry import Registry, RegistryUser, ResolvedConnection
from flowrun._runner import Received, charset, excerpt, failure, finish, internal_error
from flowrun._transport._auth import auth_header, build_auth
from flowrun._transport._http import ClientPool, ExecutorClosedError, TlsInfoReader, client_subject
from flowrun._transport._request import encode_path, join_url, render_path

if TYPE_CHECKING:
    import httpx

    from flowrun._transport import _soap as soap_transport
    from flowrun._transport import _wsdl as wsdl_transport
    from flowrun._transport._soap_data import SoapVersion

_XML_ESCAPES = {'"': "&quot;", "'": "&apos;"}


@attrs.define(eq=False, repr=False)
class _Route(RecordRepr):
    """A resolved connection with its pooled client and credential, and (made on first use) the
    client for origins the origin rule does not trust: same trust, no client certificate."""

    key: Hashable
    resolved: ResolvedConnection
    client: httpx.Client
    auth: httpx.Auth | None
    auth_header: str | None
    tls: TlsInfoReader
    anonymous: Callable[[], httpx.Client]


def render_envelope(template: str, context: Mapping[str, Any], *, step: str | None = None) -> str:
    """Render data pills in an envelope, XML-escaping each pill's value (a value cannot add
    markup). An envelope that is exactly one pill is the value's text as is."""
    if is_single_pill(template):
        return value_to_text(render(template, context, step=step, pointer="/envelope"))
    return render_text(template, context, escape=_xml_text, step=step, pointer="/envelope")


def _xml_text(value: Any) -> str:
    return escape(value_to_text(value), _XML_ESCAPES)


def wsdl_source(step: SoapStep, location: str) -> wsdl_transport.WsdlSource:
    """Where the step's WSDL is: an http(s) URL, or a local path (relative to the step's file)."""
    from flowrun._transport._wsdl import WsdlSource

    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return WsdlSource(location, local=False)
    if scheme == "file":
        path = Path(unquote(parts.path))
    elif scheme and len(scheme) > 1:
        raise DefinitionError(f"wsdl {location!r}: use an https or http URL, or a local file path",
                              step=step.id, **_where(step, "/wsdl"))
    else:
        path = Path(location)
    if "\x00" in str(path):
        raise DefinitionError(f"wsdl {location!r} holds a NUL character: no file has that name",
                              step=step.id, **_where(step, "/wsdl"))
    if not path.is_absolute():
        path = (step.base_dir or Path.cwd()) / path
    return WsdlSource(_resolved_path(str(path)), local=True)


@functools.lru_cache(maxsize=256)
def _resolved_path(path: str) -> str:
    # Resolved once per process: a resolve is a syscall per path component on every call.
    return str(Path(path).resolve())


def _where(step: SoapStep, field: str = "") -> dict[str, Any]:
    location = dict(step.origin.location())
    location.pop("step", None)
    if field:
        location["pointer"] = f"{location.get('pointer') or ''}{field}"
    return location


_BINDINGS: dict[tuple[int, str | None, str | None, str | None], tuple[Any, wsdl_transport.ChosenBinding]] = {}
_BINDINGS_LOCK = threading.Lock()
_MAX_BINDINGS = 64


def _chosen_binding(document: Any, service: str | None, port: str | None, soap_version: SoapVersion | None,
                    location: str) -> wsdl_transport.ChosenBinding:
    """``choose_binding`` once per parsed document and choice: it walks every service and port."""
    from flowrun._transport import _wsdl as wsdl

    key = (id(document), service, port, soap_version)
    with _BINDINGS_LOCK:
        known = _BINDINGS.get(key)
    # The entry holds its document, so an id is never reused while its entry lives.
    if known is not None and known[0] is document:
        return known[1]
    chosen = wsdl.choose_binding(document, service=service, port=port, soap_version=soap_version, wsdl=location)
    with _BINDINGS_LOCK:
        if len(_BINDINGS) >= _MAX_BINDINGS:
            _BINDINGS.clear()
        _BINDINGS[key] = (document, chosen)
    return chosen


class _SoapCore(RegistryUser):
    """Resolution and one run; shared by the sync executor and (in a thread) the async one."""

    def __init__(self, registry: Registry | None = None, *, env: str | None = None,
                 secrets: Secrets | None = None) -> None:
        super().__init__(registry, env=env, secrets=secrets)
        from flowrun._transport._log_redaction import install as install_log_redaction

        install_log_redaction()
        self._pool = ClientPool()
        self._routes: dict[Hashable, _Route] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.close()

    # --- resolution -------------------------------------------------------------------------

    def _route(self, step: SoapStep) -> _Route:
        # An inline connection is keyed by its repr: every field, no secret (credentials are names).
        key: Hashable = (("alias", step.alias, self.env) if step.connection is None
                         else ("inline", repr(step.connection), self.env))
        route = self._routes.get(key)
        if route is None:
            with self._lock:
                route = self._routes.get(key)
                if route is None:
                    route = self._routes[key] = self._make_route(key, self._resolve(step))
        return route

    def _resolve(self, step: SoapStep) -> ResolvedConnection:
        return self.resolve_step(step.alias, step.connection)

    def _make_route(self, key: Hashable, resolved: ResolvedConnection) -> _Route:
        context = resolved.ssl_context or self.records_registry.ssl_context(None)[0]
        client = self._pool.get((resolved.alias, resolved.env, id(context)), context, resolved.connect_to,
                                proxy=resolved.proxy)

        def anonymous() -> httpx.Client:
            bare = (context if resolved.client_certificate is None
                    else self.records_registry.anonymous_ssl_context(resolved.profile))
            return self._pool.get(("anonymous", id(bare)), bare, resolved.connect_to, proxy=resolved.proxy)

        credential = resolved.credential
        wsse = credential is not None and credential.type == "wsse_username_token"
        # The token endpoint gets the client secret (its credential names it); our certificate only
        # when the origin rule trusts it.
        token_client = (client if credential is None or credential.token_url is None
                        or resolved.origin_rule.trusts_url(credential.token_url) else anonymous())
        auth = None if wsse else build_auth(credential, resolved=resolved, client=token_client, secrets=self.secrets)
        reader = TlsInfoReader(resolved.client_cert_sha256, client_subject(resolved))
        return _Route(key, resolved, client, auth, None if wsse else auth_header(credential), reader, anonymous)

    # --- one run ----------------------------------------------------------------------------

    def run(self, step: SoapStep, context: Mapping[str, Any] | None = None) -> StepResult:
        """Run one SOAP step; failures are returned in the result, not raised (an exception flowrun
        did not expect included: it becomes an ``InternalError``)."""
        started = time.perf_counter()
        try:
            return self.masked(self._run(step, context, started))
        except ExecutorClosedError:
            raise
        except Exception as exc:  # documented never to raise (the closed executor aside)
            return self.masked(failure(step, internal_error(exc), started=started))

    def _run(self, step: SoapStep, context: Mapping[str, Any] | None, started: float) -> StepResult:
        try:
            route = self._route(step)
        except FlowrunError as error:
            return failure(step, error, started=started)
        # zeep loads here, on the first SOAP step, and never for REST-only runs.
        from flowrun._transport import _soap as soap
        from flowrun._transport._soap_data import fault_body

        resolved = route.resolved
        exchanger = soap.Exchanger(
            route.client, resolved=resolved, auth=route.auth, timeout=soap.timeout_for(resolved, step.timeout_s),
            max_bytes=step.response.max_bytes, retry_policy=step.retry_policy or resolved.retry_policy,
            tls_reader=route.tls, anonymous=route.anonymous)
        try:
            reply = self._call(step, route, exchanger, context)
        except SoapFaultError as fault:
            last = exchanger.last_reply
            request = self._request_info(route, exchanger)
            if last is None:
                return failure(step, fault, attempts=tuple(exchanger.attempts), started=started, request=request)
            shown = fault_body(fault)
            received = self._received(last, {"fault": shown}, None, fault=shown)
            spec = step.response
            if spec.expect_fault or (spec.expect_status is not None and spec.status_expected(last.status_code)):
                # The fault is what the step expects: outputs and assertions read it.
                return finish(step, received, context=context, attempts=tuple(exchanger.attempts),
                              started=started, tls=last.tls, request=request)
            return failure(step, fault, attempts=tuple(exchanger.attempts), started=started, tls=last.tls,
                           request=request, received=received)
        except FlowrunError as error:
            last = exchanger.last_reply
            shown_text = excerpt(last.content, charset(last.content_type or None)) if last is not None else None
            return failure(step, error, attempts=tuple(exchanger.attempts), started=started,
                           tls=last.tls if last else None, request=self._request_info(route, exchanger),
                           received=self._received(last, shown_text, None) if last is not None else None)
        received = self._received(reply.reply, reply.body, reply.root, soap_headers=reply.soap_headers)
        unexpected = None
        if step.response.expect_fault:
            unexpected = AssertionFailedError(
                f"the step expects a SOAP fault, and the call succeeded (HTTP {reply.reply.status_code})",
                hint="remove expect_fault from the step's response, or check the args that should be refused")
        return finish(step, received, context=context, attempts=tuple(exchanger.attempts), started=started,
                      tls=reply.reply.tls, request=self._request_info(route, exchanger), parse_error=unexpected)

    def _call(self, step: SoapStep, route: _Route, exchanger: soap_transport.Exchanger,
              context: Mapping[str, Any] | None) -> soap_transport.SoapReply:
        from flowrun._transport import _soap as soap

        resolved = route.resolved
        path = step.path or ""
        path = render_path(path, context, step=step.id) if context is not None else encode_path(path, step=step.id)
        address = join_url(resolved.base_url, path)
        headers = (render(list(step.headers), context, step=step.id, pointer="/headers")
                   if context is not None else step.headers)
        step_headers = {name: value_to_text(value) for name, value in headers if value is not None}
        wsse = soap.wsse_token(resolved.credential)
        if wsse is not None:
            self.secrets.add(getattr(wsse, "password", None))
        if step.envelope is not None:
            if step.soap_headers:
                raise DefinitionError("soap_headers apply to operation steps; write the headers into the envelope",
                                      step=step.id, **_where(step))
            text = render_envelope(step.envelope, context, step=step.id) if context is not None else step.envelope
            schema = None
            if step.wsdl is not None:
                # The WSDL types the reply as in operation mode: switching modes changes no output.
                from flowrun._transport._soap_data import document_schema

                schema = document_schema(self._binding(step, route, exchanger, context)[0])
            return soap.call_raw(exchanger, address=address, text=text, source=f"the envelope of step '{step.id}'",
                                 soap_action=step.soap_action, base_headers=resolved.headers,
                                 step_headers=step_headers, wsse=wsse, schema=schema, strict=step.strict,
                                 wsdl=step.wsdl)
        document, chosen = self._binding(step, route, exchanger, context)
        transport = soap.CallTransport(exchanger, base_headers=resolved.headers, step_headers=step_headers,
                                       soap_action=step.soap_action)
        args = render(dict(step.args), context, step=step.id, pointer="/args") if context is not None else step.args
        soap_headers = (render(dict(step.soap_headers), context, step=step.id, pointer="/soap_headers")
                        if context is not None else step.soap_headers)
        assert step.operation is not None
        return soap.call_operation(document, chosen, transport, address=address, operation=step.operation,
                                   args=args, soap_headers=soap_headers, wsse=wsse, step_id=step.id,
                                   wsdl=str(step.wsdl), strict=step.strict)

    @staticmethod
    def _binding(step: SoapStep, route: _Route, exchanger: soap_transport.Exchanger,
                 context: Mapping[str, Any] | None) -> tuple[Any, wsdl_transport.ChosenBinding]:
        """The parsed WSDL (fetched over the alias's client when it is a URL) and the binding to call."""
        from flowrun._transport import _wsdl as wsdl

        assert step.wsdl is not None
        location = render(step.wsdl, context, step=step.id, pointer="/wsdl") if context is not None else step.wsdl
        source = wsdl_source(step, str(location))
        # Imports may come from the alias's origin, the origins it trusts, and the WSDL's own.
        origins = {route.resolved.origin_key, *route.resolved.trusted_origins}
        wsdl_origin = None if source.local else wsdl.origin_of(source.location)
        if wsdl_origin is not None:
            origins.add(wsdl_origin)
        policy = wsdl.LoadPolicy(frozenset(origins), source.local_root)
        document = wsdl.WSDL_CACHE.document(source, policy, exchanger, fetch_key=route.key)
        return document, _chosen_binding(document, step.service, step.port, step.soap_version, source.location)

    @staticmethod
    def _received(reply: soap_transport.Reply, body: Any, root: Any, *, soap_headers: Any = None,
                  fault: Any = None) -> Received:
        content_type = reply.content_type or None
        shown = "" if 200 <= reply.status_code < 300 else excerpt(reply.content, charset(content_type))
        return Received(reply.status_code, tuple(reply.header_pairs()), body, content_type, shown, root, reply.url,
                        soap_headers=soap_headers if soap_headers is not None else {}, fault=fault)

    def _request_info(self, route: _Route, exchanger: soap_transport.Exchanger) -> RequestInfo | None:
        sent = exchanger.last_request
        if sent is None:
            return None
        method, url, headers, content = sent
        shown: list[tuple[str, str]] = []
        for name, value in headers:
            if is_credential_header(name):
                self.secrets.add(value)
            shown.append((name, REDACTED if is_credential_header(name) else value))
        credential = route.resolved.credential
        if route.auth_header is not None:
            shown.append((route.auth_header, REDACTED))
        elif credential is not None and credential.type == "api_key":
            url = with_query_credential(url, credential.query or "api_key")
        return RequestInfo(method, url, tuple(shown), content)


class SoapExecutor(_SoapCore):
    """Runs SOAP steps synchronously; thread-safe. Close it (or use ``with``) to end connections."""

    def __enter__(self) -> SoapExecutor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class AsyncSoapExecutor:
    """Runs SOAP steps on asyncio: each ``run`` is the sync path in a worker thread (see the
    module docstring for why), so many may be awaited concurrently."""

    def __init__(self, registry: Registry | None = None, *, env: str | None = None,
                 secrets: Secrets | None = None) -> None:
        self._sync = SoapExecutor(registry, env=env, secrets=secrets)

    @property
    def secrets(self) -> Secrets:
        return self._sync.secrets

    @property
    def env(self) -> str | None:
        return self._sync.env

    @property
    def registry(self) -> Registry:
        return self._sync.registry

    async def run(self, step: SoapStep, context: Mapping[str, Any] | None = None) -> StepResult:
        """Run one SOAP step; failures are returned in the result, not raised."""
        return await asyncio.to_thread(self._sync.run, step, context)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._sync.close)

    def close(self) -> None:
        self._sync.close()

    async def __aenter__(self) -> AsyncSoapExecutor:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()


__all__ = ["AsyncSoapExecutor", "SoapExecutor"]
