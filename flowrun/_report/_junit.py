"""JUnit XML: a ``testsuite`` per flow run, a ``testcase`` per step and per assertion.

CI systems (GitLab, Jenkins, GitHub reporters) read this shape::

    <testsuites name="flowrun" tests= failures= errors= skipped= time=>
      <testsuite name="balance_check" tests= failures= errors= skipped= time= timestamp=>
        <testcase classname="balance_check" name="balance" time=>
        <testcase classname="balance_check.balance" name="assert outputs.balance gt 0" time="0">
          <failure message="..." type="assertion">expression / expected / actual</failure>

A step that failed for a reason other than its assertions is a ``failure`` when the partner
answered wrongly (status, fault, TLS...), an ``error`` when the definition is wrong (exit code 2
errors: bad alias, keystore, data pill). A failed assertion fails its own testcase only.
xml.etree escapes text and attributes; control characters are shown escaped (``\\x1b``) and
characters XML cannot hold at all are replaced first.

Properties flag what a reviewer must see: ``insecure`` (on the suite and on each step's testcase)
when a step went through a profile with ``insecure_skip_verify``, ``interrupted`` (the signal) on
a flow that a signal stopped (its running step is an ``error`` of type ``interrupted``),
``failed_items`` on a for_each step's testcase (a step that passed with failed items under
``on_error: continue`` lists them, with their errors, in ``system-err`` too). Flows and
iterations that never started because of the signal are suites with one ``skipped`` testcase.
"""

from __future__ import annotations

import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowrun._errors import AssertionFailedError, FlowrunError, InternalError, RunInterruptedError
from flowrun._models._flow_results import FlowResult
from flowrun._models._numbers import dumps
from flowrun._models._redact import Secrets, visible
from flowrun._models._results import AssertionOutcome, StepResult
from flowrun._report._files import write_report
from flowrun._report._interruption import Interruption

# XML 1.0 forbids most control characters even when escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_MAX_TEXT = 4000


def junit_xml(results: Sequence[FlowResult], *, name: str = "flowrun",
              load_errors: Sequence[FlowrunError] = (), interrupted: Interruption | None = None) -> str:
    """The JUnit XML document for ``results`` (and flows that could not be loaded, and what a
    signal kept from starting)."""
    root = ET.Element("testsuites", name=name)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    hostname = _clean(socket.gethostname())
    for result in results:
        suite = _suite(result, hostname)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        total_time += result.duration_ms / 1000
    for error in load_errors:
        suite = ET.SubElement(root, "testsuite", name=_clean(error.file or "flow"), tests="1", failures="0",
                              errors="1", skipped="0", time="0")
        # A flow that crashed while it ran (an internal error) is told apart from one that did not load.
        case = ET.SubElement(suite, "testcase", classname=_clean(error.file or "flow"),
                             name="run" if isinstance(error, InternalError) else "load", time="0")
        _problem(case, "error", error)
        totals["tests"] += 1
        totals["errors"] += 1
    if interrupted is not None:
        for suite in not_run_suites(interrupted):
            root.append(suite)
            totals["tests"] += 1
            totals["skipped"] += 1
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: Path, results: Sequence[FlowResult], *, load_errors: Sequence[FlowrunError] = (),
                interrupted: Interruption | None = None, secrets: Secrets | None = None) -> None:
    """Write the report 0600, masked with ``secrets`` (see ``flowrun._report._files``)."""
    write_report(path, junit_xml(results, load_errors=load_errors, interrupted=interrupted), option="--report",
                 secrets=secrets)


def not_run_suites(interrupted: Interruption) -> list[ET.Element]:
    """One suite with one skipped testcase for each flow (or the iterations) a signal kept from starting."""
    suites = []
    for label, message in _not_run(interrupted):
        suite = ET.Element("testsuite", name=_clean(label), tests="1", failures="0", errors="0", skipped="1",
                           time="0")
        case = ET.SubElement(suite, "testcase", classname=_clean(label), name="not run", time="0")
        ET.SubElement(case, "skipped", message=_clean(message))
        suites.append(suite)
    return suites


def _not_run(interrupted: Interruption) -> list[tuple[str, str]]:
    message = f"not run: {interrupted.reason} stopped the run first"
    if interrupted.not_run:
        return [(label, message) for label in interrupted.not_run]
    if interrupted.not_run_count:
        count = interrupted.not_run_count
        return [(f"{count} iteration{'s' if count != 1 else ''} not run", message)]
    return []


