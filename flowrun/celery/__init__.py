"""Running flows on Celery workers with a Redis broker (``pip install 'flowrun[celery]'``).

The core never imports this package. ``create_app`` gives the Celery app that ``flowrun worker``
starts and ``flowrun run --broker`` sends data rows to; ``make_bundle`` packs a flow with the step
definitions and WSDLs it uses (never aliases or secrets). See docs/scale.md for the guarantees.
"""

from flowrun.celery._app import RUN_ROW_TASK, create_app
from flowrun.celery._bundle import make_bundle
from flowrun.celery._ledger import StepLedger, is_idempotent
from flowrun.celery._wire import error_from_dict, flow_result_from_dict, step_result_from_dict

__all__ = [
    "RUN_ROW_TASK",
    "StepLedger",
    "create_app",
    "error_from_dict",
    "flow_result_from_dict",
    "is_idempotent",
    "make_bundle",
    "step_result_from_dict",
]
