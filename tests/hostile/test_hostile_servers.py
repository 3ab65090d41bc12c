"""Hostile partners: every way a server can misbehave ends in a specific flowrun error, in
bounded time and memory, without a traceback, and the step still gets its result.

Each case runs against a real loopback server (TLS, verifying our client certificate) through
the sync and the async REST executor; the SOAP transport gets the body cases too, and
``test_cli_*`` run each case once through ``python -m flowrun run``. Servers stop by themselves
(see ``tests/hostile/_servers.py``); time is bounded by what the errors say (the total deadline
of an attempt names itself), never by a clock in the test.

Covered elsewhere, not repeated here: XXE, billion laughs and an external DTD in a SOAP reply
(``tests/soap/test_soap_executor.py::test_hostile_replies_are_refused``), a local WSDL or XSD with
a DTD (``::test_a_wsdl_or_schema_with_a_dtd_is_refused``), imports from other hosts or from
outside the WSDL's folder (``::test_imports_outside_the_allowed_places_are_refused``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowrun._errors import (
    AuthenticationError,
    ClientCertNotSentError,
    ClientCertRejectedError,
    ConnectionLostError,
    FlowrunError,
    ProtocolError,
    RedirectRefusedError,
    RenegotiationRefusedError,
    RequestTimeoutError,
    ResponseParseError,
    ResponseTooLargeError,
    UnsafeXmlError,
)
from flowrun._models._aliases import Credential
from flowrun._models._results import StepResult
from flowrun._models._secret import SecretRef
from flowrun._models._steps import ResponseSpec, RestStep, SoapStep
from flowrun._registry import Registry
from flowrun._rest import AsyncRestExecutor, RestExecutor
from flowrun._soap import SoapExecutor
from flowrun._transport._decode import SLICE, BodyDecoder
from flowrun._transport._http import new_client
from flowrun._transport._streams import ATTEMPT_DEADLINE_FACTOR
from flowrun._transport._wsdl import WSDL_CACHE
from flowrun.testing import Pki, PkiFiles, make_pki
from flowrun.testing._pki import certificates_pem
from tests.hostile._servers import (
    HostileAction,
    HostileServer,
    SServer,
    endless_chunks,
    flood,
    gzip_bomb,
    head,
    send,
    stall,
    trickle,
)
from tests.transport._support import PASSWORD, RawRequest, RawServer, Reply, Reset, make_registry
from tests.transport.conftest import server_context

REPO = Path(__file__).resolve().parents[2]
LEDGER_WSDL = REPO / "steps" / "ledger.wsdl"
LEDGER_XSD = REPO / "steps" / "ledger.xsd"
PARTNER = "partner"
WARM_UP = "/warm-up"
CAP = 1024 * 1024
# The bound on what one hostile step may allocate with a 1 MiB cap: the cap, a few slices and
# network buffers. Without bounded decoding a 64 KiB chunk of a gzip bomb alone inflates to 64 MiB.
MEMORY_BOUND = 4 * CAP
SLOW_TIMEOUT_S = 0.5  # per wait; the attempt's total deadline is ATTEMPT_DEADLINE_FACTOR times this
TRICKLE_S = 0.05  # a tenth of SLOW_TIMEOUT_S: no single read ever times out
SECRET = "hostile-secret-Zq81"
JSON = ("Content-Type", "application/json")
# A complete answer after which the script closes the connection says so: the next step then
# opens a new connection instead of racing the close on the kept-alive one.
CLOSE = ("Connection", "close")
BOMB = gzip_bomb(256 * 1024 * 1024)
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
ENVELOPE = (f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body><GetBalance xmlns="urn:flowrun:ledger:1">'
            "<account>42</account></GetBalance></soap:Body></soap:Envelope>")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def hostile_pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def hostile_files(hostile_pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return hostile_pki.write(tmp_path_factory.mktemp("hostile-pki"), keystore_password=PASSWORD)


@pytest.fixture(scope="module")
def partner_tls(hostile_pki: Pki) -> ssl.SSLContext:
    """The partner's side: our PKI's server identity, client certificates required."""
    return server_context(hostile_pki)


# --- the matrix -----------------------------------------------------------------------------------


def _chunked(*chunks: bytes) -> bytes:
    return b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks)


def _slow_step() -> dict[str, Any]:
    return {"timeout_s": SLOW_TIMEOUT_S}


@attrs.frozen
class Case:
    """What the partner answers to the hostile request, and what the step must say about it."""

    name: str
    answer: Callable[[RawRequest], HostileAction]
    error: type[FlowrunError]
    says: str  # in the message; "a|b": either
    step: dict[str, Any] = attrs.field(factory=dict)


def _loop(request: RawRequest) -> HostileAction:
    return Reply(302, b"", (("Location", "/b" if request.target.endswith("/a") else "/a"),))


CASES = [
    # A reset under TLS reads as an unclean close (sync) or as the reset it is (asyncio).
    Case("reset_before_headers", lambda r: Reset(), ConnectionLostError,
         "without sending a response|Connection reset by peer"),
    Case("reset_after_headers",
         lambda r: send(head("200 OK", JSON, ("Content-Length", "1000")) + b'{"a":', then_reset=True),
         ConnectionLostError, "received 5 bytes, expected 1000|Connection reset by peer"),
    Case("truncated_body", lambda r: send(head("200 OK", JSON, ("Content-Length", "1000")) + b'{"a":'),
         ConnectionLostError, "received 5 bytes, expected 1000"),
    Case("truncated_chunked_body",
         lambda r: send(head("200 OK", JSON, ("Transfer-Encoding", "chunked")) + _chunked(b'{"a":')),
         ConnectionLostError, "incomplete chunked read"),
    Case("endless_body",
         lambda r: endless_chunks(head("200 OK", JSON, ("Transfer-Encoding", "chunked")), b"7" * 65536),
         ResponseTooLargeError, f"cap of {CAP} bytes"),
    Case("slowloris_headers",
         lambda r: trickle(head("200 OK", JSON, ("Content-Length", "2"), ("X-Pad", "p" * 200)) + b"{}",
                           every_s=TRICKLE_S),
         RequestTimeoutError, "the partner kept sending slowly", _slow_step()),
    Case("slowloris_body",
         lambda r: trickle(b"[" + b"1," * 200 + b"1]", every_s=TRICKLE_S,
                           first=head("200 OK", JSON, ("Content-Length", "403"))),
         RequestTimeoutError, "the partner kept sending slowly", _slow_step()),
    Case("endless_informational_responses",
         lambda r: flood(b"", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"),
         RequestTimeoutError, "the partner kept sending without finishing its answer", _slow_step()),
    Case("endless_headers", lambda r: flood(b"HTTP/1.1 200 OK\r\n", b"X-Pad: " + b"p" * 60 + b"\r\n"),
         ProtocolError, "status line and headers never end"),
    Case("stalled_body", lambda r: stall(head("200 OK", JSON, ("Content-Length", "100")) + b"["),
         RequestTimeoutError, "timed out waiting for the answer", _slow_step()),
    # aiohttp stops its read timer at a 1xx answer: the attempt's deadline still ends the wait.
    Case("informational_then_silence", lambda r: stall(b"HTTP/1.1 103 Early Hints\r\n\r\n"),
         RequestTimeoutError, "timed out waiting for the answer|past the total deadline", _slow_step()),
    Case("invalid_status_line", lambda r: send(b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"),
         ProtocolError, "illegal status line"),
    Case("not_http_at_all", lambda r: send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), ProtocolError, "illegal status line"),
    Case("invalid_chunked_encoding",
         lambda r: send(head("200 OK", JSON, ("Transfer-Encoding", "chunked")) + b"zz\r\nhello\r\n0\r\n\r\n"),
         ProtocolError, "illegal chunk header"),
    Case("gzip_bomb",
         lambda r: send(head("200 OK", JSON, ("Content-Encoding", "gzip"), ("Content-Length", str(len(BOMB))))
                        + BOMB),
         ResponseTooLargeError, f"cap of {CAP} bytes"),
    Case("invalid_gzip",
         lambda r: send(head("200 OK", JSON, ("Content-Encoding", "gzip"), ("Content-Length", "9")) + b"not gzip!"),
         ProtocolError, "cannot be decoded"),
    Case("invalid_json", lambda r: send(head("200 OK", JSON, CLOSE, ("Content-Length", "12")) + b'{"a": 1,, 2}'),
         ResponseParseError, "line 1 column 9 (char 8)"),
    Case("invalid_utf8_json",
         lambda r: send(head("200 OK", JSON, CLOSE, ("Content-Length", "11")) + b'{"a": "\xff\xfe"}'),
         ResponseParseError, "can't decode byte 0xff in position 7"),
    Case("json_nested_1000_deep",
         lambda r: send(head("200 OK", JSON, CLOSE, ("Content-Length", "2000")) + b"[" * 1000 + b"]" * 1000),
         ResponseParseError, "nested more than 200 levels deep"),
    Case("json_nested_100000_deep_without_content_type",
         lambda r: send(head("200 OK", CLOSE, ("Content-Length", "200000")) + b"[" * 100_000 + b"]" * 100_000),
         ResponseParseError, "nested more than 200 levels deep"),
    Case("xml_nested_5000_deep",
         lambda r: send(head("200 OK", ("Content-Type", "text/xml"), CLOSE, ("Content-Length", str(5000 * 7 + 1)))
                        + b"<a>" * 5000 + b"1" + b"</a>" * 5000),
         ResponseParseError, "nested more than 256 elements deep"),
    Case("gzip_listed_3000_times",
         lambda r: send(head("200 OK", JSON, CLOSE, ("Content-Encoding", ", ".join(["gzip"] * 3000)),
                             ("Content-Length", "2")) + b"{}"),
         ProtocolError, "lists 3000 compressions"),
    Case("redirect_loop", _loop, RedirectRefusedError, "more than 3 redirects",
         {"follow_redirects": True, "max_redirects": 3, "path": "/a"}),
]


def _routed(answer: Callable[[RawRequest], HostileAction]) -> Callable[[RawRequest], HostileAction]:
    """A partner that answers the warm-up request normally and everything else with ``answer``."""

    def handler(request: RawRequest) -> HostileAction:
        if request.target == WARM_UP:
            return Reply(200, b'{"warm":true}')
        return answer(request)

    return handler


@attrs.frozen
class Traced:
    result: StepResult
    peak: int


def run_traced(registry: Registry, step: RestStep, *, asynchronous: bool) -> Traced:
    """Run ``step`` after a warm-up request (alias resolved, keystore loaded, connection open),
    tracing the memory the step itself allocates. The warm-up may fail (a hostile token endpoint)."""
    warm = RestStep(id="warm", alias=PARTNER, path=WARM_UP)
    if not asynchronous:
        with RestExecutor(registry) as rest:
            rest.run(warm)
            tracemalloc.start()
            try:
                result = rest.run(step)
                return Traced(result, tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()

    async def main() -> Traced:
        async with AsyncRestExecutor(registry) as rest:
            await rest.run(warm)
            tracemalloc.start()
            try:
                result = await rest.run(step)
                return Traced(result, tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()

    return asyncio.run(main())


def assert_reported(result: StepResult, case: Case) -> None:
    """The step failed with the case's error, which reads as one line and serializes."""
    assert result.status == "failed"
    assert isinstance(result.error, case.error), f"{case.name}: {result.error!r}"
    message = str(result.error)
    assert any(fragment in message for fragment in case.says.split("|")), message
    assert "\n" not in message
    assert result.error.step == "hostile"
    assert result.step_id == "hostile"
    assert len(result.attempts) == 1
    json.dumps(result.to_dict(), default=str)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_partner(case: Case, asynchronous: bool, hostile_files: PkiFiles, partner_tls: ssl.SSLContext) -> None:
    with HostileServer(_routed(case.answer), ssl_context=partner_tls) as server:
        options = {"path": "/hostile", **case.step}
        step = RestStep(id="hostile", alias=PARTNER, response=ResponseSpec(max_bytes=CAP), **options)
        traced = run_traced(make_registry(hostile_files, server.url()), step, asynchronous=asynchronous)
    assert_reported(traced.result, case)
    assert traced.peak < MEMORY_BOUND, f"{case.name}: {traced.peak} bytes"
    assert server.handshake_failures == []


