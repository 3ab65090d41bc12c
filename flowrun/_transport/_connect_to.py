"""Dial another address than the URL's host:port, keeping SNI, certificate checks and Host.

This is curl's ``--connect-to``: a partner's alias stays as written (``api.bank.example:8443``)
while the TCP connection goes to a local or staging copy of the partner. httpx has no option
for it; httpcore takes a network backend, and only ``connect_tcp`` needs to change.
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


def apply_connect_to(transport: httpx.HTTPTransport | httpx.AsyncHTTPTransport,
                     mapping: Mapping[Address, Address]) -> None:
    """Route the transport's new connections through ``mapping`` (host lower-cased)."""
    if not mapping:
        return
    pool = transport._pool
    if isinstance(transport, httpx.AsyncHTTPTransport):
        pool._network_backend = _AsyncConnectTo(mapping)
    else:
        pool._network_backend = _SyncConnectTo(mapping)
