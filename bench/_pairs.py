"""The bench pairs: flowrun on one side, a reference on the other, one function per side that
returns the elapsed seconds of the measured part (set-up and one warm-up call stay outside).

A pair raises ``Skip`` from ``prepare`` when a piece or a peer is missing, and ``PairError`` when
a side gives a wrong answer (then its timing would mean nothing). Pairs that are about counts
rather than time (``resources``) have ``timed = False`` and report ``checks()`` only.

``python bench/_pairs.py resources ...`` is the fresh process that the ``resources`` pair runs.
"""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from _servers import (
    PASSWORD_ENV,
    ServerError,
    Site,
    alias_record,
    identity_records,
    start_latency_site,
    start_nginx_site,
    start_partner_site,
)

ACCOUNT_PATH = "/accounts/42"
BALANCE = 1234.5
NEWMAN_HINT = "install it with `npm install -g newman` (needs Node.js)"
_SUBPROCESS_TIMEOUT_S = 900


class Skip(Exception):
    """The pair cannot run here; the message says why."""


class PairError(Exception):
    """A side misbehaved: its timing is not a measurement."""


@dataclass(frozen=True)
class Sizes:
    rest_gets: int = 2000
    iterations: int = 500
    soap_calls: int = 1000
    async_requests: int = 1000
    concurrency: int = 16
    latency_requests: int = 200
    latency_ms: int = 20
    resource_steps: int = 20_000
    handshake_steps: int = 1000
    aliases: int = 50


QUICK = Sizes(rest_gets=50, iterations=5, soap_calls=20, async_requests=64, resource_steps=300,
              handshake_steps=50, latency_requests=32)


@dataclass(frozen=True)
class Check:
    """A count or a fact with its target; ``ok`` None: reported for context, not judged."""

    name: str
    value: str
    target: str
    ok: bool | None


class Bench:
    """What pairs share: the work directory, the sizes and the servers (started on first use)."""

    def __init__(self, directory: Path, sizes: Sizes, *, rest_server: str = "auto") -> None:
        self.directory = directory
        self.sizes = sizes
        self.rest_server = rest_server  # auto | nginx | python
        self._partner: Site | None = None
        self._rest: Site | None = None
        self._latency: Site | None = None
        self.notes: list[str] = []

    def partner_site(self) -> Site:
        """The Python partner (REST + SOAP) in a child process."""
        if self._partner is None:
            self._partner = start_partner_site(self.directory / "partner-site")
        return self._partner

    def rest_site(self) -> Site:
        """nginx when installed (the fastest server, so the client is what is measured), else the partner."""
        if self._rest is None:
            if self.rest_server == "python":
                self.notes.append("REST server: Python partner (asked for)")
                self._rest = self.partner_site()
                return self._rest
            try:
                self._rest = start_nginx_site(self.directory / "nginx-site")
            except ServerError as exc:
                if self.rest_server == "nginx":
                    raise Skip(f"nginx was asked for: {exc}") from None
                self.notes.append(f"REST server: Python partner in a child process ({exc})")
                self._rest = self.partner_site()
            else:
                self.notes.append("REST server: nginx")
        return self._rest

    def latency_site(self) -> Site:
        """A partner that answers after ``sizes.latency_ms``, on the REST site's PKI."""
        if self._latency is None:
            self._latency = start_latency_site(self.directory / "latency-site", self.rest_site().pki,
                                               self.sizes.latency_ms)
        return self._latency

    def close(self) -> None:
        sites = {id(s): s for s in (self._rest, self._partner, self._latency) if s is not None}
        for site in sites.values():
            site.close()


class Pair:
    name: ClassVar[str]
    title: ClassVar[str]
    target: ClassVar[str]
    timed: ClassVar[bool] = True
    # How many operations one side call measures (for "ms per op"); 0: show totals only.
    operations: int = 0

    def prepare(self, bench: Bench) -> None:
        """Set up both sides; raise ``Skip`` when the pair cannot run here."""

    def flowrun(self) -> float:
        raise NotImplementedError

    def reference(self) -> float:
        raise NotImplementedError

    def meets_target(self, ratio: float) -> bool | None:
        """None: the ratio is reported, not judged."""
        return None

    def checks(self) -> list[Check]:
        return []

    def close(self) -> None:
        pass