def test_the_deadline_is_a_multiple_of_the_timeout(hostile_files: PkiFiles, partner_tls: ssl.SSLContext) -> None:
    case = next(c for c in CASES if c.name == "slowloris_body")
    with HostileServer(_routed(case.answer), ssl_context=partner_tls) as server:
        step = RestStep(id="hostile", alias=PARTNER, path="/hostile", **case.step)
        result = run_traced(make_registry(hostile_files, server.url()), step, asynchronous=False).result
    assert isinstance(result.error, RequestTimeoutError)
    assert f"total deadline of one attempt ({SLOW_TIMEOUT_S * ATTEMPT_DEADLINE_FACTOR:g} s)" in str(result.error)
    assert "raise timeout_s" in result.error.hint
    assert server.scripts_done == 1


def test_invalid_json_keeps_status_headers_and_an_excerpt(hostile_files: PkiFiles,
                                                           partner_tls: ssl.SSLContext) -> None:
    case = next(c for c in CASES if c.name == "invalid_json")
    with HostileServer(_routed(case.answer), ssl_context=partner_tls) as server:
        step = RestStep(id="hostile", alias=PARTNER, path="/hostile")
        result = run_traced(make_registry(hostile_files, server.url()), step, asynchronous=False).result
    assert isinstance(result.error, ResponseParseError)
    assert result.http_status == 200
    assert ("Content-Type", "application/json") in result.headers
    assert result.body == '{"a": 1,, 2}'
    assert result.to_dict()["error"]["code"] == "http.response_parse"


