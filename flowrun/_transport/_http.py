"""Pooled httpx clients, one per (alias, environment, SSL context, connect-to mapping).

A client keeps its connections alive, so N sequential calls to one partner cost one TLS
handshake. Every client is HTTP/1.1 only, never retries by itself (``retries=0``: httpx would
otherwise retry certificate failures too), never follows redirects by itself (the executor
decides, see ``flowrun._rest``) and ignores httpx's reading of the environment
(``trust_env=False``): ``SSL_CERT_FILE`` and ``.netrc`` never apply, the SSL context is always
ours. Proxies come from the resolved connection (``ProxyRules``: the connection's ``proxy``, else
HTTPS_PROXY/HTTP_PROXY/NO_PROXY read as curl reads them), see ``_proxy``.
"""

from __future__ import annotations

import contextlib
import functools
import http.cookiejar
import importlib.util
import logging
import ssl
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from flowrun._models._proxy import DIRECT, ProxyEndpoint, ProxyRules
from flowrun._models._results import Subjects, TlsInfo
from flowrun._transport import _streams
from flowrun._transport._connect_to import Address, apply_connect_to
from flowrun._transport._decode import ACCEPT_ENCODING
from flowrun._transport._proxy import AsyncProxyRouter, ProxyRouter, httpx_proxy
from flowrun._version import __version__

if TYPE_CHECKING:
    from flowrun._registry import ResolvedConnection
    from flowrun._transport._aiohttp import AiohttpTransport

USER_AGENT = f"flowrun/{__version__}"
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0)
# Only the encodings ``_decode`` inflates in bounded slices.
_DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
C = TypeVar("C", httpx.Client, httpx.AsyncClient)
_KNOWN_CONNECTIONS = 128


