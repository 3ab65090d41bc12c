"""The HTML report: one self-contained file a reviewer opens in any browser, offline.

Layout: a summary (status, counts, duration, insecure and interruption notices, flows that could
not be loaded), then one section per flow run: a timeline (one bar per step, attempts inside it,
pure CSS), then per step its status, attempts, assertions, error and hint, TLS facts (version,
cipher, the client certificate sent and its SHA-256 fingerprint, the server's chain), the
request (method, URL, headers redacted by name) and an excerpt of the response (headers redacted,
body with secret-named fields redacted, capped). Request bodies are never shown (as in every report).

Everything shown comes from the results, goes through the run's ``Secrets`` (the one masking
function), then ``html.escape``: a partner's ``<script>`` is text, never markup. The file carries
its own CSS and one small script (expand / collapse every step), allowed by a Content-Security-Policy
that names the script's hash and nothing else: no request leaves the page, inline handlers or
scripts from a partner's bytes would not run even if one got past the escaping.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowrun._errors import FlowrunError
from flowrun._models._flow_results import FlowResult, summarize
from flowrun._models._numbers import dumps
from flowrun._models._redact import Secrets, redact_headers, visible
from flowrun._models._results import Attempt, StepResult, TlsInfo
from flowrun._report._files import write_report
from flowrun._report._interruption import Interruption
from flowrun._report._text import body_text, collection_lines, fault_lines, tolerated_failures
from flowrun._version import __version__
from flowrun._wording import counted

# A lone surrogate (from a partner's JSON escapes) cannot be written as UTF-8: shown replaced.
_SURROGATE = re.compile("[\ud800-\udfff]")
_BODY_SHOWN = 2000
_TEXT_SHOWN = 4000

_SCRIPT = """
document.querySelectorAll('button[data-open]').forEach(function (button) {
  button.addEventListener('click', function () {
    var open = button.getAttribute('data-open') === 'all';
    document.querySelectorAll('details.step').forEach(function (d) { d.open = open; });
  });
});
""".strip()

_CSS = """
:root { --ok: #1a7f37; --fail: #cf222e; --skip: #9a6700; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328;
       background: #f6f8fa; }
header, main { max-width: 1100px; margin: 0 auto; padding: 16px 24px; }
header { background: #fff; border-bottom: 1px solid var(--line); max-width: none; }
header > div { max-width: 1052px; margin: 0 auto; }
h1 { font-size: 20px; margin: 0 0 8px; }
h2 { font-size: 16px; margin: 0; }
h3 { font-size: 13px; margin: 12px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 8px; margin: 4px 0;
      white-space: pre-wrap; word-break: break-all; max-height: 320px; overflow: auto; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600;
         font-size: 12px; }
.passed { background: var(--ok); } .failed { background: var(--fail); } .skipped { background: var(--skip); }
.warn { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.bad { background: #ffebe9; border: 1px solid #ff8182; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.insecure { background: var(--fail); color: #fff; font-weight: 700; padding: 1px 6px; border-radius: 4px;
            font-size: 11px; }
.counts { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; }
.counts div { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; }
.counts b { display: block; font-size: 18px; }
section.flow { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin: 16px 0;
               padding: 12px 16px; }
section.flow > .head { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
.muted { color: var(--muted); }
.timeline { margin: 10px 0; }
.lane { display: grid; grid-template-columns: 180px 1fr 80px; gap: 8px; align-items: center; margin: 2px 0; }
.lane .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.track { position: relative; height: 16px; background: #eaeef2; border-radius: 3px; }
.bar { position: absolute; top: 0; height: 16px; border-radius: 3px; min-width: 2px; opacity: .85; }
.bar.attempt { top: 3px; height: 10px; background: rgba(255,255,255,.55); border-radius: 2px; }
details.step { border-top: 1px solid var(--line); padding: 6px 0; }
details.step > summary { cursor: pointer; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
details.step > div { padding: 4px 0 4px 20px; }
table { border-collapse: collapse; margin: 4px 0; }
td, th { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; font-size: 12px; }
th { background: #f6f8fa; }
tr.fail td { background: #ffebe9; }
.tools { margin: 8px 0; } .tools button { font: inherit; margin-right: 6px; }
""".strip()


def html_report(results: Sequence[FlowResult], *, title: str = "flowrun report",
                load_errors: Sequence[FlowrunError] = (), interrupted: Interruption | None = None,
                duration_ms: float | None = None, secrets: Secrets | None = None) -> str:
    """The whole HTML document for ``results`` (and the flows that could not be loaded or run)."""
    page = _Page(secrets)
    parts = [_summary(page, results, title, load_errors, interrupted, duration_ms)]
    parts.append('<main>')
    parts.append('<div class="tools"><button type="button" data-open="all">Expand all steps</button>'
                 '<button type="button" data-open="none">Collapse all steps</button></div>')
    parts.extend(_flow(page, result, index) for index, result in enumerate(results, 1))
    parts.append('</main>')
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{page.text(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(parts)
        + f"\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )


def write_html(path: Path, results: Sequence[FlowResult], *, load_errors: Sequence[FlowrunError] = (),
               interrupted: Interruption | None = None, duration_ms: float | None = None,
               secrets: Secrets | None = None) -> None:
    """Write the report 0600, masked with ``secrets`` (see ``flowrun._report._files``)."""
    text = html_report(results, load_errors=load_errors, interrupted=interrupted, duration_ms=duration_ms,
                       secrets=secrets)
    write_report(path, text, option="--html", secrets=secrets)


class _Page:
    """Masks (with the run's secrets, and each step's own) and escapes every text put on the page."""

    def __init__(self, secrets: Secrets | None) -> None:
        self.secrets = secrets
        self.step_secrets: Secrets | None = None

    def text(self, value: Any, limit: int = _TEXT_SHOWN) -> str:
        text = value if isinstance(value, str) else _json(value)
        for secrets in (self.secrets, self.step_secrets):
            if secrets is not None:
                text = secrets.mask(text)
        text = _SURROGATE.sub("\ufffd", visible(text))
        if len(text) > limit:
            text = f"{text[:limit]}... ({len(text)} characters in all)"
        return html.escape(text, quote=True)


def _json(value: Any) -> str:
    try:
        return dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 10_000 else f"{value / 1000:.2f} s"


def _assertion_count(step: StepResult) -> str:
    if not step.assertions:
        return ""
    failed = sum(1 for outcome in step.assertions if not outcome.passed)
    text = counted(len(step.assertions), "assertion") + (f", {failed} failed" if failed else "")
    return f'<span class="muted">{text}</span>'


def _tls_short(page: _Page, tls: TlsInfo | None) -> str:
    if tls is None or not tls.version:
        return ""
    sent = " · client cert sent" if tls.client_cert_sha256 or tls.client_cert_subject else ""
    return f'<span class="muted mono">{page.text(tls.version)}{sent}</span>'


def _badge(status: str) -> str:
    label = {"passed": "passed", "failed": "FAILED", "skipped": "skipped"}.get(status, status)
    return f'<span class="badge {status if status in ("passed", "failed", "skipped") else "failed"}">{label}</span>'


_INSECURE = ('<span class="insecure" title="the partner\'s certificate and host name were not verified">'
             'INSECURE</span>')


def _summary(page: _Page, results: Sequence[FlowResult], title: str, load_errors: Sequence[FlowrunError],
             interrupted: Interruption | None, duration_ms: float | None) -> str:
    counts = summarize(list(results))
    ok = all(r.ok for r in results) and not load_errors and interrupted is None
    total = duration_ms if duration_ms is not None else sum(r.duration_ms for r in results)
    out = ['<header id="summary"><div>',
           f'<h1>{page.text(title)} {_badge("passed" if ok else "failed")}</h1>',
           f'<div class="muted">flowrun {page.text(__version__)} · '
           f'{page.text(time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime()))} · {_ms(total)}</div>',
           '<div class="counts">']
    for label, value in (("flows passed", counts["flows_passed"]), ("flows failed", counts["flows_failed"]),
                         ("steps", counts["steps"]), ("steps failed", counts["steps_failed"]),
                         ("steps skipped", counts["steps_skipped"]), ("assertions", counts["assertions"]),
                         ("assertions failed", counts["assertions_failed"]), ("not run", len(load_errors))):
        out.append(f'<div class="count" data-count="{html.escape(label)}"><b>{value}</b>{html.escape(label)}</div>')
    out.append("</div>")
    insecure = [r for r in results if r.insecure]
    if insecure:
        names = ", ".join(page.text(_flow_name(r)) for r in insecure)
        out.append(f'<div class="warn">{_INSECURE} these flows went through a protocol profile with '
                   f"insecure_skip_verify (the partner was not verified): {names}</div>")
    if interrupted is not None:
        data = interrupted.to_dict()
        line = f"{page.text(interrupted.reason)} stopped the run; {data['not_run']} not run"
        if interrupted.not_run:
            line += ": " + ", ".join(page.text(label) for label in interrupted.not_run)
        out.append(f'<div class="bad" id="interrupted">{line}</div>')
    if load_errors:
        out.append('<div class="bad" id="not-run"><b>Could not be run</b><ul>')
        for error in load_errors:
            out.append(f"<li>{page.text(error.file or 'flow')}: {_error(page, error)}</li>")
        out.append("</ul></div>")
    if results:
        out.append('<h3>Flows</h3><ul class="index">')
        for index, result in enumerate(results, 1):
            out.append(f'<li><a href="#flow-{index}">{page.text(_flow_name(result))}</a> {_badge(result.status)}'
                       f'{" " + _INSECURE if result.insecure else ""} <span class="muted">'
                       f"{_ms(result.duration_ms)}</span></li>")
        out.append("</ul>")
    out.append("</div></header>")
    return "\n".join(out)


def _flow_name(result: FlowResult) -> str:
    return result.name if result.iteration is None else f"{result.name} [iteration {result.iteration}]"


def _flow(page: _Page, result: FlowResult, index: int) -> str:
    page.step_secrets = next((step.secrets for step in result.steps if step.secrets is not None), None)
    out = [f'<section class="flow" id="flow-{index}" data-flow="{page.text(result.name)}" '
           f'data-status="{result.status}">',
           f'<div class="head"><h2>{page.text(_flow_name(result))}</h2>{_badge(result.status)}'
           f'{_INSECURE if result.insecure else ""}<span class="muted">{counted(len(result.steps), "step")} · '
           f"{_ms(result.duration_ms)}</span></div>"]
    if result.file is not None:
        out.append(f'<div class="muted mono">{page.text(str(result.file))}</div>')
    if result.inputs:
        out.append(f'<div class="muted">inputs: <code>{page.text(dict(result.inputs), 600)}</code></div>')
    out.append(_timeline(page, result))
    for step in result.steps:
        out.append(_step(page, step))
    if result.error is not None and not any(step.error is result.error for step in result.steps):
        out.append(f'<div class="bad">{_error(page, result.error)}</div>')
    if result.outputs:
        out.append(f"<h3>Outputs</h3><pre>{page.text(body_text(dict(result.outputs)), _BODY_SHOWN)}</pre>")
    out.append("</section>")
    page.step_secrets = None
    return "\n".join(out)


def _timeline(page: _Page, result: FlowResult) -> str:
    """One lane per step: steps run one after the other, so each bar starts where the previous
    steps' durations end; attempts are drawn inside their step at their own start times."""
    total = max(sum(step.duration_ms for step in result.steps), result.duration_ms, 0.001)
    out = ['<div class="timeline" role="img" aria-label="step timeline">']
    offset = 0.0
    for step in result.steps:
        left = 100 * offset / total
        width = 100 * step.duration_ms / total
        colour = {"passed": "var(--ok)", "failed": "var(--fail)"}.get(step.status, "var(--skip)")
        attempts = "".join(_attempt_bar(attempt, step) for attempt in step.attempts) if len(step.attempts) > 1 else ""
        out.append(f'<div class="lane"><span class="name mono">{page.text(step.step_id)}</span>'
                   f'<div class="track"><div class="bar" style="left:{left:.3f}%;width:{width:.3f}%;'
                   f'background:{colour}" title="{page.text(step.step_id)} {_ms(step.duration_ms)}">'
                   f"{attempts}</div></div>"
                   f'<span class="muted mono">{_ms(step.duration_ms)}</span></div>')
        offset += step.duration_ms
    out.append("</div>")
    return "\n".join(out)


def _attempt_bar(attempt: Attempt, step: StepResult) -> str:
    first = step.attempts[0].started_at
    span = max(step.duration_ms, 0.001)
    left = min(100.0, 100 * (attempt.started_at - first) * 1000 / span)
    width = min(100.0 - left, 100 * attempt.duration_ms / span)
    return (f'<div class="bar attempt" style="left:{left:.3f}%;width:{width:.3f}%" '
            f'title="attempt {attempt.number} {_ms(attempt.duration_ms)}"></div>')


def _step(page: _Page, step: StepResult) -> str:
    tolerated = tolerated_failures(step)
    opened = " open" if step.status == "failed" or tolerated is not None else ""
    http = f'<span class="mono">HTTP {step.http_status}</span>' if step.http_status is not None else ""
    out = [f'<details class="step" data-step="{page.text(step.step_id)}" data-status="{step.status}"{opened}>',
           f'<summary>{_badge(step.status)}<b class="mono">{page.text(step.step_id)}</b>'
           f'<span class="muted">{page.text(step.kind)}</span>{http}'
           f'<span class="muted">{counted(len(step.attempts), "attempt")} · {_ms(step.duration_ms)}</span>'
           f'{_assertion_count(step)}{_tls_short(page, step.tls)}{_INSECURE if step.insecure else ""}</summary><div>']
    if step.status == "skipped":
        out.append('<div class="muted">not run: its "when" condition is false</div>')
    if step.error is not None:
        out.append(f'<div class="bad">{_error(page, step.error)}</div>')
    if tolerated is not None:
        items = "\n".join(line for line in collection_lines(step) if line.startswith("item "))
        out.append(f'<div class="warn">{page.text(tolerated)}<pre>{page.text(items, _BODY_SHOWN)}</pre></div>')
    if step.insecure:
        out.append(f'<div class="warn">{_INSECURE} the partner\'s certificate and host name were not verified '
                   "(a protocol profile with insecure_skip_verify)</div>")
    if step.attempts:
        out.append("<h3>Attempts</h3><table><tr><th>#</th><th>outcome</th><th>duration</th></tr>")
        for attempt in step.attempts:
            shown = (f"HTTP {attempt.status}" if attempt.status is not None else
                       attempt.error.code if attempt.error is not None else "-")
            failed = attempt.error is not None or (attempt.status is not None and attempt.status >= 400)
            out.append(f'<tr class="{"fail" if failed else ""}"><td>{attempt.number}</td>'
                       f"<td>{page.text(shown)}</td><td>{_ms(attempt.duration_ms)}</td></tr>")
        out.append("</table>")
    if step.assertions:
        out.append("<h3>Assertions</h3><table><tr><th></th><th>that</th><th>expected</th><th>actual</th>"
                   "<th>message</th></tr>")
        for outcome in step.assertions:
            mark = "ok" if outcome.passed else "FAIL"
            out.append(f'<tr class="{"" if outcome.passed else "fail"}"><td>{mark}</td>'
                       f"<td><code>{page.text(outcome.expression)}</code></td>"
                       f"<td><code>{page.text(outcome.op)} {page.text(outcome.expected, 600)}</code></td>"
                       f"<td><code>{page.text(outcome.actual, 600)}</code></td>"
                       f"<td>{page.text(outcome.message if not outcome.passed else '')}</td></tr>")
        out.append("</table>")
    if step.tls is not None:
        out.append(_tls(page, step.tls))
    if step.request is not None:
        data = step.request.to_dict()
        lines = [f"{data['method']} {data['url']}", *(f"{name}: {value}" for name, value in data["headers"])]
        out.append(f"<h3>Request</h3><pre>{page.text(chr(10).join(lines))}</pre>")
    if step.http_status is not None:
        lines = [f"HTTP {step.http_status}", *(f"{name}: {value}" for name, value in redact_headers(step.headers))]
        out.append(f"<h3>Response</h3><pre>{page.text(chr(10).join(lines))}</pre>")
        if step.body is not None:
            out.append(f"<pre class=\"body\">{page.text(body_text(step.body), _BODY_SHOWN)}</pre>")
    if step.outputs:
        out.append(f"<h3>Outputs</h3><pre>{page.text(body_text(dict(step.outputs)), _BODY_SHOWN)}</pre>")
    out.append("</div></details>")
    return "\n".join(out)


def _tls(page: _Page, tls: TlsInfo) -> str:
    rows = [("version", tls.version or "-"), ("cipher", tls.cipher or "-")]
    if tls.client_cert_subject or tls.client_cert_sha256:
        rows.append(("certificate sent", tls.client_cert_subject or "a client certificate"))
        if tls.client_cert_sha256:
            rows.append(("its SHA-256 fingerprint", tls.client_cert_sha256))
    else:
        rows.append(("certificate sent", "none"))
    rows.append(("server certificate", tls.server_cert_subject or "-"))
    for depth, subject in enumerate(tls.server_chain[1:], 1):
        rows.append((f"server chain [{depth}]", subject))
    body = "".join(f"<tr><th>{html.escape(name)}</th><td class=\"mono\">{page.text(value)}</td></tr>"
                   for name, value in rows)
    return f'<h3>TLS</h3><table class="tls">{body}</table>'


def _error(page: _Page, error: FlowrunError) -> str:
    lines = [f"<b>error[{page.text(error.code)}]</b> {page.text(str(error))}"]
    lines.extend(f"<div class=\"mono\">{page.text(line.strip())}</div>" for line in fault_lines(error))
    if error.hint:
        lines.append(f"<div><i>hint</i>: {page.text(error.hint)}</div>")
    return "".join(lines)
