"""What reports say about a run that a signal stopped: which signal, and what never started."""

from __future__ import annotations

from typing import Any

import attrs

from flowrun._models._record import ValueRecord


@attrs.frozen(eq=False, repr=False)
class Interruption(ValueRecord):
    """``reason`` names the signal ("SIGINT"); ``not_run`` labels what did not start (flow files for
    ``flowrun test``) and ``not_run_count`` counts it (iterations of ``flowrun run``)."""

    reason: str
    not_run: tuple[str, ...] = ()
    not_run_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"signal": self.reason, "not_run": max(self.not_run_count, len(self.not_run))}
        if self.not_run:
            data["not_run_flows"] = list(self.not_run)
        return data
