"""flowrun: run REST and SOAP integration steps through Connection & Credential aliases.

Light names (errors, records, results) are imported eagerly; executors and the registry load
on first use, so that ``import flowrun`` stays cheap and a REST-only run never imports zeep.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowrun._errors import *  # noqa: F403
from flowrun._errors import __all__ as _error_names
from flowrun._models._aliases import (
    Alias,
    Connection,
    Credential,
    Keystore,
    ProtocolProfile,
    RetryPolicy,
    TrustStoreCert,
)
from flowrun._models._results import AssertionOutcome, Attempt, RequestInfo, StepResult, TlsInfo
from flowrun._models._secret import SecretRef
from flowrun._models._steps import Body, FilePart, ResponseSpec, RestStep, SoapStep
from flowrun._version import __version__

if TYPE_CHECKING:
    from flowrun._registry import Registry, ResolvedConnection

# name -> module, imported on first attribute access.
_LAZY = {
    "Registry": "flowrun._registry",
    "ResolvedConnection": "flowrun._registry",
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
    "SecretRef",
    # steps and results
    "RestStep", "SoapStep", "Body", "FilePart", "ResponseSpec",
    "StepResult", "Attempt", "TlsInfo", "RequestInfo", "AssertionOutcome",
    # resolution
    "Registry", "ResolvedConnection",
    # errors: the whole tree of flowrun._errors
]
__all__ += _error_names
