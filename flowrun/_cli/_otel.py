"""``--otel`` on ``flowrun run`` and ``flowrun test``: traces over OTLP/HTTP, set up from ``OTEL_*``.

The exporter reads the standard variables itself (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``..._HEADERS``, ``..._TIMEOUT``...), the resource reads
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (service name "flowrun" when neither names
one). Spans are batched and flushed when the command ends. Without the ``flowrun[otel]`` extra,
``--otel`` is a usage error that names the extra to install.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flowrun._errors import OptionNeedsExtraError

if TYPE_CHECKING:
    from flowrun.otel import FlowTracer


def add_otel_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--otel", action="store_true",
                        help="send OpenTelemetry traces (a span per flow, step and attempt) over OTLP/HTTP, "
                        "configured by the standard OTEL_* variables (needs flowrun[otel])")


@contextlib.contextmanager
def otel_tracer(enabled: bool) -> Iterator[FlowTracer | None]:
    """The tracer for the command's runners (None without ``--otel``); spans are flushed at the end."""
    if not enabled:
        yield None
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from flowrun.otel import FlowTracer
    except ImportError as exc:
        raise OptionNeedsExtraError(
            f"--otel needs the OpenTelemetry packages of the flowrun[otel] extra ({exc.name or exc} is missing)",
            hint="pip install 'flowrun[otel]', or run without --otel") from None
    attributes: dict[str, Any] = {}
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = "flowrun"
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    try:
        yield FlowTracer(provider)
    finally:
        provider.shutdown()  # flushes what is still batched
