"""Spans from flow runs: flow -> step -> attempt, with the HTTP semantic-convention attributes.

The flow span is started when the flow starts and is the current span while it runs (spans that
other instrumentation makes meanwhile nest under it). Step and attempt spans are recorded when
each step finishes, with the times the step measured: a step's attempts carry their own start
times, a step without attempts (failed before sending, skipped) ends when it was reported.

Attributes never hold a secret: the URL's user info is dropped and query values named like
secrets (or registered as secrets) become ``***``; every text goes through the run's ``Secrets``.
The client certificate is identified by its SHA-256 fingerprint (``tls.client.hash.sha256``).
A failed step's span has status ERROR with the error code as description and ``error.type``.
"""

from __future__ import annotations

import time
from contextvars import Token
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from flowrun._errors import FlowrunError
from flowrun._models._flow import Flow, FlowStep
from flowrun._models._flow_results import FlowResult
from flowrun._models._redact import Secrets, redact_body
from flowrun._models._results import StepResult
from flowrun._version import __version__

_SCOPE = "flowrun"
_NS = 1_000_000_000


def redacted_url(url: str, secrets: Secrets | None = None) -> str:
    """``url`` fit for a span: no user info, secret-named query values as ``***``, masked."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = redact_body(parts.query) if parts.query else parts.query
    text = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    return secrets.mask(text) if secrets is not None else text


class FlowTracer:
    """A ``RunObserver`` that records OpenTelemetry spans (see the module docstring)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)

    def flow_started(self, flow: Flow, iteration: int | None, secrets: Secrets) -> _FlowSpan:
        attributes: dict[str, Any] = {"flowrun.flow.name": secrets.mask(flow.name)}
        if iteration is not None:
            attributes["flowrun.flow.iteration"] = iteration
        if flow.origin.file is not None:
            attributes["flowrun.flow.file"] = secrets.mask(str(flow.origin.file))
        span = self._tracer.start_span(f"flow {secrets.mask(flow.name)}", kind=SpanKind.INTERNAL,
                                       attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        return _FlowSpan(self._tracer, span, token, secrets)


class _FlowSpan:
    def __init__(self, tracer: trace.Tracer, span: trace.Span, token: Token[Context], secrets: Secrets) -> None:
        self._tracer = tracer
        self._span = span
        self._token = token
        self._secrets = secrets
        self._parent = trace.set_span_in_context(span)

    def step_finished(self, entry: FlowStep, result: StepResult) -> None:
        ended = time.time_ns()
        if result.attempts:
            started = int(result.attempts[0].started_at * _NS)
            ended = max(ended, started)
        else:
            started = ended - int(result.duration_ms * 1_000_000)
        mask = self._secrets.mask
        attributes: dict[str, Any] = {"flowrun.step.id": mask(result.step_id), "flowrun.step.type": result.kind,
                                      "flowrun.step.status": result.status,
                                      "flowrun.step.attempts": len(result.attempts)}
        alias = entry.step.alias
        if alias is not None:
            attributes["flowrun.alias"] = alias
        if result.insecure:
            attributes["flowrun.insecure"] = True
        if result.request is not None:
            attributes["http.request.method"] = result.request.method
            attributes.update(_url_attributes(result.request.url, self._secrets))
        if result.http_status is not None:
            attributes["http.response.status_code"] = result.http_status
        if result.tls is not None:
            tls = result.tls
            if tls.version:
                name, _, number = tls.version.partition("v")
                attributes["tls.protocol.name"] = name.lower()
                attributes["tls.protocol.version"] = number or tls.version
            if tls.cipher:
                attributes["tls.cipher"] = tls.cipher
            if tls.client_cert_sha256:
                attributes["tls.client.hash.sha256"] = tls.client_cert_sha256.upper()
            if tls.client_cert_subject:
                attributes["tls.client.subject"] = mask(tls.client_cert_subject)
            if tls.server_cert_subject:
                attributes["tls.server.subject"] = mask(tls.server_cert_subject)
            if tls.server_chain:
                attributes["flowrun.tls.server_chain"] = [mask(subject) for subject in tls.server_chain]
        if result.assertions:
            attributes["flowrun.step.assertions"] = len(result.assertions)
            attributes["flowrun.step.assertions_failed"] = sum(1 for a in result.assertions if not a.passed)
        span = self._tracer.start_span(f"step {mask(result.step_id)}", context=self._parent,
                                       kind=SpanKind.INTERNAL, attributes=attributes, start_time=started)
        if result.error is not None:
            self._fail(span, result.error)
        step_context = trace.set_span_in_context(span)
        for attempt in result.attempts:
            begin = int(attempt.started_at * _NS)
            child: dict[str, Any] = {"flowrun.attempt": attempt.number,
                                     "http.request.resend_count": attempt.number - 1}
            if result.request is not None:
                child["http.request.method"] = result.request.method
                child.update(_url_attributes(result.request.url, self._secrets))
            if attempt.status is not None:
                child["http.response.status_code"] = attempt.status
            name = result.request.method if result.request is not None else f"attempt {attempt.number}"
            attempt_span = self._tracer.start_span(name, context=step_context, kind=SpanKind.CLIENT,
                                                   attributes=child, start_time=begin)
            if attempt.error is not None:
                self._fail(attempt_span, attempt.error)
            elif attempt.status is not None and attempt.status >= 400:
                attempt_span.set_attribute("error.type", str(attempt.status))
                attempt_span.set_status(Status(StatusCode.ERROR, f"HTTP {attempt.status}"))
            attempt_span.end(begin + int(attempt.duration_ms * 1_000_000))
        span.end(max(ended, started + int(result.duration_ms * 1_000_000)))

    def flow_finished(self, result: FlowResult) -> None:
        span = self._span
        span.set_attribute("flowrun.flow.status", result.status)
        span.set_attribute("flowrun.flow.steps", len(result.steps))
        if result.insecure:
            span.set_attribute("flowrun.insecure", True)
        if result.error is not None:
            self._fail(span, result.error)
        span.end()
        otel_context.detach(self._token)

    def _fail(self, span: trace.Span, error: FlowrunError) -> None:
        span.set_attribute("error.type", error.code)
        span.set_attribute("flowrun.error.message", self._secrets.mask(str(error)))
        span.set_status(Status(StatusCode.ERROR, error.code))


def _url_attributes(url: str, secrets: Secrets) -> dict[str, Any]:
    parts = urlsplit(url)
    attributes: dict[str, Any] = {"url.full": redacted_url(url, secrets)}
    if parts.hostname:
        attributes["server.address"] = parts.hostname
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None and parts.scheme in ("http", "https"):
        port = 443 if parts.scheme == "https" else 80
    if port is not None:
        attributes["server.port"] = port
    return attributes
