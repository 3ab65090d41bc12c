"""Requests through HTTP proxies, with httpx's own proxy support.

Each proxy of a connection gets an ``httpx.HTTPTransport(proxy=httpx.Proxy(...))`` built on the
connection's SSL context: for an https URL httpx opens a CONNECT tunnel and shakes hands with the
partner through it, so mutual TLS works end to end (the partner sees our client certificate, the
proxy sees only ``CONNECT host:port``). ``ProxyRouter`` picks, per request, the direct transport
or the proxied one with ``ProxyRules.for_url`` (``flowrun._models._proxy``): the same decision
that ``flowrun alias test`` reports, for every URL a client reaches (the partner, a redirect, an
OAuth token URL, a WSDL and its imports). httpx's URL-pattern mounts are not used for this
choice: they cannot say NO_PROXY's default-port, leading-dot and CIDR rules.

Proxy credentials are revealed when the client is built and only go into the
``Proxy-Authorization`` header of the CONNECT request (or of a plain-http request to the proxy).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from flowrun._models._proxy import ProxyEndpoint, ProxyRules

if TYPE_CHECKING:
    from cryptography import x509

    from flowrun._registry import ResolvedConnection

__all__ = ["AsyncProxyRouter", "ProxyRouter", "httpx_proxy", "presented_chain", "proxy_for_url"]


def httpx_proxy(endpoint: ProxyEndpoint) -> httpx.Proxy:
    auth = None
    if endpoint.username is not None:
        auth = (endpoint.username, endpoint.password.reveal() if endpoint.password is not None else "")
    # An https proxy is verified with the system's CAs (the partner's trust is not the proxy's).
    context = ssl.create_default_context() if endpoint.url.startswith("https:") else None
    return httpx.Proxy(endpoint.url, auth=auth, ssl_context=context)


def proxy_for_url(rules: ProxyRules, url: httpx.URL | str) -> ProxyEndpoint | None:
    parsed = httpx.URL(url) if isinstance(url, str) else url
    return rules.for_url(parsed.scheme, parsed.host, parsed.port)


def _endpoints(rules: ProxyRules) -> list[ProxyEndpoint]:
    found: list[ProxyEndpoint] = []
    for endpoint in (rules.https, rules.http):
        if endpoint is not None and endpoint not in found:
            found.append(endpoint)
    return found


class ProxyRouter(httpx.BaseTransport):
    """The direct transport, or the one of the proxy that ``rules`` names for the request's URL."""

    def __init__(self, direct: httpx.HTTPTransport, rules: ProxyRules,
                 make: Callable[[ProxyEndpoint], httpx.HTTPTransport]) -> None:
        self._direct = direct
        self._rules = rules
        # Built up front: a missing proxy password is a resolution error, not a mid-request one.
        self._proxied: Mapping[ProxyEndpoint, httpx.HTTPTransport] = {e: make(e) for e in _endpoints(rules)}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = proxy_for_url(self._rules, request.url)
        transport = self._direct if endpoint is None else self._proxied[endpoint]
        return transport.handle_request(request)

    def close(self) -> None:
        self._direct.close()
        for transport in self._proxied.values():
            transport.close()


class AsyncProxyRouter(httpx.AsyncBaseTransport):
    def __init__(self, direct: httpx.AsyncBaseTransport, rules: ProxyRules,
                 make: Callable[[ProxyEndpoint], httpx.AsyncHTTPTransport]) -> None:
        self._direct = direct
        self._rules = rules
        self._proxied: Mapping[ProxyEndpoint, httpx.AsyncHTTPTransport] = {e: make(e) for e in _endpoints(rules)}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = proxy_for_url(self._rules, request.url)
        transport = self._direct if endpoint is None else self._proxied[endpoint]
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._direct.aclose()
        for transport in self._proxied.values():
            await transport.aclose()


class _HandshakeDone(Exception):
    """Ends the diagnostic connection as soon as its handshake is done: nothing is sent."""


def presented_chain(url: str, resolved: ResolvedConnection, *, timeout_s: float) -> list[x509.Certificate]:
    """The certificates the server at ``url`` presents through the connection's proxy (leaf first),
    read with verification off and no client certificate; empty when no handshake completes. For
    the diagnosis of a certificate that does not verify through a proxy (TLS interception)."""
    from flowrun._transport._http import new_client  # _http builds on this module

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    seen: list[bytes] = []

    def trace(event: str, info: Mapping[str, Any]) -> None:
        if event.endswith("start_tls.complete") and info.get("return_value") is not None:
            stream = info["return_value"]
            seen.extend(_unverified_chain(stream.get_extra_info("ssl_object")))
            stream.close()  # httpcore does not hold this stream yet: it would be left open
            raise _HandshakeDone

    with new_client(context, connect_to=resolved.connect_to, proxy=resolved.proxy,
                    timeout=httpx.Timeout(timeout_s)) as client, \
            contextlib.suppress(httpx.HTTPError, _HandshakeDone, OSError, ssl.SSLError):
        client.get(url, extensions={"trace": trace})
    from cryptography import x509

    chain: list[x509.Certificate] = []
    for der in seen:
        with contextlib.suppress(ValueError):
            chain.append(x509.load_der_x509_certificate(der))
    return chain


def _unverified_chain(ssl_object: Any) -> list[bytes]:
    """The chain as the server sent it (Python 3.13: public; 3.10-3.12: on the low-level object),
    else the leaf alone."""
    if ssl_object is None:
        return []
    for owner in (ssl_object, getattr(ssl_object, "_sslobj", None)):
        getter = getattr(owner, "get_unverified_chain", None)
        if getter is not None:
            with contextlib.suppress(ssl.SSLError, ValueError):
                chain = [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                         for c in getter() or ()]
                if chain:
                    return chain
    leaf = ssl_object.getpeercert(True)
    return [leaf] if leaf else []
