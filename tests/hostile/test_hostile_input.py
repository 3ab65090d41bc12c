"""Hostile input files and defects: every case ends in flowrun's own error, exit 1 or 2, without a
traceback, and ``flowrun test`` still writes its reports.

* a FIFO or a device wherever flowrun reads a path: flow, ``--data``, WSDL, body file, multipart
  file, secret file (each run through the real CLI; a FIFO nobody writes to would hang a read);
* a body file that changes size while it is sent (a real server that truncates it mid-upload);
* a JSON body as deep as allowed walks through outputs, ``-v`` and every report;
* an exception flowrun does not expect: the executors return an ``InternalError`` step result
  (sync and async, REST and SOAP), ``flowrun test`` marks the flow errored, runs the others and
  writes its text, JSON and JUnit reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowrun._cli import main
from flowrun._errors import BodyFileChangedError, InternalError
from flowrun._flows import FlowRunner
from flowrun._models._steps import Body, RestStep, SoapStep
from flowrun._rest import AsyncRestExecutor, RestExecutor
from flowrun._runner import MAX_BODY_DEPTH
from flowrun._soap import SoapExecutor
from flowrun.testing import Pki, PkiFiles, make_pki
from tests.transport._support import PASSWORD, RawServer, Reply, make_registry
from tests.transport.conftest import server_context

# Nothing listens here: every case below fails before a connection is opened.
NOWHERE = "https://127.0.0.1:9"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def pki_files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return pki.write(tmp_path_factory.mktemp("input-pki"), keystore_password=PASSWORD)


@pytest.fixture(scope="module")
def tls_server_context(pki: Pki) -> ssl.SSLContext:
    return server_context(pki)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)  # nobody ever writes to it
    return path


def flowrun(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The timeout only keeps a regression (a hang) from blocking the suite; nothing is timed.
    return subprocess.run([sys.executable, "-m", "flowrun", *argv], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "NO_COLOR": "1", **(env or {})}, check=False, timeout=120)


def write_flow(tmp_path: Path, step: dict[str, Any], name: str = "flow.json") -> Path:
    flow = tmp_path / name
    flow.write_text(json.dumps({"name": "hostile", "steps": [step]}), encoding="utf-8")
    return flow


def rest_step(**fields: Any) -> dict[str, Any]:
    return {"id": "s", "type": "rest", "connection": {"url": NOWHERE}, "method": "POST", **fields}


# --- devices and FIFOs --------------------------------------------------------------------------------


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
@pytest.mark.parametrize("place", ["flow", "data-csv", "data-json", "inputs", "wsdl", "body-file", "multipart-file",
                                   "secret-file"])
def test_a_fifo_or_device_is_refused_wherever_a_path_is_read(place: str, special: str, tmp_path: Path,
                                                              fifo: Path) -> None:
    target = str(fifo) if special == "fifo" else special
    argv: list[str] = []
    code = 2
    says = "FIFO (named pipe)" if special == "fifo" else "character device"
    if place == "flow":
        argv = ["run", target]
    elif place in ("data-csv", "data-json", "inputs"):
        flow = write_flow(tmp_path, rest_step())
        if place == "data-json":
            link = tmp_path / "rows.json"
            link.symlink_to(target)
            target = str(link)
        argv = ["run", str(flow), "--inputs" if place == "inputs" else "--data", target]
    elif place == "wsdl":
        flow = write_flow(tmp_path, {"id": "s", "type": "soap", "connection": {"url": NOWHERE}, "wsdl": target,
                                     "operation": "GetBalance"})
        argv, code = ["run", str(flow)], 1
    elif place == "body-file":
        argv = ["run", str(write_flow(tmp_path, rest_step(body={"file": target})))]
    elif place == "multipart-file":
        argv = ["run", str(write_flow(tmp_path, rest_step(body={"multipart": {"a": "1"}, "files": {"doc": target}})))]
    else:
        aliases = tmp_path / "aliases"
        aliases.mkdir()
        (aliases / "a.json").write_text(json.dumps([
            {"kind": "credential", "name": "token", "type": "bearer", "token": {"file": target}},
            {"kind": "alias", "name": "partner", "connection": {"url": NOWHERE, "credential": "token"}}]))
        flow = write_flow(tmp_path, {"id": "s", "type": "rest", "alias": "partner"})
        argv = ["run", str(flow), "--aliases", str(aliases)]
    done = flowrun(tmp_path, *argv)
    output = done.stdout + done.stderr
    assert done.returncode == code, output
    assert says in output, output
    assert "Traceback" not in output


# --- a body file that changes while it is sent --------------------------------------------------------


class TruncatingServer:
    """Plain HTTP on loopback: once the request's headers are in, it truncates ``path`` and then
    reads whatever the client still sends. The file is far bigger than socket buffers, so the
    client is still reading it when it shrinks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                received += chunk
            os.truncate(self.path, 1000)
            while True:
                try:
                    if not conn.recv(1 << 20):
                        return
                except OSError:
                    return

    def __enter__(self) -> TruncatingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.listener.close()
        self.thread.join(timeout=30)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_body_file_that_shrinks_while_it_is_sent_fails_the_step(asynchronous: bool, tmp_path: Path) -> None:
    upload = tmp_path / "upload.bin"
    with upload.open("wb") as handle:
        handle.truncate(256 * 1024 * 1024)  # sparse: no disk space
    with TruncatingServer(upload) as server:
        from flowrun._models._aliases import Connection

        step = RestStep(id="upload", connection=Connection(url=f"http://127.0.0.1:{server.port}"), method="PUT",
                        body=Body("file", str(upload)))
        if asynchronous:
            async def go() -> Any:
                async with AsyncRestExecutor() as rest:
                    return await rest.run(step)

            result = asyncio.run(go())
        else:
            with RestExecutor() as rest:
                result = rest.run(step)
    assert isinstance(result.error, BodyFileChangedError), result.error
    assert "changed while it was sent: 268435456 bytes were announced (Content-Length), the file ended after" \
        in str(result.error)
    assert result.error.exit_code == 1