def _suite(result: FlowResult, hostname: str) -> ET.Element:
    name = result.name if result.iteration is None else f"{result.name} [iteration {result.iteration}]"
    suite = ET.Element("testsuite", name=_clean(name), hostname=hostname,
                       timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()),
                       time=f"{result.duration_ms / 1000:.3f}")
    if result.file is not None:
        suite.set("file", _clean(str(result.file)))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for step in result.steps:
        for kind in _step_cases(suite, result.name, step):
            counts["tests"] += 1
            if kind:
                counts[kind] += 1
    flow_error = result.error
    if flow_error is not None and not any(step.error is flow_error for step in result.steps):
        case = ET.SubElement(suite, "testcase", classname=_clean(result.name), name="outputs", time="0")
        kind = _problem(case, _kind_of(flow_error), flow_error)
        counts["tests"] += 1
        counts[kind] += 1
    properties = ET.Element("properties")
    if result.insecure:
        ET.SubElement(properties, "property", name="insecure", value="true")
    if isinstance(result.error, RunInterruptedError):
        ET.SubElement(properties, "property", name="interrupted", value="true")
    for key, value in result.inputs.items():
        ET.SubElement(properties, "property", name=_clean(f"input.{key}"), value=_clean(_text(value)))
    if len(properties):
        suite.insert(0, properties)
    for key, value in counts.items():
        suite.set(key, str(value))
    return suite


def _step_cases(suite: ET.Element, flow_name: str, step: StepResult) -> list[str | None]:
    """Adds the step's testcase and its assertions' testcases; returns their outcome kinds."""
    kinds: list[str | None] = []
    case = ET.SubElement(suite, "testcase", classname=_clean(flow_name), name=_clean(step.step_id),
                         time=f"{step.duration_ms / 1000:.3f}")
    if step.insecure or step.iterations:
        properties = ET.SubElement(case, "properties")
        if step.insecure:
            ET.SubElement(properties, "property", name="insecure", value="true")
        if step.iterations:
            ET.SubElement(properties, "property", name="failed_items", value=str(step.failed_items))
    error = step.error
    if step.status == "skipped":
        ET.SubElement(case, "skipped", message="'when' is false")
        kinds.append("skipped")
    elif error is not None and not (isinstance(error, AssertionFailedError) and step.assertions):
        kinds.append(_problem(case, _kind_of(error), error))
    else:
        kinds.append(None)
    details = [f"type: {step.kind}", f"http_status: {_status(step.http_status)}", f"attempts: {len(step.attempts)}"]
    if step.insecure:
        details.append("insecure: the partner's certificate and host name were not verified")
    if step.request is not None:
        details.append(f"request: {step.request.method} {step.request.url}")
    if step.tls is not None:
        from flowrun._report._text import tls_facts

        details.append(f"tls: {tls_facts(step.tls)}")
    from flowrun._report._text import collection_lines, tolerated_failures

    tolerated = tolerated_failures(step)
    if tolerated is not None:
        details.append(tolerated)
    details.extend(collection_lines(step))
    details.extend(f"item {index}: {item.status} http_status: {_status(item.http_status)} "
                   f"attempts: {len(item.attempts)}"
                   + (f" idempotency key: {item.idempotency_key}" if item.idempotency_key else "")
                   for index, item in enumerate(step.iterations) if item.status != "failed")
    ET.SubElement(case, "system-out").text = _clean("\n".join(details))
    if tolerated is not None:
        # Where CI servers show the warnings of a passed test: the failed items with their errors.
        ET.SubElement(case, "system-err").text = _clean("\n".join(
            [tolerated, *(line for line in collection_lines(step) if line.startswith("item "))]))
    for index, outcome in enumerate(step.assertions):
        kinds.append(_assertion_case(suite, flow_name, step.step_id, index, outcome))
    return kinds


def _assertion_case(suite: ET.Element, flow_name: str, step_id: str, index: int,
                    outcome: AssertionOutcome) -> str | None:
    label = f"assert[{index}] {outcome.expression} {outcome.op} {_text(outcome.expected)}"
    case = ET.SubElement(suite, "testcase", classname=_clean(f"{flow_name}.{step_id}"), name=_clean(label),
                         time="0")
    if outcome.passed:
        return None
    failure = ET.SubElement(case, "failure", message=_clean(outcome.message or label), type="assertion")
    failure.text = _clean(f"step: {step_id}\nexpression: {outcome.expression}\n"
                          f"expected: {outcome.op} {_text(outcome.expected)}\nactual: {_text(outcome.actual)}")
    return "failures"


def _kind_of(error: FlowrunError) -> str:
    return "failures" if error.exit_code == 1 else "errors"


def _problem(case: ET.Element, kind: str, error: FlowrunError) -> str:
    tag = "failure" if kind == "failures" else "error"
    element = ET.SubElement(case, tag, message=_clean(str(error)), type=error.code)
    from flowrun._report._text import fault_lines

    body = [str(error), *(line.strip() for line in fault_lines(error))]
    if error.hint:
        body.append(f"hint: {error.hint}")
    element.text = _clean("\n".join(body))
    return kind


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _status(status: int | None) -> str:
    return "none (no response)" if status is None else str(status)


def _clean(text: str) -> str:
    # Control characters from partners are shown escaped (``\x1b``), like on the terminal; what
    # XML cannot hold even then (lone surrogates, U+FFFE) is replaced.
    text = _INVALID_XML.sub("\ufffd", visible(text))
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."
