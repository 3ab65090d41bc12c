"""flowrun: run REST and SOAP integration steps through Connection & Credential aliases.

The errors are imported eagerly; records, results, executors and the registry load on first use,
so that ``import flowrun`` stays cheap, a REST-only run never imports zeep, and the command line
builds its records after it has held the garbage collector (``flowrun._cli._collector``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowrun._errors import *  # noqa: F403
from flowrun._errors import __all__ as _error_names
from flowrun._version import __version__

if TYPE_CHECKING:
    from flowrun._flows import AsyncFlowRunner, FlowRunner, run_flow, run_flow_async
    from flowrun._load._flows import load_flow
    from flowrun._models._aliases import (
        Alias,
        ConcurrencyLimit,
        Connection,
        ConnectionProxy,
        Credential,
        Keystore,
        ProtocolProfile,
        RateLimit,
        RetryPolicy,
        TrustStoreCert,
    )
    from flowrun._models._flow import Flow, FlowEnvVar, FlowInput, FlowStep, StepDefinition
    from flowrun._models._flow_results import FlowResult
    from flowrun._models._observer import FlowObservation, RunObserver
    from flowrun._models._redact import Secrets
    from flowrun._models._results import AssertionOutcome, Attempt, PageInfo, RequestInfo, StepResult, TlsInfo
    from flowrun._models._secret import SecretRef, SecretSource
    from flowrun._models._steps import Body, FilePart, Paginate, ResponseSpec, RestStep, SoapStep
    from flowrun._registry import Registry, ResolvedConnection
    from flowrun._rest import AsyncRestExecutor, RestExecutor
    from flowrun._soap import AsyncSoapExecutor, SoapExecutor

# name -> module, imported on first attribute access.
_LAZY = {
    "Alias": "flowrun._models._aliases",
    "ConcurrencyLimit": "flowrun._models._aliases",
    "Connection": "flowrun._models._aliases",
    "ConnectionProxy": "flowrun._models._aliases",
    "Credential": "flowrun._models._aliases",
    "Keystore": "flowrun._models._aliases",
    "ProtocolProfile": "flowrun._models._aliases",
    "RateLimit": "flowrun._models._aliases",
    "RetryPolicy": "flowrun._models._aliases",
    "TrustStoreCert": "flowrun._models._aliases",
    "FlowObservation": "flowrun._models._observer",
    "RunObserver": "flowrun._models._observer",
    "Secrets": "flowrun._models._redact",
    "AssertionOutcome": "flowrun._models._results",
    "Attempt": "flowrun._models._results",
    "PageInfo": "flowrun._models._results",
    "RequestInfo": "flowrun._models._results",
    "StepResult": "flowrun._models._results",
    "TlsInfo": "flowrun._models._results",
    "SecretRef": "flowrun._models._secret",
    "SecretSource": "flowrun._models._secret",
    "Body": "flowrun._models._steps",
    "FilePart": "flowrun._models._steps",
    "Paginate": "flowrun._models._steps",
    "ResponseSpec": "flowrun._models._steps",
    "RestStep": "flowrun._models._steps",
    "SoapStep": "flowrun._models._steps",
    "Registry": "flowrun._registry",
    "ResolvedConnection": "flowrun._registry",
    "Flow": "flowrun._models._flow",
    "FlowInput": "flowrun._models._flow",
    "FlowEnvVar": "flowrun._models._flow",
    "FlowStep": "flowrun._models._flow",
    "StepDefinition": "flowrun._models._flow",
    "FlowResult": "flowrun._models._flow_results",
    "load_flow": "flowrun._load._flows",
    "run_flow": "flowrun._flows",
    "run_flow_async": "flowrun._flows",
    "RestExecutor": "flowrun._rest",
    "AsyncRestExecutor": "flowrun._rest",
    "SoapExecutor": "flowrun._soap",
    "AsyncSoapExecutor": "flowrun._soap",
    "FlowRunner": "flowrun._flows",
    "AsyncFlowRunner": "flowrun._flows",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [  # grouped by topic
    "__version__",
    # records
    "Alias", "Connection", "Credential", "Keystore", "ProtocolProfile", "RetryPolicy", "TrustStoreCert",
    "SecretRef", "SecretSource", "ConnectionProxy",
    "Secrets",  # what a run sent as secrets, and the one masking function for its output
    # steps and results
    "RestStep", "SoapStep", "Body", "FilePart", "ResponseSpec",
    "StepResult", "Attempt", "TlsInfo", "RequestInfo", "AssertionOutcome",
    # resolution and executors
    "Registry", "ResolvedConnection",
    "RestExecutor", "AsyncRestExecutor", "SoapExecutor", "AsyncSoapExecutor",
    # flows
    "Flow", "FlowInput", "FlowEnvVar", "FlowStep", "StepDefinition", "FlowResult",
    "load_flow", "run_flow", "run_flow_async", "FlowRunner", "AsyncFlowRunner",
    "RunObserver", "FlowObservation",  # what FlowRunner(observer=...) calls (flowrun.otel.FlowTracer)
    # errors: the whole tree of flowrun._errors
]
__all__ += _error_names
__all__ += ["Paginate", "RateLimit", "PageInfo"]
__all__ += ["ConcurrencyLimit"]