# --- deep bodies through outputs, -v and reports --------------------------------------------------------


def test_a_json_body_as_deep_as_allowed_passes_through_outputs_verbose_and_reports(
        tls_server_context: ssl.SSLContext, pki_files: PkiFiles, tmp_path: Path) -> None:
    depth = MAX_BODY_DEPTH - 1
    body = ('{"a":' * depth + "1" + "}" * depth).encode()
    with RawServer(lambda r: Reply(500, body), ssl_context=tls_server_context) as server:
        aliases = tmp_path / "aliases"
        aliases.mkdir()
        (aliases / "a.json").write_text(json.dumps([
            {"kind": "trust_store_cert", "name": "root", "file": str(pki_files.root_pem)},
            {"kind": "keystore", "name": "client", "type": "pkcs12", "file": str(pki_files.client.pkcs12),
             "password": {"env": "DEEP_PASSWORD"}},
            {"kind": "protocol_profile", "name": "mtls", "keystore": "client", "trust_store_certs": ["root"],
             "use_system_trust": False},
            {"kind": "alias", "name": "partner", "connection": {"url": server.url(), "mutual_authentication": True,
                                                                "protocol_profile": "mtls"}}]))
        flows = tmp_path / "flows"
        flows.mkdir()
        write_flow(flows, {"id": "deep", "type": "rest", "alias": "partner",
                           "response": {"expect_status": [500], "outputs": {"a": "body.a.a"}},
                           "assert": [{"that": "body", "equals": 1}]})
        env = {"DEEP_PASSWORD": PASSWORD}
        run = flowrun(tmp_path, "run", str(flows / "flow.json"), "--aliases", str(aliases), "-v", "--json", env=env)
        test = flowrun(tmp_path, "test", str(flows), "--aliases", str(aliases), "-v", "--report", "junit.xml",
                       "--json-report", "report.json", env=env)
    for done in (run, test):
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert "RecursionError" not in done.stdout + done.stderr
    assert json.loads(run.stdout)["status"] == "failed"
    assert json.loads((tmp_path / "report.json").read_text())["flows"][0]["status"] == "failed"
    ET.parse(tmp_path / "junit.xml")


# --- defects: run() never raises, flowrun test keeps going ----------------------------------------------


def _explode(*args: Any, **kwargs: Any) -> Any:
    raise KeyError("planted defect")


