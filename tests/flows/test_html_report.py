"""The HTML report (``--html``): self-contained, masked, escaped, and rendered by a real browser.

The browser is Debian's ``chromium`` in headless mode: ``--dump-dom`` gives the DOM after the
page's own script ran (so a partner's ``<script>`` that ran would show), ``--screenshot`` a PNG.
"""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from flowrun._cli import main
from flowrun._models._redact import Secrets
from flowrun._report._html import html_report
from tests._binaries import require_binary
from tests.flows.conftest import API_KEY, write_json
from tests.flows.test_junit import sample_results

# What a hostile partner puts in its answer: markup that would change the page if it were parsed.
HOSTILE = ('<script>document.body.setAttribute("data-pwned", "script")</script>'
           '<img src="x" onerror="document.body.setAttribute(\'data-pwned\', \'img\')">')


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    binary = require_binary("chromium")
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False)


def flows(directory: Path) -> Path:
    write_json(directory / "hostile.json", {
        "name": "hostile_echo",
        "steps": [{"id": "echo", "type": "rest", "alias": "bank", "method": "POST", "path": "/echo",
                   "body": {"json": {"note": HOSTILE}},
                   "assert": [{"that": "body.json.note", "equals": "harmless"}]}]})
    write_json(directory / "balance.json", {
        "name": "balance_ok",
        "steps": [{"id": "balance", "type": "rest", "alias": "bank", "method": "GET", "path": "/accounts/7",
                   "assert": [{"that": "status", "equals": 200}]},
                  {"id": "never", "type": "rest", "alias": "bank", "method": "GET", "path": "/accounts/8",
                   "when": "{{ false }}"}]})
    write_json(directory / "retried.json", {
        "name": "retried_then_failed",
        "steps": [{"id": "flaky", "type": "rest", "alias": "retrying", "method": "GET", "path": "/status/503"}]})
    return directory


@pytest.fixture
def retrying_alias(aliases: Path) -> Path:
    records = json.loads((aliases / "partner.json").read_text())
    bank = next(r for r in records if r.get("name") == "bank")
    records.append({"kind": "alias", "name": "retrying", "connection": bank["connection"],
                    "retry_policy": {"strategy": "fixed", "count": 2, "interval_s": 0.01, "on_status": [503]}})
    (aliases / "partner.json").write_text(json.dumps(records))
    return aliases