# --- shared pieces --------------------------------------------------------------------------------


def _need(module: str, *names: str) -> list[Any]:
    """Import flowrun pieces that may not exist yet; a missing one skips the pair."""
    import importlib

    try:
        loaded = importlib.import_module(module)
        return [getattr(loaded, name) for name in names]
    except (ImportError, AttributeError) as exc:
        raise Skip(f"{module}.{'/'.join(names)} is not available yet ({exc})") from None


def _registry(site: Site) -> Any:
    (registry_class,) = _need("flowrun._registry", "Registry")
    return registry_class.load(site.aliases_dir)


def balance_step() -> Any:
    """One GET, one output, one assertion on it (the alias carries a retry policy): a user's step."""
    from flowrun import ResponseSpec, RestStep

    return RestStep(id="balance", alias="partner", method="GET", path=ACCOUNT_PATH,
                    response=ResponseSpec(outputs={"balance": "body.balance"}),
                    assertions=({"that": "outputs.balance", "gt": 0},))


def _check_balance(result: Any) -> None:
    if not result.ok or result.outputs.get("balance") != BALANCE:
        error = result.error
        raise PairError(f"flowrun step {result.step_id} gave status={result.status} "
                        f"outputs={dict(result.outputs)} error={error.code if error else None}: {error}")


def flow_document() -> dict[str, Any]:
    """A one-step flow: GET the account, assert the status (as the Newman test does)."""
    step: dict[str, Any] = {"id": "balance", "type": "rest", "alias": "partner", "method": "GET",
                            "path": ACCOUNT_PATH, "assert": [{"that": "status", "equals": 200}]}
    return {"name": "bench_balance", "steps": [step]}


def flowrun_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowrun", *args]


def _run_process(command: list[str], *, cwd: Path, what: str) -> tuple[float, str]:
    """Run a whole process; return its wall time and standard output."""
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT_S,
                               check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        detail = (completed.stderr.strip() or completed.stdout.strip())[-600:]
        raise PairError(f"{what} exited with {completed.returncode}: {detail}")
    return elapsed, completed.stdout