class _SendableCookies(http.cookiejar.DefaultCookiePolicy):
    """Keeps only cookies that can be sent back: a partner's cookie holding a control character
    or a non-ASCII byte would otherwise break every later request of the client (httpx cannot
    encode the Cookie header), long after the answer that set it."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        text = f"{cookie.name}={cookie.value or ''}"
        if not text.isascii() or not text.isprintable():
            return False
        return bool(super().set_ok(cookie, request))


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, which reads a response only when it sets a cookie: httpx builds
    urllib request and response adapters for every response otherwise (~15% of an async request)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


_HTTPX_LOG = logging.getLogger("httpx")


def send_streamed(client: httpx.Client, request: httpx.Request, auth: httpx.Auth | None) -> httpx.Response:
    """``client.send(request, auth=auth, stream=True)``. A request httpx's client would only hand
    to its transport (no credential flow, no event hooks, no mounts, its timeout set) goes to the
    transport here, with what ``Client._send_single_request`` does around that call (the request
    on errors and on the response, cookies, the log line): the client's layers are ~10% of a
    request on a kept-alive connection."""
    if (auth is not None or client.is_closed or client._mounts or request.url.userinfo
            or "timeout" not in request.extensions or client.event_hooks["request"]
            or client.event_hooks["response"]):
        return client.send(request, auth=auth, stream=True)
    try:
        response = client._transport.handle_request(request)
    except httpx.RequestError as exc:
        exc.request = request
        raise
    response.request = request
    client.cookies.extract_cookies(response)  # ``_Cookies``: read only when the response sets one
    response.default_encoding = client._default_encoding
    if _HTTPX_LOG.isEnabledFor(logging.INFO):
        _HTTPX_LOG.info('HTTP Request: %s %s "%s %d %s"', request.method, request.url, response.http_version,
                        response.status_code, response.reason_phrase)
    return response


def _with_cookie_policy(client: C) -> C:
    client._cookies = _Cookies()  # the ``cookies`` setter would copy into a plain jar
    client.cookies.jar.set_policy(_SendableCookies())
    return client


_T = TypeVar("_T", httpx.HTTPTransport, httpx.AsyncHTTPTransport)


def _transport(kind: type[_T], ssl_context: ssl.SSLContext, connect_to: Mapping[Address, Address],
               proxy: ProxyEndpoint | None) -> _T:
    """An HTTP/1.1 transport (sync or async) on our context, never retrying by itself (certificate
    failures must not be retried), with connect-to and the bounded streams installed."""
    transport = kind(verify=ssl_context, http1=True, http2=False, retries=0, limits=LIMITS, trust_env=False,
                     proxy=httpx_proxy(proxy) if proxy is not None else None)
    apply_connect_to(transport, connect_to)
    _streams.install(transport)
    return transport


def new_client(ssl_context: ssl.SSLContext, *, connect_to: Mapping[Address, Address] | None = None,
               timeout: httpx.Timeout | None = None, proxy: ProxyRules = DIRECT) -> httpx.Client:
    """A client on ``ssl_context``; ``connect_to`` dials other addresses for some host:port
    (see ``_connect_to``); ``proxy`` says which requests go through which proxy (``_proxy``)."""
    dial = connect_to or {}
    direct = _transport(httpx.HTTPTransport, ssl_context, dial, None)
    transport: httpx.BaseTransport = direct
    if proxy.any:
        transport = ProxyRouter(direct, proxy,
                                lambda endpoint: _transport(httpx.HTTPTransport, ssl_context, dial, endpoint))
    return _with_cookie_policy(httpx.Client(transport=transport, trust_env=False, follow_redirects=False,
                                            headers=_DEFAULT_HEADERS, timeout=timeout or DEFAULT_TIMEOUT))


@functools.cache
def aiohttp_installed() -> bool:
    """Whether the ``fast-async`` extra (aiohttp) is installed."""
    return importlib.util.find_spec("aiohttp") is not None


def aiohttp_transport(client: httpx.AsyncClient) -> AiohttpTransport | None:
    """The aiohttp transport a client sends through directly (not through a proxy), if any."""
    if not aiohttp_installed():
        return None
    from flowrun._transport._aiohttp import AiohttpTransport

    transport = client._transport
    return transport if isinstance(transport, AiohttpTransport) else None


def new_async_client(ssl_context: ssl.SSLContext, *, connect_to: Mapping[Address, Address] | None = None,
                     timeout: httpx.Timeout | None = None, proxy: ProxyRules = DIRECT) -> httpx.AsyncClient:
    """An async client on ``ssl_context``: over aiohttp when the ``fast-async`` extra is installed
    (several times cheaper per request, see ``_aiohttp``), else over httpx's own transport.
    Requests that go through a proxy always take httpx's (``_proxy`` speaks to proxies)."""
    dial = connect_to or {}
    direct: httpx.AsyncBaseTransport
    if aiohttp_installed():
        from flowrun._transport._aiohttp import AiohttpTransport

        direct = AiohttpTransport(ssl_context, connect_to=dial, limits=LIMITS)
    else:
        direct = _transport(httpx.AsyncHTTPTransport, ssl_context, dial, None)
    transport: httpx.AsyncBaseTransport = direct
    if proxy.any:
        transport = AsyncProxyRouter(
            direct, proxy, lambda endpoint: _transport(httpx.AsyncHTTPTransport, ssl_context, dial, endpoint))
    client = _with_cookie_policy(httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False,
                                                   headers=_DEFAULT_HEADERS, timeout=timeout or DEFAULT_TIMEOUT))
    if aiohttp_installed():
        from flowrun._transport._aiohttp import AiohttpTransport

        if isinstance(direct, AiohttpTransport):
            # The headers httpx's client adds to every request, for requests sent without it.
            direct.client_headers = tuple((name.decode("latin-1"), value.decode("latin-1"))
                                          for name, value in client.headers.raw)
    return client


class ExecutorClosedError(RuntimeError):
    """A closed executor was asked to run a step: the embedder's mistake, raised, not a step error."""


class ClientPool:
    """Sync clients by key. The key must identify the SSL context (``id(ctx)``): the client
    holds the context, so the id stays valid for as long as the entry exists."""

    def __init__(self) -> None:
        self._clients: dict[Hashable, httpx.Client] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, key: Hashable, ssl_context: ssl.SSLContext, connect_to: Mapping[Address, Address] | None = None,
            timeout: httpx.Timeout | None = None, proxy: ProxyRules = DIRECT) -> httpx.Client:
        key = (key, proxy)
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:
            if self._closed:
                raise ExecutorClosedError("the executor is closed")
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = new_client(ssl_context, connect_to=connect_to, timeout=timeout,
                                                         proxy=proxy)
            return client

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


