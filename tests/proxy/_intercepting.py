"""A hostile proxy that intercepts TLS: it answers CONNECT, then terminates TLS itself with a
certificate for the requested host issued by its own CA (as TLS-inspecting corporate proxies do)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading

from flowrun.testing import CertifiedKey
from flowrun.testing._pki import load_identity_into


class InterceptingProxy:
    def __init__(self, identity: CertifiedKey) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        load_identity_into(self._context, identity)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.connect_targets: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stopping = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> InterceptingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            client.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target = request_line.split()[:2]
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            self.connect_targets.append(target)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            try:
                with self._context.wrap_socket(client, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                return
