"""A readable summary of flow results: one line per step, then errors, failed assertions, TLS facts.

::

    flow balance_check  passed  2 steps  41.2 ms
      ok    balance  rest  200  1 attempt   12.3 ms
            tls: TLSv1.3 TLS_AES_256_GCM_SHA384; sent CN=client (sha256 1a2b3c4d...); server CN=localhost
      FAIL  ledger   soap  500  1 attempt   20.1 ms
            error[soap.fault]: ...
            hint: ...
    outputs:
      balance = 1234.5

A flow or step that went through a protocol profile with ``insecure_skip_verify`` is flagged
``INSECURE`` (never quietly). Only results are read; colour comes from the Console (none when piped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from flowrun._errors import AssertionFailedError, FlowrunError, SoapFaultError
from flowrun._eval._capture import shape_of
from flowrun._models._flow_results import FlowResult, summarize
from flowrun._models._numbers import dumps
from flowrun._models._redact import redact_body
from flowrun._models._results import AssertionOutcome, StepResult, TlsInfo
from flowrun._wording import counted

if TYPE_CHECKING:
    from flowrun._registry import InsecureUse

_SHOWN = 200
_BODY_SHOWN = 2000
_ITEM_ERROR_SHOWN = 300
_STATUS_LABELS = {"passed": ("ok", "green"), "failed": ("FAIL", "red"), "skipped": ("skip", "yellow")}


class Styler(Protocol):
    def style(self, text: str, *styles: str) -> str: ...


class _Plain:
    def style(self, text: str, *styles: str) -> str:
        return text


def render_flow(result: FlowResult, styler: Styler | None = None, *, title: str | None = None,
                all_assertions: bool = False) -> list[str]:
    """The lines that summarize one run of a flow."""
    s = styler or _Plain()
    status = s.style("passed", "green", "bold") if result.ok else s.style("FAILED", "red", "bold")
    name = title or result.name
    if result.iteration is not None:
        name += f" [iteration {result.iteration}]"
    flag = f"  {s.style('INSECURE', 'red', 'bold')}" if result.insecure else ""
    lines = [f"{s.style('flow', 'dim')} {s.style(name, 'bold')}  {status}  "
             f"{counted(len(result.steps), 'step')}  {_ms(result.duration_ms)}{flag}"]
    width = max((len(step.step_id) for step in result.steps), default=0)
    shown_tls: TlsInfo | None = None
    insecure_before = False
    for step in result.steps:
        # Kept-alive connections repeat the same TLS facts: show them when they change; the
        # insecure note likewise, on the first step of each insecure stretch.
        lines.extend(render_step(step, s, width=width, show_tls=step.tls != shown_tls,
                                 all_assertions=all_assertions, show_insecure=not insecure_before))
        shown_tls = step.tls or shown_tls
        insecure_before = step.insecure
    if result.error is not None and not any(step.error is result.error for step in result.steps):
        lines.extend(f"  {line}" for line in render_error(result.error, s))
    if result.outputs:
        lines.append(s.style("outputs:", "dim"))
        lines.extend(f"  {key} = {_show(value)}" for key, value in result.outputs.items())
    return lines


def render_flow_result(result: FlowResult, styler: Styler | None = None) -> str:
    """``render_flow`` as one block of text."""
    return "\n".join(render_flow(result, styler))


def render_step(step: StepResult, styler: Styler | None = None, *, width: int = 0, show_tls: bool = True,
                all_assertions: bool = False, show_insecure: bool = True) -> list[str]:
    s = styler or _Plain()
    label, colour = _STATUS_LABELS.get(step.status, (step.status, "dim"))
    http = str(step.http_status) if step.http_status is not None else "-"
    attempts = counted(len(step.attempts), "attempt") if step.attempts else ""
    columns = [s.style(label.ljust(4), colour, "bold"), step.step_id.ljust(width), step.kind.ljust(4), http.ljust(3)]
    if step.status != "skipped":
        columns += [attempts.ljust(10), _ms(step.duration_ms)]
    lines = ["  " + "  ".join(columns).rstrip()]
    indent = " " * 8
    if step.insecure and show_insecure:
        lines.append(indent + s.style("insecure: the partner's certificate and host name were not verified "
                                      "(insecure_skip_verify)", "red"))
    if step.tls is not None and show_tls:
        lines.append(indent + s.style("tls: " + tls_facts(step.tls), "dim"))
    tolerated = tolerated_failures(step)
    if tolerated is not None:
        lines.append(indent + s.style("warning", "yellow", "bold") + tolerated.removeprefix("warning"))
    lines.extend(indent + s.style(line, "dim") for line in collection_lines(step))
    if all_assertions:
        lines.extend(indent + s.style("ok", "green") + f"    assert {outcome.expression} {outcome.op} "
                     f"{_show(outcome.expected)}" for outcome in step.assertions if outcome.passed)
    failed = [outcome for outcome in step.assertions if not outcome.passed]
    for outcome in failed:
        lines.extend(indent + line for line in render_assertion(outcome, s))
    if step.error is not None and not (failed and isinstance(step.error, AssertionFailedError)):
        lines.extend(indent + line for line in render_error(step.error, s))
    return lines


def collection_lines(step: StepResult) -> list[str]:
    """The pages of a paginated step, the items of a for_each step, and the idempotency key sent."""
    lines: list[str] = []
    if step.idempotency_key is not None:
        lines.append(f"idempotency key: {step.idempotency_key}")
    if step.pages:
        total = sum(page.items for page in step.pages)
        lines.append(f"{counted(len(step.pages), 'page')}, {counted(total, 'item')}")
        lines.extend(f"page {page.number}: {page.status if page.status is not None else '-'}  "
                     f"{page.items} items  {_ms(page.duration_ms)}" for page in step.pages)
    if step.iterations:
        counts = {status: sum(1 for item in step.iterations if item.status == status)
                  for status in ("passed", "failed", "skipped")}
        lines.append(f"for_each: {counted(len(step.iterations), 'item')}: " + ", ".join(
            f"{number} {status}" for status, number in counts.items() if number))
        lines.extend(f"item {index}: {item.status}  {item.http_status if item.http_status is not None else '-'}"
                     f"  {_ms(item.duration_ms)}"
                     + (f"  idempotency key {item.idempotency_key}" if item.idempotency_key else "")
                     + (f"  {_item_error(item.error)}" if item.error else "")
                     for index, item in enumerate(step.iterations) if item.status == "failed")
    return lines


def tolerated_failures(step: StepResult) -> str | None:
    """The warning for a for_each step that passed although items failed (``on_error: continue``)."""
    failed = step.failed_items
    if not failed or step.status != "passed":
        return None
    return (f"warning: {failed} of {counted(len(step.iterations), 'item')} failed; the step passed because "
            "its on_error is continue (bound it with an assertion on failed_items)")


def _item_error(error: FlowrunError) -> str:
    """A failed item's error on one line: its code and the first line of its message (the step
    is named on the line above)."""
    first = (error.message.splitlines() or [""])[0]
    return f"error[{error.code}]: {first if len(first) <= _ITEM_ERROR_SHOWN else first[:_ITEM_ERROR_SHOWN] + '...'}"


def render_assertion(outcome: AssertionOutcome, styler: Styler | None = None) -> list[str]:
    s = styler or _Plain()
    headline = outcome.message or f"{outcome.expression} {outcome.op} {_show(outcome.expected)}"
    return [
        f"{s.style('assertion failed', 'red')}: {headline}",
        f"  expression: {outcome.expression}",
        f"  expected:   {outcome.op} {_show(outcome.expected)}",
        f"  actual:     {_show(outcome.actual)}",
    ]


def render_error(error: FlowrunError, styler: Styler | None = None) -> list[str]:
    s = styler or _Plain()
    # A message may quote a partner (a fault string, a token endpoint's description) over several
    # lines: those are marked as continuation, so that none can pass for a step or a verdict.
    first, *more = str(error).splitlines() or [""]
    lines = [f"{s.style(f'error[{error.code}]', 'red')}: {first}", *(f"  | {line}" for line in more)]
    if isinstance(error, AssertionFailedError) and error.expression is not None:
        lines.append(f"  expression: {error.expression}")
        lines.append(f"  expected:   {_show(error.expected)}")
        lines.append(f"  actual:     {_show(error.actual)}")
    lines.extend(fault_lines(error))
    if error.hint:
        lines.append(f"{s.style('hint', 'cyan')}: {error.hint}")
    return lines


def fault_lines(error: FlowrunError) -> list[str]:
    """A SOAP fault's code, string, actor and detail (capped, redacted), for text and JUnit."""
    if not isinstance(error, SoapFaultError):
        return []
    lines = [f"  fault code:   {error.faultcode or '(none)'}", f"  fault string: {error.faultstring or '(none)'}"]
    if error.actor:
        lines.append(f"  fault actor:  {error.actor}")
    if error.detail is not None:
        lines.append(f"  fault detail: {_capped(body_text(error.detail, indent=None))}")
    return lines


