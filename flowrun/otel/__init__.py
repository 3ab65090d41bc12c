"""OpenTelemetry traces of flow runs (the ``flowrun[otel]`` extra).

``FlowRunner(observer=FlowTracer())`` records one span per flow run, a child span per step and a
grandchild span per attempt (retries included), through the tracer provider the application has
configured (or the one given). ``flowrun run/test --otel`` configures one from the standard
``OTEL_*`` variables and exports over OTLP/HTTP. The core never imports OpenTelemetry: this package
is the only place that does.
"""

from __future__ import annotations

from flowrun.otel._tracer import FlowTracer, redacted_url

__all__ = ["FlowTracer", "redacted_url"]