def test_invalid_utf8_text_is_decoded_with_replacement_characters(hostile_files: PkiFiles,
                                                                  partner_tls: ssl.SSLContext) -> None:
    body = b"caf\xe9 \xff ok"
    answer = send(head("200 OK", ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))))
                  + body)
    with HostileServer(_routed(lambda r: answer), ssl_context=partner_tls) as server:
        result = run_traced(make_registry(hostile_files, server.url()),
                            RestStep(id="text", alias=PARTNER, path="/text"), asynchronous=False).result
    assert result.status == "passed", result.error
    assert result.body == "caf\ufffd \ufffd ok"


def test_gzip_bomb_streamed_to_a_file_is_decoded_in_bounded_memory(hostile_files: PkiFiles,
                                                                   partner_tls: ssl.SSLContext,
                                                                   tmp_path: Path) -> None:
    bomb = gzip_bomb(64 * 1024 * 1024)
    answer = send(head("200 OK", ("Content-Type", "application/octet-stream"), ("Content-Encoding", "gzip"),
                       ("Content-Length", str(len(bomb)))) + bomb)
    target = tmp_path / "bomb.bin"
    with HostileServer(_routed(lambda r: answer), ssl_context=partner_tls) as server:
        step = RestStep(id="save", alias=PARTNER, path="/bomb", response=ResponseSpec(save_to=target))
        traced = run_traced(make_registry(hostile_files, server.url()), step, asynchronous=False)
    assert traced.result.status == "passed", traced.result.error
    assert target.stat().st_size == 64 * 1024 * 1024
    assert traced.peak < MEMORY_BOUND