def _cli_run_available(cwd: Path) -> None:
    try:
        completed = subprocess.run(flowrun_command("run", "--help"), cwd=cwd, capture_output=True, text=True,
                                   timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise Skip("`flowrun run --help` did not answer within 60 s") from None
    if completed.returncode != 0 or "--iterations" not in completed.stdout:
        raise Skip("`flowrun run` (with --iterations) is not available yet")


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def _collect_garbage() -> None:
    # Both sides start from the same heap state.
    gc.collect()


class _CpuTimes:
    """The process's CPU time of each side's measured block, next to the wall clock: on a loaded
    machine another process's turn on the CPU stretches the wall time of a side, not its CPU time
    (a client against a local server is CPU-bound, so the CPU ratio is the cost ratio)."""

    def _cpu_start(self) -> float:
        if not hasattr(self, "_cpu"):
            self._cpu: dict[str, list[float]] = {"flowrun": [], "reference": []}
        return time.process_time()

    def _cpu_stop(self, side: str, started: float) -> None:
        self._cpu[side].append(time.process_time() - started)

    def cpu_check(self, operations: int, reference: str) -> Check:
        cpu = getattr(self, "_cpu", {"flowrun": [], "reference": []})
        pairs = list(zip(cpu["flowrun"], cpu["reference"], strict=False))
        if not pairs:
            return Check(f"CPU time per op vs {reference}", "-", "context", None)
        ratio = statistics.median(f / r for f, r in pairs if r > 0)
        ours = statistics.median(f for f, _ in pairs) / operations * 1000
        theirs = statistics.median(r for _, r in pairs) / operations * 1000
        return Check(f"CPU time per op (this process), flowrun vs {reference}",
                     f"{ours:.3f} ms vs {theirs:.3f} ms: ratio {ratio:.3f}", "context", None)


# --- 1. REST executor vs raw httpx ----------------------------------------------------------------


class RestPair(_CpuTimes, Pair):
    name = "rest"
    title = "REST executor vs raw httpx (sequential GETs, mTLS, JSON, one output, one assertion, retry policy)"
    target = "<= 1.10"

    def prepare(self, bench: Bench) -> None:
        (self._executor_class,) = _need("flowrun._rest", "RestExecutor")
        import httpx

        self._httpx = httpx
        self.operations = bench.sizes.rest_gets
        site = bench.rest_site()
        self._registry = _registry(site)
        resolved = self._registry.resolve("partner")
        self._context = resolved.ssl_context  # the very context flowrun uses
        self._url = f"{resolved.base_url}{ACCOUNT_PATH}"
        self._step = balance_step()

    def meets_target(self, ratio: float) -> bool:
        return ratio <= 1.10

    def flowrun(self) -> float:
        step, n = self._step, self.operations
        with self._executor_class(self._registry) as executor:
            _check_balance(executor.run(step))
            _collect_garbage()
            cpu = self._cpu_start()
            started = time.perf_counter()
            for _ in range(n):
                result = executor.run(step)
                if not result.ok:
                    _check_balance(result)
            elapsed = time.perf_counter() - started
            self._cpu_stop("flowrun", cpu)
            _check_balance(result)
        return elapsed

    def reference(self) -> float:
        url, n = self._url, self.operations
        with self._httpx.Client(verify=self._context, trust_env=False) as client:
            client.get(url).raise_for_status()
            _collect_garbage()
            cpu = self._cpu_start()
            started = time.perf_counter()
            for _ in range(n):
                response = client.get(url)
                if response.status_code != 200:
                    raise PairError(f"raw httpx got HTTP {response.status_code}")
                balance = response.json()["balance"]
                if not balance > 0:
                    raise PairError(f"raw httpx read balance {balance!r}")
            elapsed = time.perf_counter() - started
            self._cpu_stop("reference", cpu)
        if balance != BALANCE:
            raise PairError(f"raw httpx read balance {balance!r}")
        return elapsed

    def checks(self) -> list[Check]:
        return [self.cpu_check(self.operations, "raw httpx")]


# --- 2. flowrun run --iterations vs Newman -------------------------------------------------------


class NewmanPair(Pair):
    name = "newman"
    title = "`flowrun run --iterations N` vs `newman run -n N` (one GET + status assertion)"
    target = "<= 0.05 (20x faster)"

    def prepare(self, bench: Bench) -> None:
        newman = shutil.which("newman")
        if newman is None:
            raise Skip(f"newman is not installed: {NEWMAN_HINT}")
        self._directory = bench.directory / "newman"
        self._directory.mkdir(parents=True, exist_ok=True)
        _cli_run_available(self._directory)
        site = bench.rest_site()
        self.operations = bench.sizes.iterations
        n = str(self.operations)
        flow = _write_json(self._directory / "flow.json", flow_document())
        url = f"{site.url}{ACCOUNT_PATH}"
        collection = _write_json(self._directory / "collection.json", {
            "info": {"name": "bench_balance",
                     "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
            "item": [{
                "name": "balance",
                "request": {"method": "GET", "url": url},
                "event": [{"listen": "test", "script": {"type": "text/javascript", "exec": [
                    "pm.test('status is 200', function () { pm.response.to.have.status(200); });"]}}],
            }],
        })
        self._report = self._directory / "newman-report.json"
        # Each tool's own output; exit code 0 means every iteration passed its assertion.
        self._flowrun_command = flowrun_command("run", str(flow), "--aliases", str(site.aliases_dir),
                                                "--iterations", n)
        self._newman_command = [
            newman, "run", str(collection), "-n", n,
            "--ssl-client-cert", str(site.pki.client_cert_pem),
            "--ssl-client-key", str(site.pki.client_plain_key_pem),
            "--ssl-extra-ca-certs", str(site.pki.root_pem),
            "--reporters", "json", "--reporter-json-export", str(self._report),
        ]
        # Context, not a side: the floor under flowrun, a Python process with httpx making the same
        # requests (the cold-start pair's script, looped), with its own ratio to Newman per round.
        self._bare_command = [
            sys.executable, "-c", _RAW_HTTPX_LOOP_SCRIPT.format(password_env=PASSWORD_ENV), url,
            str(site.pki.client_cert_pem), str(site.pki.client_key_pem), str(site.pki.root_pem), n,
        ]
        self._flowrun_s: list[float] = []
        self._bare_s: list[float] = []
        self._newman_s: list[float] = []

    def meets_target(self, ratio: float) -> bool:
        return ratio <= 0.05

    def flowrun(self) -> float:
        # Which of the two goes first alternates too: the one right after Newman's run is slower.
        if len(self._bare_s) % 2:
            bare, _ = _run_process(self._bare_command, cwd=self._directory, what="python + httpx loop")
            elapsed, _ = _run_process(self._flowrun_command, cwd=self._directory, what="flowrun run")
        else:
            elapsed, _ = _run_process(self._flowrun_command, cwd=self._directory, what="flowrun run")
            bare, _ = _run_process(self._bare_command, cwd=self._directory, what="python + httpx loop")
        self._flowrun_s.append(elapsed)
        self._bare_s.append(bare)
        return elapsed

    def reference(self) -> float:
        elapsed, _ = _run_process(self._newman_command, cwd=self._directory, what="newman run")
        stats = json.loads(self._report.read_text())["run"]["stats"]
        if stats["assertions"]["failed"] or stats["requests"]["failed"] or stats["iterations"]["total"] \
                != self.operations:
            raise PairError(f"newman run did not pass: {stats}")
        self._newman_s.append(elapsed)
        return elapsed

    def checks(self) -> list[Check]:
        rounds = list(zip(self._flowrun_s, self._bare_s, self._newman_s, strict=False))
        if not rounds:
            return []
        bare = statistics.median(self._bare_s)
        to_newman = statistics.median(b / r for _, b, r in rounds)
        flowrun_to_bare = statistics.median(f / b for f, b, _ in rounds)
        return [Check(f"python + httpx, the same {self.operations} GETs in one process (the floor under flowrun)",
                      f"{bare:.3f} s: ratio to Newman {to_newman:.3f} ({1 / to_newman:.0f}x faster); "
                      f"flowrun / this {flowrun_to_bare:.3f}", "context", None)]


# --- 3. cold start --------------------------------------------------------------------------------

_RAW_HTTPX_SCRIPT = """
import os, ssl, sys
import httpx
url, cert, key, root = sys.argv[1:5]
context = ssl.create_default_context(cafile=root)
context.load_cert_chain(cert, key, password=os.environ[{password_env!r}])
with httpx.Client(verify=context) as client:
    response = client.get(url)
    response.raise_for_status()
    assert response.status_code == 200 and response.json()["balance"] > 0
"""

_RAW_HTTPX_LOOP_SCRIPT = """
import os, ssl, sys
import httpx
url, cert, key, root, n = sys.argv[1:6]
context = ssl.create_default_context(cafile=root)
context.load_cert_chain(cert, key, password=os.environ[{password_env!r}])
with httpx.Client(verify=context) as client:
    for _ in range(int(n)):
        if client.get(url).status_code != 200:
            sys.exit("status is not 200")
"""

_MODULES_WRAPPER = """
import json, sys
from flowrun._cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, out)
"""
# What a REST-only run has no use for (tests/flows/test_cli_imports.py holds the longer list).
_NOT_FOR_REST = ("zeep", "requests", "lxml", "jsonschema", "jwt", "tenacity")


class ColdStartPair(Pair):
    name = "cold-start"
    title = "cold start: `flowrun run` of a one-step REST flow vs a Python process with httpx"
    target = "<= 1.5"

    def prepare(self, bench: Bench) -> None:
        self._directory = bench.directory / "cold"
        self._directory.mkdir(parents=True, exist_ok=True)
        _cli_run_available(self._directory)
        site = bench.rest_site()
        flow = _write_json(self._directory / "flow.json", flow_document())
        run_args = ["run", str(flow), "--aliases", str(site.aliases_dir), "--json"]
        self._flowrun_command = flowrun_command(*run_args)
        self._reference_command = [
            sys.executable, "-c", _RAW_HTTPX_SCRIPT.format(password_env=PASSWORD_ENV),
            f"{site.url}{ACCOUNT_PATH}", str(site.pki.client_cert_pem), str(site.pki.client_key_pem),
            str(site.pki.root_pem),
        ]
        # Warm the file cache and the bytecode caches of both sides, then ask what flowrun imported.
        self.flowrun()
        self.reference()
        modules_file = self._directory / "modules.json"
        _run_process([sys.executable, "-c", _MODULES_WRAPPER, str(modules_file), *run_args],
                     cwd=self._directory, what="flowrun run (module check)")
        self._modules = json.loads(modules_file.read_text())

    def meets_target(self, ratio: float) -> bool:
        return ratio <= 1.5

    def flowrun(self) -> float:
        elapsed, output = _run_process(self._flowrun_command, cwd=self._directory, what="flowrun run")
        if json.loads(output).get("status") != "passed":
            raise PairError(f"flowrun run did not pass: {output[:400]}")
        return elapsed

    def reference(self) -> float:
        elapsed, _ = _run_process(self._reference_command, cwd=self._directory, what="python + httpx")
        return elapsed

    def checks(self) -> list[Check]:
        imported = set(self._modules["modules"])
        zeep = "zeep" in imported
        unused = [name for name in _NOT_FOR_REST if name in imported]
        return [Check("zeep imported by a REST-only `flowrun run`", "yes" if zeep else "no", "no", not zeep),
                Check(f"imported by a REST-only `flowrun run`, of {', '.join(_NOT_FOR_REST)}",
                      ", ".join(unused) or "none", "none", not unused)]


# --- 4. SOAP executor vs raw zeep -----------------------------------------------------------------


class _DocumentCounter:
    """Counts zeep WSDL documents parsed in this process (wraps ``zeep.wsdl.Document.__init__``)."""

    def __init__(self) -> None:
        from zeep.wsdl import wsdl

        self.count = 0
        self._class = wsdl.Document
        self._original = wsdl.Document.__init__
        counter = self

        def counting_init(document: Any, *args: Any, **kwargs: Any) -> None:
            counter.count += 1
            counter._original(document, *args, **kwargs)

        setattr(self._class, "__init__", counting_init)  # noqa: B010  (mypy forbids assigning a method)

    def close(self) -> None:
        setattr(self._class, "__init__", self._original)  # noqa: B010


class SoapPair(Pair):
    name = "soap"
    title = "SOAP executor vs raw zeep (GetBalance over mTLS, zeep's requests Transport)"
    target = "<= 1.10"

    def prepare(self, bench: Bench) -> None:
        (self._executor_class,) = _need("flowrun._soap", "SoapExecutor")
        # The raw zeep side is bench/soap.py's: one definition of "raw zeep" for both scripts.
        from soap import zeep_service

        from flowrun import ResponseSpec, SoapStep

        self._zeep_service = zeep_service
        self.operations = bench.sizes.soap_calls
        site = bench.partner_site()
        self._site = site
        self._registry = _registry(site)
        # Both sides load the WSDL (and its schema import) by URL over mutual TLS.
        self._step = SoapStep(id="ledger", alias="ledger", wsdl=f"{site.url}/ledger?wsdl", operation="GetBalance",
                              args={"account": "42"}, response=ResponseSpec(outputs={"balance": "body.balance"}))
        self._documents = _DocumentCounter()
        self._flowrun_parses = 0

    def meets_target(self, ratio: float) -> bool:
        return ratio <= 1.10

    def flowrun(self) -> float:
        step, n = self._step, self.operations
        before = self._documents.count
        try:
            with self._executor_class(self._registry) as executor:
                self._check(executor.run(step))
                _collect_garbage()
                started = time.perf_counter()
                for _ in range(n):
                    result = executor.run(step)
                    if not result.ok:
                        self._check(result)
                elapsed = time.perf_counter() - started
                self._check(result)
        finally:
            self._flowrun_parses += self._documents.count - before
        return elapsed

    @staticmethod
    def _check(result: Any) -> None:
        balance = result.outputs.get("balance") if result.ok else None
        if balance is None or float(balance) != BALANCE:
            raise PairError(f"flowrun SOAP step gave status={result.status} outputs={dict(result.outputs)} "
                            f"error={result.error}")

    def reference(self) -> float:
        n = self.operations
        session, service = self._zeep_service(self._site)
        with session:
            service.GetBalance(account="42")
            _collect_garbage()
            started = time.perf_counter()
            for _ in range(n):
                balance = service.GetBalance(account="42").balance
            elapsed = time.perf_counter() - started
        if float(balance) != BALANCE:
            raise PairError(f"raw zeep read balance {balance!r}")
        return elapsed

    def checks(self) -> list[Check]:
        return [Check("WSDL parses in flowrun's process (all rounds)", str(self._flowrun_parses), "1",
                      self._flowrun_parses == 1)]

    def close(self) -> None:
        documents = getattr(self, "_documents", None)
        if documents is not None:
            documents.close()


# --- 5. async executor vs raw aiohttp; async vs sync with latency --------------------------------


async def _gather_workers(concurrency: int, operations: int, one: Any,
                          cpu: tuple[_CpuTimes, str] | None = None) -> float:
    """``operations`` calls of ``one()``, ``concurrency`` at a time; the elapsed seconds."""
    remaining = operations

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    _collect_garbage()
    cpu_started = cpu[0]._cpu_start() if cpu is not None else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if cpu is not None:
        cpu[0]._cpu_stop(cpu[1], cpu_started)
    return elapsed


class _AsyncSides(_CpuTimes):
    """The async executor at a concurrency, and the sync executor one call after the other."""

    def _setup(self, bench: Bench, site: Site, operations: int) -> None:
        self._sync_class, self._async_class = _need("flowrun._rest", "RestExecutor", "AsyncRestExecutor")
        self.operations = operations
        self._concurrency = bench.sizes.concurrency
        self._registry = _registry(site)
        self._step = balance_step()
        resolved = self._registry.resolve("partner")
        self._context, self._url = resolved.ssl_context, f"{resolved.base_url}{ACCOUNT_PATH}"

    async def _run_async_executor(self) -> float:
        step, concurrency = self._step, self._concurrency
        async with self._async_class(self._registry) as executor:
            # Open every connection of the pool before the clock starts, as the other side does.
            for result in await asyncio.gather(*(executor.run(step) for _ in range(concurrency))):
                _check_balance(result)
            self.transport = _transport_name(executor)

            async def one() -> None:
                result = await executor.run(step)
                if not result.ok:
                    _check_balance(result)

            return await _gather_workers(concurrency, self.operations, one, (self, "flowrun"))

    def _run_sync_executor(self) -> float:
        step, n = self._step, self.operations
        with self._sync_class(self._registry) as executor:
            _check_balance(executor.run(step))
            _collect_garbage()
            started = time.perf_counter()
            for _ in range(n):
                result = executor.run(step)
                if not result.ok:
                    _check_balance(result)
            return time.perf_counter() - started


def _transport_name(executor: Any) -> str:
    routes = list(getattr(executor, "_routes", {}).values())
    if not routes:
        return "?"
    if getattr(routes[0], "native", None) is not None:
        return "aiohttp directly (no httpx client)"
    return f"httpx client over {type(routes[0].client._transport).__name__}"


class AsyncPair(_AsyncSides, Pair):
    name = "async"
    title = "AsyncRestExecutor vs raw aiohttp on the same SSLContext (1000 GETs, 16 at a time)"
    target = "<= 1.5"

    def prepare(self, bench: Bench) -> None:
        try:
            import aiohttp
        except ImportError:
            raise Skip("aiohttp is not installed: pip install -e '.[fast-async]'") from None
        self._aiohttp = aiohttp
        self._setup(bench, bench.rest_site(), bench.sizes.async_requests)
        self._raw_httpx_s: list[float] = []
        self.transport = "?"

    def meets_target(self, ratio: float) -> bool:
        return ratio <= 1.5

    def flowrun(self) -> float:
        elapsed = asyncio.run(self._run_async_executor())
        # Context, not a side: raw httpx.AsyncClient at the same concurrency, right after.
        self._raw_httpx_s.append(asyncio.run(self._run_raw_httpx()))
        return elapsed

    def reference(self) -> float:
        return asyncio.run(self._run_raw_aiohttp())

    async def _run_raw_aiohttp(self) -> float:
        aiohttp, url = self._aiohttp, self._url
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._context)) as session:
            async def one() -> None:
                async with session.get(url) as response:
                    balance = (await response.json())["balance"]
                if not balance > 0:
                    raise PairError("raw aiohttp read a wrong balance")

            await asyncio.gather(*(one() for _ in range(self._concurrency)))
            return await _gather_workers(self._concurrency, self.operations, one, (self, "reference"))

    async def _run_raw_httpx(self) -> float:
        import httpx

        url = self._url
        async with httpx.AsyncClient(verify=self._context, trust_env=False) as client:
            async def one() -> None:
                response = await client.get(url)
                if response.json()["balance"] != BALANCE:
                    raise PairError("raw httpx.AsyncClient read a wrong balance")

            await asyncio.gather(*(one() for _ in range(self._concurrency)))
            return await _gather_workers(self._concurrency, self.operations, one)

    def checks(self) -> list[Check]:
        seconds = statistics.median(self._raw_httpx_s)
        per_op = seconds / self.operations * 1000
        return [Check(f"raw httpx.AsyncClient, same {self.operations} GETs at concurrency {self._concurrency}",
                      f"{seconds:.3f} s ({per_op:.3f} ms/op)", "context", None),
                Check("AsyncRestExecutor's transport", self.transport, "context", None),
                self.cpu_check(self.operations, "raw aiohttp")]


