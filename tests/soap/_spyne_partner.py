"""A partner built on Spyne, a real SOAP server library, behind a TLS server that requires client
certificates.

Spyne generates the WSDL and the replies itself: nothing here writes XML. Two applications share
one service definition:

* ``/soap11``: SOAP 1.1, document/literal wrapped (``AddResponse`` > ``AddResult``);
* ``/soap12``: the same service in SOAP 1.2.

The service: ``Add`` (integers), ``Greet`` (a string with one child), ``Convert`` (xs:decimal
round trip, multiplied by a rate so the value is computed, not echoed), and ``Divide``, which
raises a client fault with a code, a string and a detail element when dividing by zero.
"""

from __future__ import annotations

import decimal
import socketserver
import ssl
import threading
import time
import wsgiref.simple_server
from collections.abc import Callable
from typing import Any

import attrs
from spyne import Application, Decimal, Fault, Integer, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11, Soap12
from spyne.server.wsgi import WsgiApplication

from tests.soap._canned import mtls_server_context

NAMESPACE = "urn:flowrun:test:calculator"
RATE = decimal.Decimal("1.10")
FAULT_CODE = "Client.DivisionByZero"
FAULT_STRING = "cannot divide 7 by zero"


class CalculatorService(ServiceBase):
    """Spyne names each operation after its method: Add, Greet, Convert, Divide."""

    @rpc(Integer, Integer, _returns=Integer)
    def Add(ctx: Any, a: int, b: int) -> int:
        return a + b

    @rpc(Unicode, _returns=Unicode)
    def Greet(ctx: Any, name: str) -> str:
        return f"Hello, {name}!"

    @rpc(Decimal, _returns=Decimal)
    def Convert(ctx: Any, amount: decimal.Decimal) -> decimal.Decimal:
        return amount * RATE

    @rpc(Integer, Integer, _returns=Integer)
    def Divide(ctx: Any, a: int, b: int) -> int:
        if b == 0:
            # A dict: Spyne's SOAP 1.2 protocol takes no other form of detail.
            detail = {"DivisionDetail": {"dividend": str(a)}}
            raise Fault(faultcode=FAULT_CODE, faultstring=f"cannot divide {a} by zero", detail=detail)
        return a // b


def _application(name: str, protocol: Callable[..., Any]) -> WsgiApplication:
    app = Application([CalculatorService], tns=NAMESPACE, name=name,
                      in_protocol=protocol(validator="lxml"), out_protocol=protocol())
    return WsgiApplication(app)


@attrs.frozen
class Arrival:
    """A request as it reached the server: method, path, query and ``time.monotonic()``."""

    method: str
    path: str
    query: str
    at: float


class _Router:
    """One WSGI app per path prefix; every request's arrival is recorded."""

    def __init__(self) -> None:
        self._apps = {"/soap11": _application("Calculator", Soap11), "/soap12": _application("Calculator12", Soap12)}
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        arrival = Arrival(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""),
                          environ.get("QUERY_STRING", ""), time.monotonic())
        with self._lock:
            self.arrivals.append(arrival)
        app = self._apps.get(environ.get("PATH_INFO", ""))
        if app is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such service"]
        return app(environ, start_response)


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TlsWsgiServer(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True
    block_on_close = True

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self.client_certs: list[bytes] = []
        super().__init__(("127.0.0.1", 0), _QuietHandler)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        tls = self._context.wrap_socket(sock, server_side=True)
        certificate = tls.getpeercert(binary_form=True)
        if certificate is not None:
            self.client_certs.append(certificate)
        return tls, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client refused during the handshake is what some tests want


class SpynePartner:
    """Spyne's calculator on https://localhost:PORT/soap11 and /soap12, client certificate required."""

    def __init__(self, pki: Any) -> None:
        self._server = _TlsWsgiServer(mtls_server_context(pki))
        self._router = _Router()
        self._server.set_app(self._router)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"https://localhost:{self._server.server_address[1]}"

    @property
    def client_certs(self) -> list[bytes]:
        return list(self._server.client_certs)

    @property
    def arrivals(self) -> list[Arrival]:
        """Every request the server received, in order of arrival."""
        return list(self._router.arrivals)

    def __enter__(self) -> SpynePartner:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