def test_deflate_raw_and_wrapped_and_stacked_encodings_decode(hostile_files: PkiFiles,
                                                             partner_tls: ssl.SSLContext) -> None:
    payload = json.dumps({"items": list(range(50_000))}).encode()
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    gz = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    bodies = {
        "deflate": ("deflate", zlib.compress(payload)),
        "raw-deflate": ("deflate", raw.compress(payload) + raw.flush()),
        "gzip-then-deflate": ("gzip, deflate", zlib.compress(gz.compress(payload) + gz.flush())),
    }

    def answer(request: RawRequest) -> HostileAction:
        encoding, body = bodies[request.target.rsplit("/", 1)[1]]
        return Reply(200, body, (JSON, ("Content-Encoding", encoding)))

    with HostileServer(_routed(answer), ssl_context=partner_tls) as server, \
            RestExecutor(make_registry(hostile_files, server.url())) as rest:
        results = {name: rest.run(RestStep(id="enc", alias=PARTNER, path=f"/enc/{name}")) for name in bodies}
    for name, result in results.items():
        assert result.status == "passed", (name, result.error)
        assert result.body == {"items": list(range(50_000))}
    assert server.requests[0].header("Accept-Encoding") == "gzip, deflate"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("answer", ["endless_body", "gzip_bomb"])
def test_a_hostile_token_endpoint_is_read_in_bounded_memory(answer: str, asynchronous: bool,
                                                            hostile_files: PkiFiles,
                                                            partner_tls: ssl.SSLContext) -> None:
    case = next(c for c in CASES if c.name == answer)

    def partner(request: RawRequest) -> HostileAction:
        return case.answer(request) if request.target == "/oauth/token" else Reply(200, b'{"warm":true}')

    with HostileServer(partner, ssl_context=partner_tls) as server:
        oauth = Credential("oauth", "oauth2_client_credentials", token_url=f"{server.url()}/oauth/token",
                           client_id="flowrun", client_secret=SecretRef(literal=SECRET))
        registry = make_registry(hostile_files, server.url(), credentials=[oauth], credential="oauth")
        traced = run_traced(registry, RestStep(id="hostile", alias=PARTNER, path="/api"), asynchronous=asynchronous)
    # The warm-up already needed a token: it failed the same way, and so does the step.
    error = traced.result.error
    assert isinstance(error, AuthenticationError), error
    assert "sent more than 1048576 bytes" in str(error)
    assert traced.peak < MEMORY_BOUND
    assert [r.target for r in server.requests] == ["/oauth/token", "/oauth/token"]


def _encode(payload: bytes, encoding: str) -> tuple[str | None, bytes]:
    """``payload`` as a partner sends it with ``encoding`` (the header value and the bytes)."""
    def gz(data: bytes) -> bytes:
        packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        return packer.compress(data) + packer.flush()

    def raw(data: bytes) -> bytes:
        packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        return packer.compress(data) + packer.flush()

    return {
        "none": (None, payload),
        "identity": ("identity", payload),
        "gzip": ("gzip", gz(payload)),
        "x-gzip": ("x-gzip", gz(payload)),
        "deflate": ("deflate", zlib.compress(payload)),
        "raw-deflate": ("deflate", raw(payload)),
        "gzip-then-deflate": ("gzip, deflate", zlib.compress(gz(payload))),
        "unknown": ("br", payload),  # not asked for, passed through undecoded (as httpx does)
    }[encoding]


# A payload: some bytes, then a long run of one byte, which inflates to many slices from a few
# bytes on the wire (the slicing and its boundaries). Drawn as parts, to keep examples short.
PAYLOADS = st.tuples(st.binary(max_size=2048), st.integers(0, 5 * SLICE + 3), st.integers(0, 255))


@settings(max_examples=80, deadline=None)
@given(parts=PAYLOADS, encoding=st.sampled_from(["none", "identity", "gzip", "x-gzip", "deflate", "raw-deflate",
                                                   "gzip-then-deflate", "unknown"]),
       cuts=st.lists(st.integers(1, 9000), max_size=12))
