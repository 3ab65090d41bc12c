"""`flowrun run` streams its reports: the text equals the in-memory report, nothing is kept per iteration."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from flowrun._models._numbers import dumps
from flowrun._models._redact import Secrets
from flowrun._report._interruption import Interruption
from flowrun._report._json import run_report
from flowrun._report._junit import junit_xml
from flowrun._report._stream import JsonStream, JunitStream, RunTally
from tests.flows.test_junit import sample_results


def _no_timestamps(text: str) -> str:
    return re.sub(r'timestamp="[^"]*"', 'timestamp=""', text)


@pytest.mark.parametrize("interrupted", [None, Interruption("SIGINT", not_run_count=3)])
@pytest.mark.parametrize("copies", [0, 1, 5, 400])
def test_streamed_reports_equal_the_whole_list_reports(tmp_path: Path, copies: int,
                                                       interrupted: Interruption | None) -> None:
    # 1: a single run (printed as is); more: iterations.
    results = sample_results()[:1] if copies == 1 else sample_results() * copies
    secrets = Secrets()
    tally, json_stream, junit_stream = RunTally(), JsonStream(secrets), JunitStream()
    for result in results:
        tally.add(result)
        json_stream.add(result)
        junit_stream.add(result)
    many = len(results) != 1
    out = io.StringIO()
    json_stream.write(out, tally, many=many, interrupted=interrupted)
    expected = dumps(run_report(results, many=many, interrupted=interrupted), indent=2, ensure_ascii=False,
                     default=None) + "\n"
    assert out.getvalue() == expected
    json.loads(out.getvalue())
    report = tmp_path / "junit.xml"
    junit_stream.write(report, interrupted=interrupted, secrets=secrets)
    assert _no_timestamps(report.read_text()) == _no_timestamps(junit_xml(results, interrupted=interrupted))
    assert report.stat().st_mode & 0o777 == 0o600
    assert tally.count == len(results)
    assert tally.exit_code == (max((r.error.exit_code if r.error else 1) for r in results if not r.ok)
                               if any(not r.ok for r in results) else 0)


def test_streamed_reports_mask_secrets(tmp_path: Path) -> None:
    secret = "s3cr3t-Value-42"
    secrets = Secrets()
    secrets.add(secret)
    result = sample_results()[0]
    result = type(result)(name=f"flow {secret}", status=result.status, steps=result.steps,
                          duration_ms=result.duration_ms, error=result.error, inputs={"token": secret})
    json_stream, junit_stream, tally = JsonStream(secrets), JunitStream(), RunTally()
    for _ in range(3):
        tally.add(result)
        json_stream.add(result)
        junit_stream.add(result)
    out = io.StringIO()
    json_stream.write(out, tally, many=True, interrupted=None)
    report = tmp_path / "junit.xml"
    junit_stream.write(report, interrupted=None, secrets=secrets)
    assert secret not in out.getvalue() and "flow " in out.getvalue()
    assert secret not in report.read_text() and "flow " in report.read_text()