def tls_facts(tls: TlsInfo) -> str:
    """``TLSv1.3 TLS_AES_256_GCM_SHA384; sent CN=client (sha256 1a2b...); server CN=localhost``."""
    parts = [" ".join(p for p in (tls.version, tls.cipher) if p) or "TLS"]
    if tls.client_cert_subject or tls.client_cert_sha256:
        digest = f" (sha256 {tls.client_cert_sha256[:16]}...)" if tls.client_cert_sha256 else ""
        parts.append(f"sent {tls.client_cert_subject or 'a client certificate'}{digest}")
    else:
        parts.append("no client certificate sent")
    if tls.server_cert_subject:
        parts.append(f"server {tls.server_cert_subject}")
    return "; ".join(parts)


def render_request(step: StepResult) -> list[str]:
    """``-v``: the request a step sent (headers and body redacted, the body capped), each attempt's
    outcome, and the body it got back (capped, redacted) with its shape."""
    lines: list[str] = []
    if step.request is not None:
        data = step.request.to_dict()
        lines.append(f"> {data['method']} {data['url']}")
        lines.extend(f"> {name}: {value}" for name, value in data["headers"])
        if step.request.body:
            lines.extend(f"> {line}" for line in _capped(step.request.body.decode("utf-8", "replace")).splitlines())
    for attempt in step.attempts:
        outcome = str(attempt.status) if attempt.status is not None else (
            attempt.error.code if attempt.error is not None else "-")
        lines.append(f"< attempt {attempt.number}: {outcome} in {_ms(attempt.duration_ms)}")
    if step.http_status is not None:
        lines.append(f"< body shape: {shape_of(step.body)}")
        if step.body is not None:
            lines.append(f"< body: {_capped(body_text(step.body, indent=None))}")
        if step.soap_headers:
            lines.append(f"< soap_headers: {_capped(body_text(step.soap_headers, indent=None))}")
    return lines