def test_bounded_decoding_gives_back_the_body(parts: tuple[bytes, int, int], encoding: str,
                                              cuts: list[int]) -> None:
    prefix, run, byte = parts
    payload = prefix + bytes([byte]) * run
    header, wire = _encode(payload, encoding)
    decoder = BodyDecoder(header)
    pieces: list[bytes] = []
    start = 0
    for cut in [*cuts, len(wire)]:  # the network's chunks: any split of the bytes
        pieces.extend(decoder.feed(wire[start:start + cut]))
        start += cut
    pieces.extend(decoder.feed(wire[start:]))
    pieces.extend(decoder.flush())
    decoded = b"".join(pieces)
    assert len(decoded) == len(payload) and decoded == payload
    inflated = encoding not in ("none", "identity", "unknown")  # else the network's chunks pass as they are
    assert all(0 < len(piece) <= (SLICE if inflated else len(wire)) for piece in pieces)


# --- redirects ------------------------------------------------------------------------------------------


def _redirect_to(location: str, status: int = 307) -> Callable[[RawRequest], HostileAction]:
    return lambda request: Reply(status, b"", (("Location", location),))


def test_redirect_to_http_is_refused(hostile_files: PkiFiles, partner_tls: ssl.SSLContext) -> None:
    with RawServer() as plain, \
            HostileServer(_redirect_to(f"{plain.url()}/landing"), ssl_context=partner_tls) as server, \
            RestExecutor(make_registry(hostile_files, server.url())) as rest:
        result = rest.run(RestStep(id="hostile", alias=PARTNER, path="/start", follow_redirects=True))
    assert isinstance(result.error, RedirectRefusedError)
    assert "a downgrade from https to http is never followed" in str(result.error)
    assert plain.requests == [] and plain.connections == 0


CREDENTIALS = [
    Credential("cred", "api_key", header="X-Partner-Key", key=SecretRef(literal=SECRET)),
    Credential("cred", "bearer", token=SecretRef(literal=SECRET)),
    Credential("cred", "basic", username="svc", password=SecretRef(literal=SECRET)),
]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("credential", CREDENTIALS, ids=[c.type for c in CREDENTIALS])
def test_redirect_to_another_origin_carries_no_credential_and_no_client_certificate(
        credential: Credential, asynchronous: bool, hostile_pki: Pki, hostile_files: PkiFiles,
        partner_tls: ssl.SSLContext) -> None:
    # The other origin asks for a client certificate (and would accept ours): it records whatever is offered.
    with RawServer(ssl_context=server_context(hostile_pki, require_client_cert=False)) as other, \
            HostileServer(_routed(_redirect_to(f"{other.url()}/landing")), ssl_context=partner_tls) as server:
        registry = make_registry(hostile_files, server.url(), credentials=[credential], credential="cred")
        step = RestStep(id="hostile", alias=PARTNER, path="/start", follow_redirects=True,
                        headers={"Cookie": f"session={SECRET}", "X-Trace": "t1"})
        result = run_traced(registry, step, asynchronous=asynchronous).result
    assert result.status == "passed", result.error
    first = server.requests[-1]
    assert first.client_cert_sha256 == hostile_pki.client.sha256
    assert first.header(credential.header or "Authorization") is not None
    (landed,) = other.requests
    assert landed.target == "/landing"
    assert landed.client_cert_sha256 is None
    for name, value in landed.headers:
        assert SECRET not in value, name
        assert name.lower() not in ("authorization", "cookie", "x-partner-key")
    assert landed.header("X-Trace") == "t1"
    assert result.tls is not None and result.tls.client_cert_sha256 is None


def test_another_origin_that_demands_a_certificate_gets_none(hostile_pki: Pki, hostile_files: PkiFiles,
                                                            partner_tls: ssl.SSLContext) -> None:
    with RawServer(ssl_context=server_context(hostile_pki)) as other, \
            HostileServer(_routed(_redirect_to(f"{other.url()}/landing")), ssl_context=partner_tls) as server, \
            RestExecutor(make_registry(hostile_files, server.url())) as rest:
        result = rest.run(RestStep(id="hostile", alias=PARTNER, path="/start", follow_redirects=True))
    assert isinstance(result.error, ClientCertNotSentError), result.error
    assert other.requests == []
    assert server.requests[-1].client_cert_sha256 == hostile_pki.client.sha256


# --- TLS --------------------------------------------------------------------------------------------------


def test_our_contexts_refuse_renegotiation(hostile_files: PkiFiles) -> None:
    registry = make_registry(hostile_files, "https://localhost:1")
    context = registry.resolve(PARTNER).ssl_context
    assert context is not None
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def _s_server(files: PkiFiles, command: str, tls: str = "-tls1_2") -> SServer:
    return SServer(files.server_cert_pem, files.server_key_pem, command=command, tls=tls, chain=files.chain_pem,
                   key_password=PASSWORD)


