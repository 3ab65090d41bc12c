"""OpenTelemetry traces (``flowrun.otel``, ``--otel``): a span per flow, step and attempt.

The SDK's in-memory exporter checks the parent/child structure and the attributes; the CLI's
``--otel`` exports over OTLP/HTTP to a receiver in the test that decodes the protobuf requests.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from flowrun import FlowRunner
from flowrun._cli import main
from flowrun.otel import FlowTracer, redacted_url
from flowrun.testing import PartnerServer
from tests.flows.conftest import API_KEY, write_json

QUERY_TOKEN = "Sx-otel-query-token-5150"


@pytest.fixture
def retrying_alias(aliases: Path) -> Path:
    records = json.loads((aliases / "partner.json").read_text())
    bank = next(r for r in records if r.get("name") == "bank")
    records.append({"kind": "alias", "name": "retrying", "connection": bank["connection"],
                    "retry_policy": {"strategy": "fixed", "count": 2, "interval_s": 0.01, "on_status": [503]}})
    (aliases / "partner.json").write_text(json.dumps(records))
    return aliases


def traced_flow(directory: Path) -> Path:
    return write_json(directory / "traced.json", {
        "name": "traced",
        "steps": [
            {"id": "balance", "type": "rest", "alias": "bank", "method": "GET", "path": "/accounts/7",
             "query": {"currency": "EUR", "token": QUERY_TOKEN}},
            {"id": "never", "type": "rest", "alias": "bank", "method": "GET", "path": "/accounts/8",
             "when": "{{ false }}"},
            {"id": "flaky", "type": "rest", "alias": "retrying", "method": "GET", "path": "/status/503"},
        ]})


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, memory
    provider.shutdown()


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def test_spans_per_flow_step_and_attempt_with_http_attributes(
        retrying_alias: Path, tmp_path: Path, partner: PartnerServer,
        exporter: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, memory = exporter
    outer_tracer = provider.get_tracer("the-service")
    with FlowRunner(aliases=retrying_alias, observer=FlowTracer(provider)) as runner, \
            outer_tracer.start_as_current_span("handle request") as outer:
        result = runner.run(traced_flow(tmp_path))
        # The flow's span was current only while it ran: the service's span is current again.
        assert trace.get_current_span() is outer
    assert result.status == "failed"
    spans = by_name(memory.get_finished_spans())
    flow = spans["flow traced"][0]
    balance, never, flaky = spans["step balance"][0], spans["step never"][0], spans["step flaky"][0]
    assert flow.parent is not None and flow.parent.span_id == outer.get_span_context().span_id
    for step in (balance, never, flaky):
        assert step.parent is not None and step.parent.span_id == flow.context.span_id
        assert step.context.trace_id == outer.get_span_context().trace_id
    attempts = spans["GET"]
    assert len(attempts) == 4  # one for balance, three for flaky (two retries)
    assert sum(1 for a in attempts if a.parent is not None and a.parent.span_id == balance.context.span_id) == 1
    flaky_attempts = sorted((a for a in attempts if a.parent is not None and a.parent.span_id == flaky.context.span_id),
                            key=lambda a: a.attributes["http.request.resend_count"])  # type: ignore[index]
    assert [a.attributes["http.request.resend_count"] for a in flaky_attempts] == [0, 1, 2]  # type: ignore[index]
    assert all(a.kind == trace.SpanKind.CLIENT and a.attributes["http.response.status_code"] == 503  # type: ignore[index]
               for a in flaky_attempts)
    assert flaky_attempts[0].start_time < flaky_attempts[1].start_time < flaky_attempts[2].start_time  # type: ignore[operator]

    attributes = dict(balance.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    assert attributes["server.address"] == "localhost" and attributes["server.port"] == partner.port
    assert attributes["url.full"] == f"https://localhost:{partner.port}/v2/accounts/7?currency=EUR&token=***"
    assert attributes["flowrun.alias"] == "bank" and attributes["flowrun.step.status"] == "passed"
    assert attributes["tls.protocol.name"] == "tls" and attributes["tls.protocol.version"] in ("1.2", "1.3")
    assert str(attributes["tls.client.hash.sha256"]).lower() == partner.client_certs[-1].lower()
    chain = list(attributes["flowrun.tls.server_chain"])  # type: ignore[arg-type]
    assert len(chain) >= 2 and chain[0] == attributes["tls.server.subject"]
    assert balance.status.status_code == StatusCode.UNSET
    assert dict(never.attributes or {})["flowrun.step.status"] == "skipped"

    assert flaky.status.status_code == StatusCode.ERROR
    assert flaky.status.description == "http.unexpected_status"
    assert dict(flaky.attributes or {})["error.type"] == "http.unexpected_status"
    assert dict(flaky.attributes or {})["flowrun.alias"] == "retrying"
    assert flow.status.status_code == StatusCode.ERROR
    # Never a secret: not the API key sent in a header, not the token in the query.
    for span in memory.get_finished_spans():
        text = json.dumps({**dict(span.attributes or {}), "name": span.name, "status": span.status.description})
        assert API_KEY not in text and QUERY_TOKEN not in text


def test_redacted_url_drops_user_info_and_secret_query_values() -> None:
    assert redacted_url("https://user:pw@bank.example:8443/a?api_key=k1&x=1&password=p#frag") == (
        "https://bank.example:8443/a?api_key=***&x=1&password=***")


class _Receiver(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []


class _ReceiverHandler(http.server.BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.requests.append(request)
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_cli_otel_exports_over_otlp_http(capsys: pytest.CaptureFixture[str], retrying_alias: Path, tmp_path: Path,
                                         receiver: _Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    port = receiver.server_address[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    directory = tmp_path / "flows"
    traced_flow(directory)
    write_json(directory / "ok.json", {"name": "ok", "steps": [
        {"id": "one", "type": "rest", "alias": "bank", "method": "GET", "path": "/accounts/1"}]})
    code = main(["test", str(directory), "--aliases", str(retrying_alias), "--otel", "--parallel", "2"])
    captured = capsys.readouterr()
    assert code == 1, captured.out + captured.err
    assert receiver.requests and set(receiver.paths) == {"/v1/traces"}
    spans = [(resource.resource, span) for request in receiver.requests for resource in request.resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    services = {attribute.value.string_value for resource, _ in spans for attribute in resource.attributes
                if attribute.key == "service.name"}
    assert services == {"flowrun"}
    names = sorted(span.name for _, span in spans)
    # 2 flows, 4 steps, 5 attempts (1 + 0 skipped + 3, and 1).
    assert names == sorted(["flow traced", "flow ok", "step balance", "step never", "step flaky", "step one",
                            "GET", "GET", "GET", "GET", "GET"])
    ids = {span.span_id: span for _, span in spans}
    for _, span in spans:
        if span.name.startswith("flow "):
            assert span.parent_span_id == b""
        elif span.name.startswith("step "):
            assert ids[span.parent_span_id].name.startswith("flow ")
        else:
            assert ids[span.parent_span_id].name.startswith("step ")
    assert API_KEY not in str(receiver.requests) and QUERY_TOKEN not in str(receiver.requests)


def test_otel_option_without_the_extra_names_it(capsys: pytest.CaptureFixture[str], aliases: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The exporter not importable, as on an install without flowrun[otel].
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    flow = write_json(tmp_path / "f.json", {"name": "f", "steps": [
        {"id": "one", "type": "rest", "alias": "bank", "method": "GET", "path": "/accounts/1"}]})
    for command in ("run", "test"):
        code = main([command, str(flow), "--aliases", str(aliases), "--otel"])
        captured = capsys.readouterr()
        assert code == 2
        assert "usage.missing_extra" in captured.err or "--otel needs" in captured.err
        assert "flowrun[otel]" in captured.err
        assert "Traceback" not in captured.err


def test_the_core_never_imports_opentelemetry(aliases: Path, tmp_path: Path) -> None:
    flow = write_json(tmp_path / "f.json", {"name": "f", "steps": [
        {"id": "one", "type": "rest", "alias": "bank", "method": "GET", "path": "/accounts/1"}]})
    code = (f"import sys\nfrom flowrun._cli import main\ncode = main(['run', {str(flow)!r}, '--aliases', "
            f"{str(aliases)!r}, '--html', {str(tmp_path / 'r.html')!r}])\n"
            "print(code, sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    import os

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip().splitlines()[-1] == "0 []"


def test_async_runner_spans_and_an_interrupted_flow_ends_its_span(
        aliases: Path, tmp_path: Path, exporter: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    import asyncio

    from flowrun import AsyncFlowRunner

    provider, memory = exporter
    flow = write_json(tmp_path / "two.json", {"name": "two", "steps": [
        {"id": "first", "type": "rest", "alias": "bank", "method": "GET", "path": "/accounts/1"},
        {"id": "second", "type": "rest", "alias": "bank", "method": "GET", "path": "/accounts/2"}]})

    async def run() -> None:
        async with AsyncFlowRunner(aliases=aliases, observer=FlowTracer(provider)) as runner:
            result = await runner.run(flow)
            assert result.ok

    asyncio.run(run())
    spans = by_name(memory.get_finished_spans())
    flow_span = spans["flow two"][0]
    assert [s.parent.span_id for s in spans["step first"] + spans["step second"] if s.parent] == [
        flow_span.context.span_id] * 2
    memory.clear()

    def stop(entry: Any, result: Any) -> None:
        raise KeyboardInterrupt

    with FlowRunner(aliases=aliases, observer=FlowTracer(provider), on_step=stop) as runner, \
            pytest.raises(KeyboardInterrupt):
        runner.run(flow)
    assert trace.get_current_span() is trace.INVALID_SPAN  # the flow's context was detached
    spans = by_name(memory.get_finished_spans())
    interrupted = spans["flow two"][0]
    assert spans["step first"][0].parent.span_id == interrupted.context.span_id  # type: ignore[union-attr]
    assert interrupted.status.status_code == StatusCode.ERROR
    assert interrupted.status.description == runner.interrupted_results[0].error.code  # type: ignore[union-attr]
