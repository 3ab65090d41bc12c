"""Dial another address than the URL's host:port, keeping SNI, certificate checks and Host.

This is curl's ``--connect-to``: a partner's alias stays as written (``api.bank.example:8443``)
while the TCP connection goes to a local or staging copy of the partner. httpx has no option
for it; httpcore takes a network backend, and only ``connect_tcp`` needs to change.

Through a proxy we never dial the partner: the proxy does. There the mapped address is what the
proxy is asked for (the CONNECT target, ``CONNECT 127.0.0.1:9443``), while TLS inside the tunnel
still names the partner's host (SNI and the certificate check), as without a proxy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpcore
import httpx

Address = tuple[str, int]


class _SyncConnectTo(httpcore.NetworkBackend):
    def __init__(self, mapping: Mapping[Address, Address]) -> None:
        self._mapping = dict(mapping)
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        host, port = self._mapping.get((host.lower(), port), (host, port))
        return self._backend.connect_tcp(host, port, timeout, local_address, socket_options)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return self._backend.connect_unix_socket(path, timeout, socket_options)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _AsyncConnectTo(httpcore.AsyncNetworkBackend):
    def __init__(self, mapping: Mapping[Address, Address]) -> None:
        self._mapping = dict(mapping)
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        host, port = self._mapping.get((host.lower(), port), (host, port))
        return await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        return await self._backend.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def _retargeted(request: httpcore.Request, origin: httpcore.Origin, target: Address) -> httpcore.Request:
    """``request`` to the proxy with the partner's address replaced by ``target``: the CONNECT
    target (``host:port``), or the authority of a plain-http request's absolute URL (whose Host
    header the proxy then sets from that authority, as HTTP requires)."""
    host, port = target
    authority = (f"[{host}]" if ":" in host else host).encode("ascii") + b":%d" % port
    url = request.url
    if request.method == b"CONNECT":
        new_target = authority
        headers = [(k, authority if k.lower() == b"host" else v) for k, v in request.headers]
    else:
        scheme, _, rest = url.target.partition(b"://")
        _, slash, path = rest.partition(b"/")
        new_target = scheme + b"://" + authority + slash + path
        headers = list(request.headers)
    return httpcore.Request(request.method, httpcore.URL(scheme=url.scheme, host=url.host, port=url.port,
                                                         target=new_target),
                            headers=headers, content=request.stream, extensions=request.extensions)


class _Delegating:
    """The state questions the pool asks a connection, answered by the wrapped one (sync or async alike)."""

    _inner: httpcore.ConnectionInterface | httpcore.AsyncConnectionInterface

    def info(self) -> str:
        return self._inner.info()

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return self._inner.can_handle_request(origin)

    def is_available(self) -> bool:
        return self._inner.is_available()

    def has_expired(self) -> bool:
        return self._inner.has_expired()

    def is_idle(self) -> bool:
        return self._inner.is_idle()

    def is_closed(self) -> bool:
        return self._inner.is_closed()


class _SyncRetarget(_Delegating, httpcore.ConnectionInterface):
    """The connection to the proxy, asking it for ``target`` instead of the partner's address."""

    _inner: httpcore.ConnectionInterface

    def __init__(self, inner: httpcore.ConnectionInterface, origin: httpcore.Origin, target: Address) -> None:
        self._inner, self._origin, self._target = inner, origin, target

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        return self._inner.handle_request(_retargeted(request, self._origin, self._target))

    def close(self) -> None:
        self._inner.close()


class _AsyncRetarget(_Delegating, httpcore.AsyncConnectionInterface):
    _inner: httpcore.AsyncConnectionInterface

    def __init__(self, inner: httpcore.AsyncConnectionInterface, origin: httpcore.Origin, target: Address) -> None:
        self._inner, self._origin, self._target = inner, origin, target

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        return await self._inner.handle_async_request(_retargeted(request, self._origin, self._target))

    async def aclose(self) -> None:
        await self._inner.aclose()


def _retarget_proxy_requests(pool: Any, mapping: Mapping[Address, Address], wrapper: type[Any]) -> None:
    """Through a proxy the partner's address is only named, in the CONNECT request (or the
    absolute URL of a plain-http request): ``--connect-to`` changes what is named there. TLS
    inside the tunnel still uses the partner's host name (SNI, certificate check)."""
    create = pool.create_connection

    def create_connection(origin: httpcore.Origin) -> Any:
        connection = create(origin)
        target = mapping.get((origin.host.decode("ascii").lower(), origin.port))
        if target is not None:
            # Tunnel and forward connections talk to the proxy through ``_connection`` (httpcore
            # 1.0); a tunnel replaces it by the TLS connection once CONNECT succeeded.
            connection._connection = wrapper(connection._connection, origin, target)
        return connection

    pool.create_connection = create_connection


def apply_connect_to(transport: httpx.HTTPTransport | httpx.AsyncHTTPTransport,
                     mapping: Mapping[Address, Address]) -> None:
    """Route the transport's new connections through ``mapping`` (host lower-cased). Through a
    proxy the proxy is dialled as usual and asked for the mapped address instead."""
    if not mapping:
        return
    pool = transport._pool
    if isinstance(pool, httpcore.HTTPProxy):
        _retarget_proxy_requests(pool, mapping, _SyncRetarget)
    elif isinstance(pool, httpcore.AsyncHTTPProxy):
        _retarget_proxy_requests(pool, mapping, _AsyncRetarget)
    if isinstance(transport, httpx.AsyncHTTPTransport):
        pool._network_backend = _AsyncConnectTo(mapping)
    else:
        pool._network_backend = _SyncConnectTo(mapping)