@needs_openssl
@pytest.mark.parametrize("command", ["r", "R"], ids=["renegotiate", "renegotiate-for-client-cert"])
def test_a_renegotiation_request_is_refused(command: str, hostile_pki: Pki, hostile_files: PkiFiles) -> None:
    with _s_server(hostile_files, command) as server, \
            RestExecutor(make_registry(hostile_files, server.url())) as rest:
        result = rest.run(RestStep(id="hostile", alias=PARTNER))
    assert isinstance(result.error, RenegotiationRefusedError), result.error
    assert "asked to renegotiate the TLSv1.2 session" in str(result.error)
    assert "first handshake" in result.error.hint
    assert server.request_seen.is_set()


@needs_openssl
def test_the_renegotiation_server_really_renegotiates_with_a_willing_client(hostile_pki: Pki,
                                                                           hostile_files: PkiFiles) -> None:
    # The control: a context without OP_NO_RENEGOTIATION renegotiates and gets the answer, so the
    # refusal above is ours, not the server's failure.
    context = ssl.create_default_context(cadata=certificates_pem([hostile_pki.root.certificate]).decode())
    context.options &= ~ssl.OP_NO_RENEGOTIATION
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with _s_server(hostile_files, "r") as server, new_client(context) as client:
        response = client.get(server.url())
    # The server answers only once the renegotiation it asked for has completed.
    assert response.json() == {"ok": True}


@needs_openssl
def test_tls13_has_no_renegotiation(hostile_files: PkiFiles) -> None:
    with _s_server(hostile_files, "r", tls="-tls1_3") as server, \
            RestExecutor(make_registry(hostile_files, server.url())) as rest:
        result = rest.run(RestStep(id="tls13", alias=PARTNER))
    assert result.status == "passed", result.error
    assert result.tls is not None and result.tls.version == "TLSv1.3"
    assert any("wrong ssl version" in line for line in server.output)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_a_partner_that_accepts_no_client_certificate(version: str, hostile_pki: Pki,
                                                      hostile_files: PkiFiles) -> None:
    # The partner asks for a certificate but trusts an unrelated CA only: ours can never pass.
    refusing = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    refusing.load_cert_chain(hostile_files.server_cert_pem, hostile_files.server_key_pem, password=PASSWORD)
    refusing.verify_mode = ssl.CERT_REQUIRED
    refusing.load_verify_locations(cafile=hostile_files.other_ca_pem)
    with RawServer(ssl_context=refusing) as server, \
            RestExecutor(make_registry(hostile_files, server.url(), tls_versions=(version,))) as rest:
        result = rest.run(RestStep(id="hostile", alias=PARTNER))
    assert isinstance(result.error, ClientCertRejectedError), result.error
    assert result.error.hint == ClientCertRejectedError.default_hint
    assert hostile_pki.client.sha256 in str(result.error)
    assert len(result.attempts) == 1
    assert server.requests == [] and server.handshake_failures


@pytest.mark.parametrize("mutual", [False, True], ids=["no-keystore", "keystore"])
def test_an_optional_client_certificate(mutual: bool, hostile_pki: Pki, hostile_files: PkiFiles) -> None:
    with RawServer(ssl_context=server_context(hostile_pki, require_client_cert=False)) as server, \
            RestExecutor(make_registry(hostile_files, server.url(), mutual=mutual)) as rest:
        result = rest.run(RestStep(id="optional", alias=PARTNER))
    assert result.status == "passed", result.error
    (request,) = server.requests
    assert result.tls is not None
    assert result.tls.client_cert_sha256 == request.client_cert_sha256
    assert request.client_cert_sha256 == (hostile_pki.client.sha256 if mutual else None)


# --- SOAP -------------------------------------------------------------------------------------------------


@pytest.fixture
def clean_wsdl_cache() -> Iterator[None]:
    WSDL_CACHE.clear()
    yield
    WSDL_CACHE.clear()


SOAP_CASES = [c for c in CASES if c.name in ("endless_body", "gzip_bomb", "slowloris_body", "truncated_body",
                                             "xml_nested_5000_deep", "gzip_listed_3000_times")]


@pytest.mark.parametrize("case", SOAP_CASES, ids=[c.name for c in SOAP_CASES])
def test_hostile_soap_replies(case: Case, hostile_files: PkiFiles, partner_tls: ssl.SSLContext) -> None:
    with HostileServer(case.answer, ssl_context=partner_tls) as server, \
            SoapExecutor(make_registry(hostile_files, server.url())) as soap:
        step = SoapStep(id="hostile", alias=PARTNER, envelope=ENVELOPE, path="/ledger",
                        response=ResponseSpec(max_bytes=CAP), timeout_s=case.step.get("timeout_s"))
        result = soap.run(step)
    assert_reported(result, case)


def _wsdl_partner(xsd: bytes, *, wsdl: bytes | None = None) -> Callable[[RawRequest], HostileAction]:
    documents = {"/ledger.wsdl": wsdl or LEDGER_WSDL.read_bytes(), "/ledger.xsd": xsd}

    def answer(request: RawRequest) -> HostileAction:
        if request.target in documents:
            return Reply(200, documents[request.target], (("Content-Type", "text/xml"),))
        return Reply(404, b"", (("Content-Type", "text/plain"),))

    return answer