class AsyncLatencyPair(_AsyncSides, Pair):
    name = "async-latency"
    title = "AsyncRestExecutor (16 at a time) vs RestExecutor (one after the other), partner with 20 ms latency"
    target = "<= 0.10 (10x faster)"

    def prepare(self, bench: Bench) -> None:
        self._setup(bench, bench.latency_site(), bench.sizes.latency_requests)
        self.transport = "?"

    def meets_target(self, ratio: float) -> bool:
        return ratio <= 0.10

    def flowrun(self) -> float:
        return asyncio.run(self._run_async_executor())

    def reference(self) -> float:
        return self._run_sync_executor()


# --- 6. resources ---------------------------------------------------------------------------------

RSS_GROWTH_LIMIT_KIB = 4096


class ResourcesPair(Pair):
    name = "resources"
    title = "resource use: RSS and FDs over many steps, SSL contexts for many aliases, handshakes"
    target = "see checks"
    timed = False

    def prepare(self, bench: Bench) -> None:
        (executor_class,) = _need("flowrun._rest", "RestExecutor")
        sizes = bench.sizes
        site = bench.rest_site()
        many = bench.directory / "many-aliases"
        many.mkdir(parents=True, exist_ok=True)
        records = identity_records(site.pki, many)
        records += [alias_record(f"partner_{i:02d}", site.url) for i in range(sizes.aliases)]
        _write_json(many / "aliases.json", records)
        _, output = _run_process(
            [sys.executable, str(Path(__file__).resolve()), "resources", str(site.aliases_dir), str(many),
             str(sizes.resource_steps)],
            cwd=bench.directory, what="the resources process")
        usage = json.loads(output.strip().splitlines()[-1])

        # Handshakes: a fresh executor (a fresh pool), N sequential steps, the server's counter.
        registry = _registry(site)
        step = balance_step()
        before = site.server.handshakes()
        with executor_class(registry) as executor:
            for _ in range(sizes.handshake_steps):
                _check_balance(executor.run(step))
        handshakes = site.server.handshakes() - before

        rss_growth = usage["rss_after_kib"] - usage["rss_before_kib"]
        fd_growth = usage["fds_after"] - usage["fds_before"]
        self._checks = [
            Check(f"RSS growth over {sizes.resource_steps:,} steps",
                  f"{rss_growth / 1024:+.1f} MiB ({usage['rss_before_kib'] / 1024:.1f} -> "
                  f"{usage['rss_after_kib'] / 1024:.1f})",
                  f"< {RSS_GROWTH_LIMIT_KIB // 1024} MiB", rss_growth < RSS_GROWTH_LIMIT_KIB),
            Check(f"open FDs before/after {sizes.resource_steps:,} steps",
                  f"{usage['fds_before']} -> {usage['fds_after']} (after close: {usage['fds_closed']})",
                  "+0", fd_growth == 0 and usage["fds_closed"] <= usage["fds_before"]),
            Check(f"SSL contexts built for {sizes.aliases} aliases on one profile",
                  f"{usage['contexts_built']} ({usage['distinct_contexts']} distinct)", "1",
                  usage["contexts_built"] == 1 and usage["distinct_contexts"] == 1),
            Check(f"TLS handshakes for {sizes.handshake_steps:,} sequential steps ({site.server.kind} count)",
                  str(handshakes), "1", handshakes == 1),
        ]

    def checks(self) -> list[Check]:
        return self._checks


