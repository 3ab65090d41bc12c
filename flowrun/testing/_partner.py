"""An embedded partner API on loopback: REST (JSON) and the Ledger SOAP service over mutual TLS.

``PartnerServer`` runs a threading HTTP/1.1 server in a daemon thread. Each connection is
wrapped with TLS when accepted but shakes hands in its own worker thread, so a slow or hostile
client never stalls the accept loop. The server records what it saw (handshakes, handshake
failures with their reason, client certificates, requests) for tests to assert on.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import hashlib
import hmac
import http.server
import json
import re
import secrets
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

import attrs
from cryptography import x509

from flowrun.testing import _soap_service
from flowrun.testing._pki import CertifiedKey, Pki, certificates_pem, load_identity_into

_TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_MAX_BODY_BYTES = 64 << 20
_MAX_SLOW_MS = 60_000
_MAX_LARGE_BYTES = 1 << 31
_CHUNK = 64 << 10
_HANDSHAKE_TIMEOUT_S = 10.0
_BALANCE = 1234.5
_UNKNOWN_ACCOUNT = "0"
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}

DEFAULT_OAUTH_CLIENTS: Mapping[str, str] = {"demo-client": "demo-secret"}
DEFAULT_API_KEYS: frozenset[str] = frozenset({"demo-api-key"})


@attrs.frozen
class RecordedRequest:
    """One request as the partner received it. ``path`` is raw (no query); ``query`` and
    ``headers`` keep order and duplicates."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    client_cert_sha256: str | None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


@attrs.frozen
class _Reply:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    # Sent with chunked transfer encoding instead of ``body``.
    stream: Iterable[bytes] | None = None