def _with_doctype(document: bytes, root: bytes, doctype: bytes) -> bytes:
    return document.replace(b"<" + root, doctype + b"\n<" + root, 1)


LAUGHS = (b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
          b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>')


@pytest.mark.parametrize("where", ["xsd-xxe", "xsd-external-dtd", "xsd-billion-laughs", "wsdl-billion-laughs"])
def test_a_remote_wsdl_or_its_schema_import_with_a_dtd_is_refused(where: str, hostile_files: PkiFiles,
                                                                   partner_tls: ssl.SSLContext,
                                                                   clean_wsdl_cache: None) -> None:
    xsd, wsdl = LEDGER_XSD.read_bytes(), LEDGER_WSDL.read_bytes()
    if where == "xsd-xxe":
        xsd = _with_doctype(xsd, b"xsd:schema", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>')
    elif where == "xsd-external-dtd":
        xsd = _with_doctype(xsd, b"xsd:schema", b'<!DOCTYPE x SYSTEM "/evil.dtd">')
    elif where == "xsd-billion-laughs":
        xsd = _with_doctype(xsd, b"xsd:schema", LAUGHS)
    else:
        wsdl = _with_doctype(wsdl, b"wsdl:definitions", LAUGHS)
    with HostileServer(_wsdl_partner(xsd, wsdl=wsdl), ssl_context=partner_tls) as server, \
            SoapExecutor(make_registry(hostile_files, server.url())) as soap:
        result = soap.run(SoapStep(id="hostile", alias=PARTNER, wsdl=f"{server.url()}/ledger.wsdl",
                                   operation="GetBalance", args={"account": "42"}))
    assert isinstance(result.error, UnsafeXmlError), result.error
    assert ("ledger.xsd" if where.startswith("xsd") else "ledger.wsdl") in str(result.error)
    fetched = [r.target for r in server.requests]
    assert "/evil.dtd" not in fetched
    assert all(r.method == "GET" for r in server.requests)  # no call was made


def test_a_gzip_bomb_wsdl_is_refused_in_bounded_memory(hostile_files: PkiFiles, partner_tls: ssl.SSLContext,
                                                       clean_wsdl_cache: None) -> None:
    answer = send(head("200 OK", ("Content-Type", "text/xml"), ("Content-Encoding", "gzip"),
                       ("Content-Length", str(len(BOMB)))) + BOMB)
    with HostileServer(lambda r: answer, ssl_context=partner_tls) as server, \
            SoapExecutor(make_registry(hostile_files, server.url())) as soap:
        tracemalloc.start()
        try:
            result = soap.run(SoapStep(id="hostile", alias=PARTNER, wsdl=f"{server.url()}/ledger.wsdl",
                                       operation="GetBalance"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert isinstance(result.error, ResponseTooLargeError), result.error
    assert peak < 40 * CAP  # the WSDL cap is 10 MiB; the bomb is 256 MiB


# --- through the CLI ---------------------------------------------------------------------------------------


@attrs.frozen
class CliCase:
    name: str
    code: str
    flow_step: dict[str, Any]


def _cli_cases() -> list[CliCase]:
    cases = [CliCase(c.name, c.error.code, {"path": f"/case/{c.name}", "response": {"max_bytes": CAP},
                                            **{k: v for k, v in c.step.items() if k != "path"}})
             for c in CASES]
    loop = next(c for c in cases if c.name == "redirect_loop")
    cases[cases.index(loop)] = attrs.evolve(loop, flow_step={**loop.flow_step, "path": "/case/redirect_loop/a"})
    return cases


CLI_CASES = _cli_cases()


@pytest.fixture(scope="module")
def cli_partner(partner_tls: ssl.SSLContext) -> Iterator[HostileServer]:
    """One partner for every CLI case: ``/case/<name>`` answers like that case, ``/ok`` is fine."""
    by_name = {c.name: c for c in CASES}

    def answer(request: RawRequest) -> HostileAction:
        if request.target == "/ok":
            return Reply(200, b'{"fine":true}')
        name = request.target.split("/")[2]
        if name == "redirect_loop":
            other = "b" if request.target.endswith("/a") else "a"
            return Reply(302, b"", (("Location", f"/case/redirect_loop/{other}"),))
        return by_name[name].answer(request)

    with HostileServer(answer, ssl_context=partner_tls) as server:
        yield server


def write_aliases(directory: Path, files: PkiFiles, urls: dict[str, str]) -> Path:
    records: list[dict[str, Any]] = [
        {"kind": "keystore", "name": "client", "type": "pkcs12", "file": str(files.client.pkcs12),
         "password": {"env": "HOSTILE_KEYSTORE_PASSWORD"}},
        {"kind": "trust_store_cert", "name": "root", "file": str(files.root_pem)},
        {"kind": "protocol_profile", "name": "mtls", "keystore": "client", "trust_store_certs": ["root"],
         "use_system_trust": False},
    ]
    records += [{"kind": "alias", "name": name, "connection": {"url": url, "mutual_authentication": True,
                                                              "protocol_profile": "mtls", "timeout_s": 10}}
                for name, url in urls.items()]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "aliases.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    return directory


def run_cli(tmp_path: Path, aliases: Path, steps: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "hostile", "steps": steps}), encoding="utf-8")
    env = {**os.environ, "HOSTILE_KEYSTORE_PASSWORD": PASSWORD, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "flowrun", "run", str(flow), "--aliases", str(aliases)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=120)


def assert_one_error_line(done: subprocess.CompletedProcess[str], code: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    errors = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("error[")]
    assert len(errors) == 1, done.stdout
    assert errors[0].startswith(f"error[{code}]: "), done.stdout


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.name for c in CLI_CASES])
def test_cli_hostile_partner(case: CliCase, cli_partner: HostileServer, hostile_files: PkiFiles,
                             tmp_path: Path) -> None:
    aliases = write_aliases(tmp_path / "aliases", hostile_files, {"partner": cli_partner.url()})
    done = run_cli(tmp_path, aliases, [
        {"id": "hostile", "type": "rest", "alias": "partner", "on_error": "continue", **case.flow_step},
        {"id": "after", "type": "rest", "alias": "partner", "path": "/ok"},
    ])
    assert_one_error_line(done, case.code)
    lines = done.stdout.splitlines()
    assert any(line.split()[:2] == ["FAIL", "hostile"] for line in lines), done.stdout
    assert any(line.split()[:2] == ["ok", "after"] for line in lines), done.stdout


