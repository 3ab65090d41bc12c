"""A step's path stays under the alias's base path: pill values are one segment (dot segments
included), and a path that climbs above the base path once decoded is refused before anything
is sent. Requests go to a real loopback server that records the target as it arrived."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import pytest

from flowrun._errors import PathOutsideBaseError
from flowrun._models._steps import RestStep, SoapStep
from flowrun._rest import AsyncRestExecutor, RestExecutor
from flowrun._soap import SoapExecutor
from flowrun._transport._request import check_inside_base
from flowrun.testing import PkiFiles
from tests.transport._support import RawServer, Reply, make_registry

ENVELOPE = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            "<Ping/></soap:Body></soap:Envelope>")


@pytest.mark.parametrize(("template", "value", "target"), [
    ("/files/{{ inputs.v }}", "..", "/v2/files/%2E%2E"),
    ("/files/{{ inputs.v }}", ".", "/v2/files/%2E"),
    ("/files/{{ inputs.v }}", "../admin", "/v2/files/..%2Fadmin"),
    ("/files/{{ inputs.v }}", "a/b", "/v2/files/a%2Fb"),
    ("/files/{{ inputs.v }}", "report.v1.pdf", "/v2/files/report.v1.pdf"),
    ("/files/{{ inputs.v }}", "...", "/v2/files/..."),
    ("/files/{{ inputs.v }}", "%2E%2E", "/v2/files/%252E%252E"),
    ("/files/x{{ inputs.v }}", "..", "/v2/files/x%2E%2E"),
    ("/{{ inputs.v }}", "..%2Fadmin", "/v2/..%252Fadmin"),  # a pill's "%" is text: it stays one segment
])
def test_pill_values_are_one_segment_dot_segments_included(template: str, value: str, target: str,
                                                           tls_server_context: ssl.SSLContext,
                                                           pki_files: PkiFiles) -> None:
    with RawServer(ssl_context=tls_server_context) as server, \
            RestExecutor(make_registry(pki_files, server.url() + "/v2")) as rest:
        result = rest.run(RestStep(id="get", alias="partner", path=template), {"inputs": {"v": value}})
    assert result.ok, result.error
    (request,) = server.requests
    assert request.target == target


@pytest.mark.parametrize(("template", "value"), [
    ("/{{ inputs.v }}", ".."),
    ("/{{ inputs.v }}", "../admin"),
    ("/{{ inputs.v }}/x", "a/../.."),
    ("/a/{{ inputs.v }}{{ inputs.v }}/..", "."),
    ("/../admin", None),
    ("/a/../../admin", None),
    ("/%2e%2e/admin", None),
    ("/a/%2E%2E/%2e%2E/admin?x=1", None),
])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_path_that_leaves_the_base_path_is_refused_before_sending(
        template: str, value: str | None, asynchronous: bool, tls_server_context: ssl.SSLContext,
        pki_files: PkiFiles) -> None:
    step = RestStep(id="escape", alias="partner", path=template)
    context = {"inputs": {"v": value}}
    with RawServer(ssl_context=tls_server_context) as server:
        registry = make_registry(pki_files, server.url() + "/v2")
        if asynchronous:
            async def main() -> object:
                async with AsyncRestExecutor(registry) as rest:
                    return await rest.run(step, context)

            result = asyncio.run(main())
        else:
            with RestExecutor(registry) as rest:
                result = rest.run(step, context)
    assert isinstance(result.error, PathOutsideBaseError), result.error  # type: ignore[attr-defined]
    assert result.error.exit_code == 2  # type: ignore[attr-defined]
    assert result.error.pointer == "/path"  # type: ignore[attr-defined]
    assert "climbs above the alias's base path" in str(result.error)  # type: ignore[attr-defined]
    assert server.requests == [] and server.connections == 0


def test_dot_segments_that_stay_inside_are_sent_resolved(tls_server_context: ssl.SSLContext,
                                                         pki_files: PkiFiles) -> None:
    with RawServer(ssl_context=tls_server_context) as server, \
            RestExecutor(make_registry(pki_files, server.url() + "/v2")) as rest:
        result = rest.run(RestStep(id="get", alias="partner", path="/a/./b/../c"))
    assert result.ok, result.error
    assert server.requests[0].target == "/v2/a/c"


def test_a_soap_step_path_is_held_to_the_same_rule(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    with RawServer(lambda r: Reply(200, ENVELOPE.encode(), (("Content-Type", "text/xml"),)),
                   ssl_context=tls_server_context) as server, \
            SoapExecutor(make_registry(pki_files, server.url() + "/v2")) as soap:
        inside = soap.run(SoapStep(id="in", alias="partner", path="/svc/{{ inputs.v }}", envelope=ENVELOPE),
                          {"inputs": {"v": ".."}})
        escape = soap.run(SoapStep(id="out", alias="partner", path="/{{ inputs.v }}", envelope=ENVELOPE),
                          {"inputs": {"v": ".."}})
        literal = soap.run(SoapStep(id="lit", alias="partner", path="/../admin", envelope=ENVELOPE))
    assert inside.ok, inside.error
    assert [r.target for r in server.requests] == ["/v2/svc/%2E%2E"]
    assert isinstance(escape.error, PathOutsideBaseError)
    assert isinstance(literal.error, PathOutsideBaseError)


def test_the_check_reads_segments_as_a_server_does() -> None:
    for inside in ("", "/", "/a/..", "/a/b/../..", "/a//b", "/.../x", "/a%2F..", "/%2e", "/a/./../b"):
        check_inside_base(inside)
    for outside in ("/..", "..", "/a/../..", "/%2E%2E", "/a%2F..%2F..", "/./../x"):
        with pytest.raises(PathOutsideBaseError):
            check_inside_base(outside)


def test_validate_reports_a_literal_path_that_leaves_the_base_path(tmp_path: Path) -> None:
    from flowrun._cli._validate import validate_paths

    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "f", "steps": [
        {"id": "up", "type": "rest", "connection": {"url": "https://partner.example/v2"}, "path": "/../admin"},
        {"id": "pill", "type": "rest", "connection": {"url": "https://partner.example/v2"},
         "path": "/a/{{ inputs.x }}/.."},
        {"id": "fine", "type": "rest", "connection": {"url": "https://partner.example/v2"}, "path": "/a/../b"}],
        "inputs": {"x": {"type": "string", "default": ".."}}}, indent=1))
    _, problems = validate_paths([flow], aliases=None, steps_dirs=[])
    found = [p.error for p in problems if isinstance(p.error, PathOutsideBaseError)]
    assert [(e.step, e.pointer) for e in found] == [("up", "/steps/0/path")]
    assert found[0].line is not None