def test_html_report_renders_in_chromium(capsys: pytest.CaptureFixture[str], retrying_alias: Path,
                                         tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.html"
    code, out, err = run_cli(capsys, "test", flows(tmp_path / "flows"), "--aliases", retrying_alias,
                             "--html", report)
    assert code == 1, out + err
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    text = report.read_text()
    assert API_KEY not in text  # the echo repeats the X-API-Key header it received
    assert "<script>document.body" not in text and "&lt;script&gt;document.body" in text

    # Self-contained: no resource, stylesheet, frame or link outside the page itself.
    page = lxml.html.fromstring(text)
    assert not page.xpath("//link | //iframe | //object | //embed | //img | //*[@src] | //*[@srcset]")
    assert all(href.startswith("#") for href in page.xpath("//@href"))
    assert len(page.xpath("//script")) == 1

    dom_run = chromium("--dump-dom", report.as_uri(), profile=tmp_path / "profile")
    assert dom_run.returncode == 0, dom_run.stderr[-2000:]
    dom = lxml.html.fromstring(dom_run.stdout)
    body = dom.xpath("//body")[0]
    assert body.get("data-pwned") is None, "a partner's markup ran in the report"
    assert len(dom.xpath("//script")) == 1 and not dom.xpath("//img")
    # Every flow and every step is there, with its status.
    shown = {s.get("data-flow"): s for s in dom.xpath("//section[@class='flow']")}
    assert set(shown) == {"hostile_echo", "balance_ok", "retried_then_failed"}
    steps = {(name, d.get("data-step")): d.get("data-status") for name, section in shown.items()
             for d in section.xpath(".//details[contains(@class, 'step')]")}
    assert steps == {("hostile_echo", "echo"): "failed", ("balance_ok", "balance"): "passed",
                     ("balance_ok", "never"): "skipped", ("retried_then_failed", "flaky"): "failed"}
    # The partner's markup is there as text, where a reviewer can read it.
    echo = shown["hostile_echo"]
    assert '<script>document.body.setAttribute("data-pwned", "script")</script>' in echo.text_content()
    assert "error[assertion.failed]" in echo.text_content() or "error[assertion" in echo.text_content()
    # Retries: three attempts in the table and inside the step's timeline bar.
    retried = shown["retried_then_failed"]
    assert len(retried.xpath(".//details//table[1]//tr[td]")) == 3
    assert len(retried.xpath(".//div[contains(@class, 'attempt')]")) == 3
    assert "HTTP 503" in retried.text_content()
    # TLS facts of the mutual-TLS steps: version, cipher, the certificate sent and its fingerprint.
    tls = shown["balance_ok"].xpath(".//table[@class='tls']")[0].text_content()
    assert "TLSv1." in tls and "CN=" in tls and "fingerprint" in tls
    assert "server chain [1]" in tls and "CA" in tls  # the partner's intermediate or root
    # The summary at the top counts what ran.
    counts = {c.get("data-count"): c.xpath("./b")[0].text for c in dom.xpath("//div[@class='count']")}
    assert counts["flows passed"] == "1" and counts["flows failed"] == "2" and counts["steps skipped"] == "1"

    shot = tmp_path / "report.png"
    shot_run = chromium(f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri(),
                        profile=tmp_path / "profile")
    assert shot_run.returncode == 0, shot_run.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_run_html_report_has_each_iteration(capsys: pytest.CaptureFixture[str], aliases: Path,
                                            tmp_path: Path) -> None:
    flow = write_json(tmp_path / "balance.json", {
        "name": "balance", "steps": [{"id": "balance", "type": "rest", "alias": "bank", "method": "GET",
                                      "path": "/accounts/7"}]})
    report = tmp_path / "run.html"
    code, out, err = run_cli(capsys, "run", flow, "--aliases", aliases, "--iterations", "2", "--html", report)
    assert code == 0, out + err
    page = lxml.html.fromstring(report.read_text())
    assert [h.text_content() for h in page.xpath("//section/div[@class='head']/h2")] == [
        "balance [iteration 1]", "balance [iteration 2]"]


def test_html_report_masks_and_escapes_every_text() -> None:
    results = sample_results()
    secret = "Sx-html-secret-4411"
    secrets = Secrets([secret])
    nasty = results[0]
    page_text = html_report(results, secrets=secrets, title=f"run with {secret}")
    assert secret not in page_text
    page = lxml.html.fromstring(page_text)
    assert page.xpath("//title")[0].text == "run with ***"
    assert [s.get("data-flow") for s in page.xpath("//section")] == [nasty.name, "fine"]
    # Control characters are shown escaped, like on the terminal; markup stays text.
    assert "\\x01" in page.text_content() and "a <tag> & \"quote\"" in page.text_content()
    assert "SOAP fault soap:Client: <unknown account>" in page.text_content()


def test_html_report_marks_insecure_steps_and_interruptions() -> None:
    from flowrun import FlowResult, StepResult
    from flowrun._report._interruption import Interruption

    insecure = FlowResult(name="unverified", status="passed", steps=(
        StepResult(step_id="peek", kind="rest", status="passed", http_status=200, insecure=True),))
    page = lxml.html.fromstring(html_report([insecure], interrupted=Interruption("SIGTERM", not_run=("b.json",))))
    assert "insecure_skip_verify" in page.xpath("//header")[0].text_content()
    assert page.xpath("//details[@data-step='peek']//span[@class='insecure']")
    assert "SIGTERM stopped the run; 1 not run: b.json" in page.xpath("//*[@id='interrupted']")[0].text_content()


@pytest.mark.parametrize("command", ["run", "test"])
def test_html_path_that_is_a_link_is_refused_before_running(capsys: pytest.CaptureFixture[str], aliases: Path,
                                                            tmp_path: Path, command: str) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep")
    link = tmp_path / "report.html"
    link.symlink_to(target)
    flow: Any = write_json(tmp_path / "f" / "balance.json", {
        "name": "balance", "steps": [{"id": "b", "type": "rest", "alias": "bank", "method": "GET",
                                      "path": "/accounts/7"}]})
    code, out, err = run_cli(capsys, command, flow, "--aliases", aliases, "--html", link)
    assert code == 2
    assert "--html" in out + err and "symbolic link" in out + err
    assert target.read_text() == "keep"