def _rss_kib() -> int:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _open_fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


def _resources_main(aliases_dir: Path, many_aliases_dir: Path, steps: int) -> dict[str, int]:
    """In a fresh process: SSL contexts for many aliases, then RSS and FDs around ``steps`` steps."""
    from flowrun._registry import Registry
    from flowrun._rest import RestExecutor
    from flowrun._tls._cache import TLS_CACHE

    many = Registry.load(many_aliases_dir)
    built_before = TLS_CACHE.contexts.builds
    contexts = {id(many.resolve(name).ssl_context) for name in many.alias_names()}
    built = TLS_CACHE.contexts.builds - built_before

    step = balance_step()
    with RestExecutor(Registry.load(aliases_dir)) as executor:
        for _ in range(200):  # pools, caches and lazy imports settle first
            _check_balance(executor.run(step))
        gc.collect()
        rss_before, fds_before = _rss_kib(), _open_fds()
        for _ in range(steps):
            result = executor.run(step)
            if not result.ok:
                _check_balance(result)
        gc.collect()
        rss_after, fds_after = _rss_kib(), _open_fds()
    gc.collect()
    return {"contexts_built": built, "distinct_contexts": len(contexts), "rss_before_kib": rss_before,
            "rss_after_kib": rss_after, "fds_before": fds_before, "fds_after": fds_after,
            "fds_closed": _open_fds()}


PAIRS: tuple[type[Pair], ...] = (RestPair, NewmanPair, ColdStartPair, SoapPair, AsyncPair, AsyncLatencyPair,
                                 ResourcesPair)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "resources":
        print(json.dumps(_resources_main(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))))
        sys.exit(0)
    sys.exit("usage: _pairs.py resources ALIASES_DIR MANY_ALIASES_DIR STEPS")
