"""Property-based hostile partners: hypothesis builds responses (status, Content-Type, stacked and
lying Content-Encodings, Retry-After values, deeply nested JSON and XML, raw bytes) that a real
loopback server sends to the REST executors and to a SOAP step. Whatever arrives, ``run`` returns a result whose
error, if any, is one of flowrun's own (never ``InternalError``: that would be a defect), and the
result serializes as the reports write it."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowrun._errors import FlowrunError, InternalError
from flowrun._models._aliases import Connection, RetryPolicy
from flowrun._models._steps import ResponseSpec, RestStep, SoapStep
from flowrun._rest import AsyncRestExecutor, RestExecutor
from flowrun._soap import SoapExecutor
from tests.hostile._servers import HostileAction, HostileServer, head, send
from tests.transport._support import RawRequest

_ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "raw-deflate": lambda data: zlib.compress(data)[2:-4],
}


class Scripted:
    """What the partner answers next; set per example."""

    def __init__(self) -> None:
        self.answer = b""
        self.lock = threading.Lock()

    def __call__(self, request: RawRequest) -> HostileAction:
        with self.lock:
            return send(self.answer)


@pytest.fixture(scope="module")
def partner() -> Iterator[tuple[HostileServer, Scripted]]:
    scripted = Scripted()
    with HostileServer(scripted) as server:
        yield server, scripted


def _nested_json(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    kind = draw(st.sampled_from(["json-deep", "xml-deep", "json-data", "bytes", "empty", "text"]))
    if kind == "json-deep":
        depth = draw(st.integers(0, 3000))
        return _nested_json(depth, draw(st.sampled_from(["array", "object"]))), "application/json"
    if kind == "xml-deep":
        depth = draw(st.integers(1, 2000))
        return b"<a>" * depth + b"1" + b"</a>" * depth, draw(st.sampled_from(["text/xml", "application/soap+xml"]))
    if kind == "json-data":
        value = draw(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                                  lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                                               max_size=4),
                                  max_leaves=30))
        return json.dumps(value).encode(), draw(st.sampled_from(["application/json", None]))
    if kind == "bytes":
        return draw(st.binary(max_size=2000)), draw(st.sampled_from(["application/json", "text/xml", None,
                                                                       "application/octet-stream"]))
    if kind == "text":
        return draw(st.text(max_size=500)).encode("utf-8", "surrogatepass"), "text/plain; charset=utf-16"
    return b"", draw(st.sampled_from(["application/json", None]))


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    body, content_type = draw(bodies())
    status = draw(st.sampled_from(["200 OK", "201 Created", "204 No Content", "400 Bad", "429 Busy", "500 Oops",
                                   "503 Busy", "599 Odd"]))
    headers: list[tuple[str, str]] = [("Connection", "close")]
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    layers = draw(st.lists(st.sampled_from([*_ENCODERS, "identity", "br", "lie"]), max_size=6))
    if draw(st.booleans()) and not layers:
        layers = ["gzip"] * draw(st.integers(5, 3000))  # a listing far longer than anyone compresses
    names = []
    for layer in layers:
        if layer == "lie":
            names.append("gzip")  # says gzip, is not
        else:
            body = _ENCODERS[layer](body) if layer in _ENCODERS else body
            names.append("deflate" if layer == "raw-deflate" else layer)
    if names:
        headers.append(("Content-Encoding", ", ".join(names)))
    retry_after = draw(st.one_of(st.none(), st.sampled_from(
        ["nan", "NaN", "inf", "-inf", "1e308", "-5", "0", "99999999999999999999", "soon", "",
         "Fri, 31 Dec 99999 23:59:59 GMT", "Wed, 21 Oct 2015 07:28:00 GMT"]), st.floats().map(str)))
    if retry_after is not None:
        headers.append(("Retry-After", retry_after))
    headers.append(("Content-Length", str(len(body))))
    return head(status, *headers) + body


POLICY = RetryPolicy(strategy="retry_after", count=1, interval_s=0.001, max_interval_s=0.005, max_elapsed_s=5.0)


def _check(result: Any) -> None:
    assert result.status in ("passed", "failed")
    if result.error is not None:
        assert isinstance(result.error, FlowrunError)
        assert not isinstance(result.error, InternalError), result.error.details
        assert "\n" not in str(result.error)
    json.dumps(result.to_dict(), default=str)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(answer=responses(), asynchronous=st.booleans())
def test_any_response_ends_in_a_result_with_flowruns_own_error(
        answer: bytes, asynchronous: bool, partner: tuple[HostileServer, Scripted]) -> None:
    server, scripted = partner
    scripted.answer = answer
    step = RestStep(id="fuzz", connection=Connection(url=server.url()), retry_policy=POLICY,
                    response=ResponseSpec(max_bytes=64 * 1024, outputs={"a": "body.a"}))
    if asynchronous:
        async def go() -> Any:
            async with AsyncRestExecutor() as rest:
                return await rest.run(step)

        result = asyncio.run(go())
    else:
        with RestExecutor() as rest:
            result = rest.run(step)
    _check(result)


ENVELOPE = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><Ping/></soap:Body>'
            "</soap:Envelope>")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(answer=responses())
def test_any_reply_to_a_soap_step_ends_in_a_result_with_flowruns_own_error(
        answer: bytes, partner: tuple[HostileServer, Scripted]) -> None:
    server, scripted = partner
    scripted.answer = answer
    step = SoapStep(id="fuzz", connection=Connection(url=server.url()), envelope=ENVELOPE, retry_policy=POLICY,
                    response=ResponseSpec(max_bytes=64 * 1024, outputs={"a": "body.a"}))
    with SoapExecutor() as soap:
        _check(soap.run(step))