class PartnerServer:
    """A partner API on ``host`` speaking HTTPS with the PKI's server certificate.

    Use as a context manager (or ``start()`` / ``close()``). ``url`` names ``localhost`` so it
    matches the server certificate. With ``require_client_cert=False`` a client certificate is
    still requested and checked when sent, but may be omitted. ``trusted_client_cas`` defaults
    to the PKI's root: a client must send its intermediate along with its certificate.
    """

    def __init__(
        self,
        pki: Pki,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        require_client_cert: bool = True,
        tls_versions: Sequence[str] = ("1.2", "1.3"),
        trusted_client_cas: Sequence[x509.Certificate] | None = None,
        server_identity: CertifiedKey | None = None,
        oauth_clients: Mapping[str, str] | None = None,
        api_keys: Collection[str] | None = None,
        token_lifetime_s: int = 3600,
    ) -> None:
        self._context = _server_context(
            server_identity or pki.server,
            require_client_cert=require_client_cert,
            tls_versions=tls_versions,
            trusted=trusted_client_cas if trusted_client_cas is not None else (pki.root,),
        )
        self._host = host
        self._requested_port = port
        self._oauth_clients = dict(DEFAULT_OAUTH_CLIENTS if oauth_clients is None else oauth_clients)
        self._api_keys = frozenset(DEFAULT_API_KEYS if api_keys is None else api_keys)
        self._token_lifetime_s = token_lifetime_s
        self._ledger = _soap_service.LedgerService()
        self._shapes = _soap_service.ShapesService()
        self._httpd: _TlsHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self._connections: set[ssl.SSLSocket] = set()
        self._handshakes = 0
        self._handshake_failures: list[str] = []
        self._client_certs: list[str] = []
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._attempts: dict[tuple[str, str], int] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._tokens_issued = 0
        self._transfer_ids = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PartnerServer:
        if self._httpd is not None:
            raise RuntimeError("partner server already started")
        self._stopping.clear()
        httpd = _TlsHttpServer((self._host, self._requested_port), self)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"flowrun-partner-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, end open connections, and wait for every worker thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        self._stopping.set()
        with self._changed:
            for connection in self._connections:
                # The plain socket's shutdown wakes a worker blocked in a TLS read or write;
                # SSLSocket.shutdown would drop the TLS object under its feet.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(connection, socket.SHUT_RDWR)
        httpd.server_close()
        thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> PartnerServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- what tests read ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("partner server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = "localhost" if self._host in ("127.0.0.1", "localhost") else self._host
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    @property
    def handshakes(self) -> int:
        """Completed TLS handshakes (one per connection)."""
        with self._changed:
            return self._handshakes

    @property
    def handshake_failures(self) -> list[str]:
        """The reason of each failed handshake: ``PEER_DID_NOT_RETURN_A_CERTIFICATE``,
        ``CERTIFICATE_VERIFY_FAILED: certificate has expired``, ``SERVER_STOPPING``..."""
        with self._changed:
            return list(self._handshake_failures)

    @property
    def client_certs(self) -> list[str]:
        """SHA-256 (hex, of the DER) of the client certificate of each connection that sent one."""
        with self._changed:
            return list(self._client_certs)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._requests)

    @property
    def tokens_issued(self) -> int:
        with self._changed:
            return self._tokens_issued

    @property
    def access_tokens(self) -> list[str]:
        """Every access token issued so far (a test checks none of them leaks into output)."""
        with self._changed:
            return list(self._tokens)

    @property
    def errors(self) -> list[str]:
        """Exceptions that ended a connection after its handshake (client gone, reset...)."""
        with self._changed:
            return list(self._errors)

    def attempts(self, route: Literal["flaky", "retry-after"], key: str) -> int:
        """How many requests ``/flaky/{key}`` or ``/retry-after/{key}`` have received."""
        with self._changed:
            return self._attempts.get((route, key), 0)

    def wait_until(self, predicate: Callable[[PartnerServer], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(self)`` holds (checked whenever the server records something).

        A client can see a TLS alert before the server's worker thread has recorded the
        failure; wait here rather than sleeping. Returns the predicate's last value.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    # --- called from worker threads ----------------------------------------------------------

    def _track(self, connection: ssl.SSLSocket) -> None:
        with self._changed:
            self._connections.add(connection)

    def _untrack(self, connection: ssl.SSLSocket) -> None:
        with self._changed:
            self._connections.discard(connection)

    def _handshake(self, connection: ssl.SSLSocket) -> bool:
        if self._stopping.is_set():
            self._note(self._handshake_failures, "SERVER_STOPPING")
            return False
        try:
            connection.settimeout(_HANDSHAKE_TIMEOUT_S)
            connection.do_handshake()
        except ssl.SSLError as exc:
            reason = exc.reason or type(exc).__name__
            if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
                reason = f"{reason}: {exc.verify_message}"
            self._note(self._handshake_failures, reason)
            return False
        except OSError as exc:
            self._note(self._handshake_failures, type(exc).__name__)
            return False
        der = connection.getpeercert(binary_form=True)
        with self._changed:
            self._handshakes += 1
            if der:
                self._client_certs.append(_sha256(der))
            self._changed.notify_all()
        return True

    def _note(self, target: list[str], text: str) -> None:
        with self._changed:
            target.append(text)
            self._changed.notify_all()

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def _count_attempt(self, route: str, key: str) -> int:
        with self._changed:
            count = self._attempts.get((route, key), 0) + 1
            self._attempts[(route, key)] = count
            return count

    # --- routes ------------------------------------------------------------------------------

    def _respond(self, request: RecordedRequest) -> _Reply:
        path = request.path
        base = ""
        if path == "/v2" or path.startswith("/v2/"):
            base, path = "/v2", path[3:] or "/"
        if path == "/secure" or path.startswith("/secure/"):
            if not self._api_key_ok(request):
                return _error(401, "invalid_api_key", "send a valid X-API-Key header")
            path = path[len("/secure"):] or "/"
        if path == "/protected" or path.startswith("/protected/"):
            client_id = self._bearer_client(request)
            if client_id is None:
                return _error(401, "invalid_token", "send Authorization: Bearer <token from /oauth/token>",
                              headers=(("WWW-Authenticate", 'Bearer error="invalid_token"'),))
            inner = path[len("/protected"):] or "/"
            return self._route(request, inner, base) or _json(
                200, {"protected": True, "path": inner, "client_id": client_id}
            )
        reply = self._route(request, path, base)
        return reply or _error(404, "not_found", f"no route for {request.method} {request.path}")

    def _route(self, request: RecordedRequest, path: str, base: str) -> _Reply | None:
        method = request.method
        query = dict(request.query)
        if path == "/echo" or path.startswith("/echo/"):
            return _echo(request)
        if match := re.fullmatch(r"/accounts/([^/]+)", path):
            if method not in ("GET", "HEAD"):
                return _method_not_allowed("GET")
            return _account(unquote(match[1]), query.get("currency", "EUR"))
        if match := re.fullmatch(r"/accounts/([^/]+)/transfers", path):
            if method != "POST":
                return _method_not_allowed("POST")
            return self._transfer(unquote(match[1]), request.body)
        if match := re.fullmatch(r"/status/(\d{3})", path):
            return _status(int(match[1]))
        if match := re.fullmatch(r"/flaky/([^/]+)", path):
            attempt = self._count_attempt("flaky", unquote(match[1]))
            if attempt <= _int(query, "fail", 1):
                status = _int(query, "status", 503)
                return _json(status, {"attempt": attempt, "failing": True})
            return _json(200, {"attempt": attempt, "failing": False})
        if match := re.fullmatch(r"/retry-after/([^/]+)", path):
            attempt = self._count_attempt("retry-after", unquote(match[1]))
            if attempt <= _int(query, "fail", 1):
                after = _int(query, "after", 1)
                value = (email.utils.formatdate(time.time() + after, usegmt=True)
                         if query.get("form") == "date" else str(after))
                return _json(429, {"attempt": attempt, "retry_after": value},
                             headers=(("Retry-After", value),))
            return _json(200, {"attempt": attempt})
        if path == "/slow":
            ms = min(max(_int(query, "ms", 1000), 0), _MAX_SLOW_MS)
            self._stopping.wait(ms / 1000)
            return _json(200, {"slept_ms": ms})
        if path == "/large":
            size = min(max(_int(query, "bytes", 1 << 20), 0), _MAX_LARGE_BYTES)
            return _Reply(200, content_type="application/octet-stream", stream=_filler(size))
        if path == "/redirect":
            status = _int(query, "status", 302)
            if status not in _REDIRECT_STATUSES:
                return _error(400, "bad_status", f"status must be one of {sorted(_REDIRECT_STATUSES)}")
            target = query.get("to", f"{base}/echo")
            return _json(status, {"location": target}, headers=(("Location", target),))
        if path == "/xml":
            return _Reply(200, _xml_document(query.get("account", "42")), "application/xml; charset=utf-8")
        if path == "/oauth/token":
            return self._token(request)
        return self._soap_route(request, path, base)

    def _soap_route(self, request: RecordedRequest, path: str, base: str) -> _Reply | None:
        if path == "/ledger":
            if request.method == "POST":
                reply = self._ledger.handle(request.body)
                return _Reply(reply.status, reply.body, reply.content_type)
            if any(key.lower() == "wsdl" for key, _ in request.query):
                wsdl = _soap_service.wsdl_document(f"{self.url}{base}/ledger")
                return _Reply(200, wsdl, _soap_service.CONTENT_TYPE)
            return _method_not_allowed("POST")
        if path == "/ledger.xsd":
            return _Reply(200, _soap_service.xsd_document(), _soap_service.CONTENT_TYPE)
        if path == "/shapes":
            if request.method == "POST":
                reply = self._shapes.handle(request.body)
                return _Reply(reply.status, reply.body, reply.content_type)
            if any(key.lower() == "wsdl" for key, _ in request.query):
                wsdl = _soap_service.shapes_wsdl_document(f"{self.url}{base}/shapes")
                return _Reply(200, wsdl, _soap_service.CONTENT_TYPE)
            return _method_not_allowed("POST")
        if path == "/ledger-hostile":
            kind = dict(request.query).get("kind", "")
            if kind not in _soap_service.HOSTILE_KINDS:
                return _error(400, "bad_kind", f"kind must be one of {list(_soap_service.HOSTILE_KINDS)}")
            body = _soap_service.hostile_response(kind, dtd_url=f"{self.url}{base}/hostile.dtd")
            return _Reply(200, body, _soap_service.CONTENT_TYPE)
        if path == "/hostile.dtd":
            return _Reply(200, _soap_service.HOSTILE_DTD, "application/xml-dtd")
        return None

    def _transfer(self, account: str, body: bytes) -> _Reply:
        if account == _UNKNOWN_ACCOUNT:
            return _error(404, "account_not_found", f"account {account} does not exist")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return _error(400, "invalid_body", "the body must be a JSON object")
        amount = payload.get("amount") if isinstance(payload, dict) else None
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
            return _error(400, "invalid_amount", "amount must be a positive number")
        with self._changed:
            self._transfer_ids += 1
            transfer_id = f"tr-{self._transfer_ids:06d}"
        return _json(201, {"id": transfer_id, "account": account, "amount": amount,
                           "currency": payload.get("currency", "EUR"), "status": "accepted"})

    def _token(self, request: RecordedRequest) -> _Reply:
        if request.method != "POST":
            return _method_not_allowed("POST")
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type"})
        client_id, secret = _basic_credentials(request) or (form.get("client_id"), form.get("client_secret"))
        expected = self._oauth_clients.get(client_id or "")
        if expected is None or secret is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            return _json(401, {"error": "invalid_client"},
                         headers=(("WWW-Authenticate", 'Basic realm="flowrun-partner"'),))
        token = secrets.token_urlsafe(24)
        with self._changed:
            self._tokens[token] = (client_id or "", time.monotonic() + self._token_lifetime_s)
            self._tokens_issued += 1
            self._changed.notify_all()
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer",
                                "expires_in": self._token_lifetime_s}
        if "scope" in form:
            body["scope"] = form["scope"]
        return _json(200, body, headers=(("Cache-Control", "no-store"),))

    def _bearer_client(self, request: RecordedRequest) -> str | None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._changed:
            issued = self._tokens.get(token.strip())
        if issued is None or issued[1] < time.monotonic():
            return None
        return issued[0]

    def _api_key_ok(self, request: RecordedRequest) -> bool:
        sent = (request.header("X-API-Key") or "").encode()
        return any(hmac.compare_digest(sent, key.encode()) for key in self._api_keys)


# --- the HTTP server and its handler -----------------------------------------------------------


class _TlsHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog (5) drops the SYNs of a burst of clients (100 flows starting
    # at once): they stall in TCP retransmits and time out connecting.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], partner: PartnerServer) -> None:
        self.partner = partner
        self._workers: list[threading.Thread] = []
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _PartnerHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[Any, Any]:
        plain, address = self.socket.accept()
        try:
            # Handshake later, in the worker thread (see finish_request).
            connection = self.partner._context.wrap_socket(
                plain, server_side=True, do_handshake_on_connect=False
            )
        except OSError:
            plain.close()
            raise
        self.partner._track(connection)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn joins only non-daemon workers on close; daemon workers never hold up
        # interpreter exit, so track them here and join them in server_close.
        worker = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self._workers = [t for t in self._workers if t.is_alive()]
        self._workers.append(worker)
        worker.start()

    def server_close(self) -> None:
        super().server_close()
        for worker in self._workers:
            worker.join()
        self._workers = []

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.partner._handshake(request):
            super().finish_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.partner._untrack(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        self.partner._note(self.partner._errors, f"{type(exc).__name__}: {exc}")


class _PartnerHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection ends on its own after this long.
    timeout = 60
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK stall every keep-alive response by ~40 ms.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        der = self.connection.getpeercert(binary_form=True)
        self.client_cert_sha256 = _sha256(der) if der else None

    @property
    def partner(self) -> PartnerServer:
        server = self.server
        assert isinstance(server, _TlsHttpServer)
        return server.partner

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self._send(_error(413 if "large" in str(exc) else 400, "bad_body", str(exc)))
            return
        split = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=tuple(parse_qsl(split.query, keep_blank_values=True)),
            headers=tuple(self.headers.items()),
            body=body,
            client_cert_sha256=self.client_cert_sha256,
        )
        self.partner._record(request)
        try:
            reply = self.partner._respond(request)
        except Exception as exc:  # a bug here must reach the client, not kill the connection
            reply = _error(500, "partner_error", f"{type(exc).__name__}: {exc}")
        self._send(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _dispatch

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise ValueError("Content-Length is not a number") from None
        if length < 0 or length > _MAX_BODY_BYTES:
            raise ValueError("body too large or negative length")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ValueError("malformed chunk size") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers are ignored
                return b"".join(parts)
            total += size
            if total > _MAX_BODY_BYTES:
                raise ValueError("body too large")
            parts.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.content_type is not None:
            self.send_header("Content-Type", reply.content_type)
        if self.close_connection:
            self.send_header("Connection", "close")
        with_body = self.command != "HEAD" and reply.status not in (204, 304)
        if reply.stream is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if with_body:
                for chunk in reply.stream:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            return
        if reply.status not in (204, 304):
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if with_body:
            self.wfile.write(reply.body)

    def version_string(self) -> str:
        return "flowrun-partner"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are recorded, not logged


# --- helpers -----------------------------------------------------------------------------------


def _server_context(
    identity: CertifiedKey,
    *,
    require_client_cert: bool,
    tls_versions: Sequence[str],
    trusted: Sequence[x509.Certificate | CertifiedKey],
) -> ssl.SSLContext:
    unknown = sorted(set(tls_versions) - set(_TLS_VERSIONS))
    if unknown or not tls_versions:
        raise ValueError(f"tls_versions must be a non-empty subset of {sorted(_TLS_VERSIONS)}")
    versions = sorted(_TLS_VERSIONS[v] for v in tls_versions)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version, context.maximum_version = versions[0], versions[-1]
    load_identity_into(context, identity)
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    certificates = [t.certificate if isinstance(t, CertifiedKey) else t for t in trusted]
    if certificates:
        context.load_verify_locations(cadata=certificates_pem(certificates).decode())
    return context


def _sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _json(status: int, payload: object, *, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), "application/json", headers)


def _error(status: int, code: str, message: str, *, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    return _json(status, {"error": {"code": code, "message": message}}, headers=headers)


def _method_not_allowed(allowed: str) -> _Reply:
    return _error(405, "method_not_allowed", f"use {allowed}", headers=(("Allow", allowed),))


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        return default


def _account(account: str, currency: str) -> _Reply:
    if account == _UNKNOWN_ACCOUNT:
        return _error(404, "account_not_found", f"account {account} does not exist")
    return _json(200, {"account": account, "balance": _BALANCE, "currency": currency})


def _status(status: int) -> _Reply:
    if not 200 <= status <= 599:
        return _error(400, "bad_status", "status must be between 200 and 599")
    if status in (204, 304):
        return _Reply(status, content_type=None)
    return _json(status, {"status": status})


def _echo(request: RecordedRequest) -> _Reply:
    try:
        text: str | None = request.body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    reply = _json(200, {
        "method": request.method,
        "path": request.path,
        "query": [list(pair) for pair in request.query],
        "headers": [list(pair) for pair in request.headers],
        "body_base64": base64.b64encode(request.body).decode(),
        "body_text": text,
        "content_type": request.header("Content-Type"),
        "client_cert_sha256": request.client_cert_sha256,
    })
    if text is not None and (request.header("Content-Type") or "").startswith("application/json"):
        try:
            json.loads(text)
        except ValueError:
            return reply
        # A JSON body comes back as "json", byte for byte: its numbers keep every digit.
        return _Reply(200, reply.body[:-1] + b', "json": ' + text.encode() + b"}", "application/json")
    return reply


def _basic_credentials(request: RecordedRequest) -> tuple[str, str] | None:
    scheme, _, encoded = (request.header("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    # RFC 6749 2.3.1: both parts are form-urlencoded before Basic encoding.
    return (unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))) if sep else None


def _filler(size: int) -> Iterator[bytes]:
    block = (b"flowrun-partner-" * (_CHUNK // 16))[:_CHUNK]
    while size > 0:
        piece = block[: min(size, _CHUNK)]
        size -= len(piece)
        yield piece


def _xml_document(account: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<acc:account xmlns:acc="urn:flowrun:accounts:1">'
        f"<acc:id>{escape(account)}</acc:id>"
        '<acc:balance currency="EUR">1234.50</acc:balance>'
        "<acc:owner><acc:name>Demo Customer</acc:name></acc:owner>"
        "</acc:account>\n"
    ).encode()