class AsyncClientPool:
    """Async clients by key; used from one event loop (httpx async clients are loop-bound)."""

    def __init__(self) -> None:
        self._clients: dict[Hashable, httpx.AsyncClient] = {}
        self._closed = False

    def get(self, key: Hashable, ssl_context: ssl.SSLContext, connect_to: Mapping[Address, Address] | None = None,
            timeout: httpx.Timeout | None = None, proxy: ProxyRules = DIRECT) -> httpx.AsyncClient:
        key = (key, proxy)
        client = self._clients.get(key)
        if client is None:
            if self._closed:
                raise ExecutorClosedError("the executor is closed")
            client = self._clients[key] = new_async_client(ssl_context, connect_to=connect_to, timeout=timeout,
                                                           proxy=proxy)
        return client

    async def aclose(self) -> None:
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class TlsInfoReader:
    """TLS version and cipher of the connection a response came on.

    The values are read from the connection's SSL object (``network_stream`` extension) and
    remembered per SSL object: on a kept-alive connection they do not change, and concurrent
    requests take turns on several connections.
    """

    def __init__(self, client_cert_sha256: str | None,
                 client_cert_subject: Callable[[], str | None] | None) -> None:
        self._sha256 = client_cert_sha256
        self._subject = client_cert_subject
        # By id, holding the object (so the id stays its own); the sync SSL objects take no weak
        # references. Bounded: a pool never has more connections than this.
        self._known: dict[int, tuple[Any, TlsInfo]] = {}

    def read(self, response: httpx.Response) -> TlsInfo | None:
        stream = response.extensions.get("network_stream")
        return self.of(stream.get_extra_info("ssl_object") if stream is not None else None)

    def of(self, ssl_object: Any) -> TlsInfo | None:
        """The TLS info of a connection by its SSL object (None: not TLS)."""
        if ssl_object is None:
            return None
        known = self._known.get(id(ssl_object))
        if known is not None and known[0] is ssl_object:
            return known[1]
        cipher = ssl_object.cipher()
        # The certificates are taken now (the connection may be gone when a report asks), their
        # subjects written only when asked for.
        info = TlsInfo(ssl_object.version(), cipher[0] if cipher else None, self._sha256,
                       subjects=functools.partial(_subjects, self._subject, _server_der(ssl_object),
                                                  _server_chain_der(ssl_object)))
        if len(self._known) >= _KNOWN_CONNECTIONS:
            self._known.clear()
        self._known[id(ssl_object)] = (ssl_object, info)
        return info


def client_subject(resolved: ResolvedConnection) -> Callable[[], str | None] | None:
    """Our certificate's subject, written when a report asks for it (``TlsInfo``)."""
    identity = resolved.client_identity
    if identity is None:
        return None

    def subject() -> str | None:
        return certificate_subject(identity.ders[0])

    return subject


def certificate_subject(der: bytes) -> str | None:
    """The subject of a DER certificate as RFC 4514 text; None when it cannot be decoded."""
    from flowrun._tls._lean import subject_text

    text = subject_text(der)
    if text is not None:
        return text
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except (ValueError, UnsupportedAlgorithm):
        return None


def _subjects(client: Callable[[], str | None] | None, server: bytes | None,
              chain: tuple[bytes, ...] | None) -> Subjects:
    server_subject = certificate_subject(server) if server else None
    chain_subjects = tuple(certificate_subject(der) for der in chain or ())
    # A chain with a certificate that cannot be read is left out whole, as before.
    server_chain = tuple(s for s in chain_subjects if s is not None) if None not in chain_subjects else ()
    return (client() if client is not None else None), server_subject, server_chain


def _server_chain_der(ssl_object: Any) -> tuple[bytes, ...] | None:
    try:
        chain, _ = chain_from_ssl_object(ssl_object)
    except (ValueError, ssl.SSLError):
        return None
    return tuple(chain)


def _server_der(ssl_object: Any) -> bytes | None:
    try:
        der: bytes | None = ssl_object.getpeercert(True)
    except (ValueError, ssl.SSLError):
        return None
    return der or None


ChainSource = Literal["handshake", "verified_chain", "leaf_only", "none"]


def chain_from_ssl_object(ssl_object: Any) -> tuple[list[bytes], ChainSource]:
    public = getattr(ssl_object, "get_verified_chain", None)  # Python 3.13+
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)  # 3.10-3.12
    for getter in (public, private):
        if getter is None:
            continue
        with contextlib.suppress(ssl.SSLError, ValueError):
            chain = [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                     for c in getter()]
            if chain:
                return chain, "verified_chain"
    leaf = ssl_object.getpeercert(binary_form=True)
    return ([leaf], "leaf_only") if leaf else ([], "none")