def render_body(step: StepResult) -> list[str]:
    """``--show-body``: the parsed body a step's output expressions read (redacted), as JSON."""
    lines = [f"body = {body_text(step.body)}"]
    if step.soap_headers:
        lines.append(f"soap_headers = {body_text(step.soap_headers)}")
    if step.fault is not None:
        lines.append(f"fault = {body_text(step.fault)}")
    return lines


def body_text(value: Any, *, indent: int | None = 2) -> str:
    """A parsed body as JSON text, values named like secrets redacted."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    try:
        text = dumps(value, ensure_ascii=False, indent=indent)
    except (TypeError, ValueError):
        text = repr(value)
    return redact_body(text)


def _capped(text: str) -> str:
    text = redact_body(text)
    return text if len(text) <= _BODY_SHOWN else f"{text[:_BODY_SHOWN]}... ({len(text)} characters in all)"


def render_insecure(use: InsecureUse, styler: Styler | None = None) -> list[str]:
    """The warning printed (to stderr) the first time a run uses an insecure protocol profile."""
    s = styler or _Plain()
    return [f"{s.style('warning[insecure]', 'yellow', 'bold')}: {use.message}",
            f"  {s.style('hint', 'cyan')}: {use.hint}"]


def render_interrupted(reason: str, completed: int, interrupted: int, not_run: int, unit: str,
                       styler: Styler | None = None) -> str:
    """``interrupted by SIGTERM: 3 iterations completed, 1 interrupted, 996 not run``."""
    s = styler or _Plain()
    return s.style(f"interrupted by {reason}: {counted(completed, unit)} completed, {interrupted} interrupted, "
                   f"{not_run} not run", "red", "bold")


def render_summary(results: Sequence[FlowResult], styler: Styler | None = None) -> str:
    return render_counts(summarize(list(results)), styler)


def render_counts(counts: Mapping[str, int], styler: Styler | None = None) -> str:
    """The summary line from ``summarize``'s counts (a long run keeps counts, not results)."""
    s = styler or _Plain()
    flows = f"{counts['flows_passed']} passed, {counts['flows_failed']} failed"
    text = (f"{counted(counts['flows'], 'flow')}: {flows}; {counted(counts['steps'], 'step')} "
            f"({counts['steps_failed']} failed, {counts['steps_skipped']} skipped); "
            f"{counted(counts['assertions'], 'assertion')} ({counts['assertions_failed']} failed)")
    return s.style(text, "red" if counts["flows_failed"] else "green", "bold")


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 10_000 else f"{value / 1000:.2f} s"


def _show(value: Any) -> str:
    try:
        text = dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