def test_cli_tls_and_redirect_cases(hostile_pki: Pki, hostile_files: PkiFiles, partner_tls: ssl.SSLContext,
                                    tmp_path: Path) -> None:
    refusing = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    refusing.load_cert_chain(hostile_files.server_cert_pem, hostile_files.server_key_pem, password=PASSWORD)
    refusing.verify_mode = ssl.CERT_REQUIRED
    refusing.load_verify_locations(cafile=hostile_files.other_ca_pem)
    with RawServer() as plain, RawServer(ssl_context=server_context(hostile_pki)) as strict_other, \
            RawServer(ssl_context=refusing) as refuser, \
            HostileServer(_redirect_to(f"{plain.url()}/x"), ssl_context=partner_tls) as to_http, \
            HostileServer(_redirect_to(f"{strict_other.url()}/x"), ssl_context=partner_tls) as to_other:
        aliases = write_aliases(tmp_path / "aliases", hostile_files, {
            "to_http": to_http.url(), "to_other": to_other.url(), "refuser": refuser.url()})
        expected = {
            "to_http": ("http.redirect_refused", {"follow_redirects": True}),
            "to_other": ("tls.client_cert_not_sent", {"follow_redirects": True}),
            "refuser": ("tls.client_cert_rejected", {}),
        }
        for alias, (code, options) in expected.items():
            done = run_cli(tmp_path, aliases, [{"id": "hostile", "type": "rest", "alias": alias, **options}])
            assert_one_error_line(done, code)


@needs_openssl
def test_cli_renegotiation(hostile_files: PkiFiles, tmp_path: Path) -> None:
    with _s_server(hostile_files, "R") as server:
        aliases = write_aliases(tmp_path / "aliases", hostile_files, {"partner": server.url()})
        done = run_cli(tmp_path, aliases, [{"id": "hostile", "type": "rest", "alias": "partner"}])
    assert_one_error_line(done, "tls.renegotiation_refused")


def test_cli_soap_cases(hostile_files: PkiFiles, partner_tls: ssl.SSLContext, tmp_path: Path) -> None:
    bad_xsd = _with_doctype(LEDGER_XSD.read_bytes(), b"xsd:schema", LAUGHS)
    wsdl_partner = _wsdl_partner(bad_xsd)
    endless = next(c for c in CASES if c.name == "endless_body")

    def answer(request: RawRequest) -> HostileAction:
        return endless.answer(request) if request.method == "POST" else wsdl_partner(request)

    with HostileServer(answer, ssl_context=partner_tls) as server:
        aliases = write_aliases(tmp_path / "aliases", hostile_files, {"partner": server.url()})
        envelope = run_cli(tmp_path, aliases, [{"id": "hostile", "type": "soap", "alias": "partner",
                                                "envelope": ENVELOPE, "response": {"max_bytes": CAP}}])
        schema = run_cli(tmp_path, aliases, [{"id": "hostile", "type": "soap", "alias": "partner",
                                              "wsdl": f"{server.url()}/ledger.wsdl", "operation": "GetBalance",
                                              "args": {"account": "42"}}])
    assert_one_error_line(envelope, "http.response_too_large")
    assert_one_error_line(schema, "xml.unsafe")