def assert_internal(result: Any) -> None:
    assert result.status == "failed"
    assert isinstance(result.error, InternalError), result.error
    assert str(result.error).endswith("unexpected KeyError: 'planted defect'")
    assert "report it" in result.error.hint and "-v" in result.error.hint
    assert "Traceback" not in json.dumps(result.to_dict(), default=str)
    assert "Traceback" in result.error.details  # kept for -v only


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_an_unexpected_exception_in_a_rest_step_is_a_step_error(asynchronous: bool, monkeypatch: pytest.MonkeyPatch,
                                                                tls_server_context: ssl.SSLContext,
                                                                pki_files: PkiFiles) -> None:
    monkeypatch.setattr("flowrun._rest.parse_body", _explode)
    step = RestStep(id="s", alias="partner", path="/x")
    with RawServer(ssl_context=tls_server_context) as server:
        registry = make_registry(pki_files, server.url())
        if asynchronous:
            async def go() -> Any:
                async with AsyncRestExecutor(registry) as rest:
                    return await rest.run(step)

            result = asyncio.run(go())
        else:
            with RestExecutor(registry) as rest:
                result = rest.run(step)
    assert_internal(result)


def test_an_unexpected_exception_in_a_soap_step_is_a_step_error(monkeypatch: pytest.MonkeyPatch,
                                                                tls_server_context: ssl.SSLContext,
                                                                pki_files: PkiFiles) -> None:
    monkeypatch.setattr("flowrun._soap.render_envelope", _explode)
    with RawServer(ssl_context=tls_server_context) as server, \
            SoapExecutor(make_registry(pki_files, server.url())) as soap:
        result = soap.run(SoapStep(id="s", alias="partner", envelope="<x/>"), {"inputs": {}})
    assert_internal(result)


@pytest.fixture
def three_flows(tmp_path: Path, tls_server_context: ssl.SSLContext) -> Iterator[Path]:
    with RawServer(ssl_context=tls_server_context) as server:
        flows = tmp_path / "flows"
        flows.mkdir()
        for name in ("a_first", "b_crash", "c_last"):
            (flows / f"{name}.json").write_text(json.dumps({"name": name, "steps": [
                {"id": "s", "type": "rest", "connection": {"url": NOWHERE if name == "b_crash" else server.url()}}]}))
        yield flows


@pytest.mark.parametrize("parallel", ["1", "3"])
def test_flowrun_test_marks_a_crashed_flow_errored_runs_the_others_and_writes_its_reports(
        parallel: str, three_flows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    real = FlowRunner._execute

    def crash_in_b(self: FlowRunner, flow: Any, call: Any) -> Any:
        if flow.name == "b_crash":
            raise RuntimeError("planted defect in the runner")
        return real(self, flow, call)

    monkeypatch.setattr(FlowRunner, "_execute", crash_in_b)
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    code = main(["test", str(three_flows), "--parallel", parallel, "--report", str(junit),
                 "--json-report", str(report)])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert "the flow crashed: unexpected RuntimeError: planted defect in the runner" in out
    data = json.loads(report.read_text())
    # The other flows ran: they reach the partner (a_first, c_last) or fail on their own.
    assert [f["name"] for f in data["flows"]] == ["a_first", "c_last"]
    (crashed,) = data["errors"]
    assert crashed["code"] == "internal" and crashed["file"].endswith("b_crash.json")
    suites = ET.parse(junit).getroot()
    errored = [s for s in suites if s.get("errors") == "1"]
    assert [s.get("name") for s in errored] == [crashed["file"]]
    (case,) = errored[0]
    assert case.get("name") == "run"
    assert case[0].tag == "error" and "planted defect in the runner" in (case[0].get("message") or "")


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
def test_the_traceback_of_a_defect_is_shown_with_v_only(verbose: bool, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("flowrun._rest.parse_body", _explode)
    with RawServer() as server:  # plain http: the step reaches the parsing, where the defect is
        flow = write_flow(tmp_path, {"id": "s", "type": "rest", "connection": {"url": server.url()}})
        code = main(["run", str(flow), *(["-v"] if verbose else [])])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "error[internal]" in out + err
    assert "unexpected KeyError: 'planted defect'" in out + err
    assert ("Traceback" in err) == verbose
    assert "Traceback" not in out


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
def test_a_defect_outside_any_step_is_one_error_line(verbose: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("flowrun._load._flows.FlowLoader.load", _explode)
    flow = write_flow(tmp_path, rest_step())
    code = main(["run", str(flow), *(["-v"] if verbose else [])])
    out, err = capsys.readouterr()
    assert "Traceback" not in out
    assert code == 1
    assert "error[internal]: unexpected KeyError: 'planted defect'" in err
    assert ("Traceback" in err) == verbose
