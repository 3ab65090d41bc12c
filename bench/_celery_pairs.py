"""Pairs about Celery workers (``flowrun[celery]``), on a redis-server the bench starts.

- ``celery``: data rows of a one-GET flow against the latency partner (20 ms), dispatched with
  ``flowrun.celery`` and gathered back, on 1, 2 and 4 ``flowrun worker`` processes (each
  ``--concurrency 1``, prefork). The flowrun side is 4 workers, the reference 1 worker: the
  ratio is their time ratio (target: 4 workers at least 3.5x one). 2 workers are a check.
- ``celery-overhead``: ``flowrun run flow.json --data rows.csv --broker URL`` with one worker vs
  ``flowrun run flow.json --data rows.csv`` in one process, against the fast REST server: what a
  data row costs more when it goes through the broker (both whole processes).

Workers are started before, and stopped after, each measured run (outside the clock), and get a
warm-up of a few rows each first, so each process has built its SSL context and flow.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from _pairs import Bench, Check, Pair, PairError, Sizes, Skip, _run_process, _write_json, flowrun_command

ACCOUNT_PATH = "/accounts/42"
WORKER_COUNTS = (1, 2, 4)
SCALE_ROWS = 240
OVERHEAD_ROWS = 400
SPEEDUP_TARGET = 3.5
_READY_S = 60.0


def _quick(bench: Bench) -> bool:
    return bench.sizes.rest_gets < Sizes().rest_gets


def _flow() -> dict[str, Any]:
    return {"name": "bench_row", "inputs": {"n": {"type": "string"}},
            "steps": [{"id": "balance", "type": "rest", "alias": "partner", "method": "GET", "path": ACCOUNT_PATH,
                       "query": {"n": "{{ inputs.n }}"}, "assert": [{"that": "status", "equals": 200}]}]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _need_celery() -> None:
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        raise Skip("Celery and redis are not installed: pip install -e '.[celery]'") from None
    if shutil.which("redis-server") is None:
        raise Skip("redis-server is not installed (apt-get install redis-server)")


class _Redis:
    def __init__(self, directory: Path) -> None:
        import redis

        directory.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [str(shutil.which("redis-server")), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + _READY_S
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise PairError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class _Workers:
    """``flowrun worker --concurrency 1`` processes, each in its own process group."""

    def __init__(self, app: Any, broker: str, aliases: Path, directory: Path) -> None:
        self.app, self.broker, self.aliases, self.directory = app, broker, aliases, directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int) -> None:
        for _ in range(count):
            with (self.directory / f"worker-{len(self.processes)}.log").open("ab") as log:
                self.processes.append(subprocess.Popen(
                    flowrun_command("worker", "--broker", self.broker, "--aliases", str(self.aliases),
                                    "--concurrency", "1"),
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + _READY_S
        while len(self.app.control.ping(timeout=0.5)) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                self.stop()
                raise PairError(f"{count} flowrun worker(s) did not start; see {self.directory}/worker-*.log")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes = []


class CeleryScalePair(Pair):
    name = "celery"
    title = "data rows on Celery workers against a 20 ms partner: 4 worker processes vs 1 (2 as a check)"
    target = f">= {SPEEDUP_TARGET}x (ratio <= {1 / SPEEDUP_TARGET:.3f})"

    def prepare(self, bench: Bench) -> None:
        _need_celery()
        from flowrun._load._flows import load_flow
        from flowrun.celery import create_app, make_bundle

        directory = bench.directory / "celery"
        directory.mkdir(parents=True, exist_ok=True)
        self._redis = _Redis(directory / "redis")
        site = bench.latency_site()
        self._app = create_app(self._redis.url)
        self._flow_path = _write_json(directory / "row.json", _flow())
        self._bundle = make_bundle(self._flow_path, load_flow(self._flow_path))
        self._workers = _Workers(self._app, self._redis.url, site.aliases_dir, directory)
        self.operations = 24 if _quick(bench) else SCALE_ROWS
        self._times: dict[int, list[float]] = {count: [] for count in WORKER_COUNTS}

    def meets_target(self, ratio: float) -> bool:
        return ratio <= 1 / SPEEDUP_TARGET

    def _dispatch(self, rows: int) -> float:
        from flowrun._models._flow_results import FlowResult
        from flowrun.celery._dispatch import Dispatch

        dispatch = Dispatch(self._app, self._redis.url)
        dispatch.check()
        started = time.perf_counter()
        for number in range(1, rows + 1):
            dispatch.send(number, self._bundle, {"n": str(number)}, file=self._flow_path, iteration=number,
                          row=number)
        results = dispatch.gather(lambda number, outcome: None)
        elapsed = time.perf_counter() - started
        bad = [(n, r) for n, r in results.items() if not isinstance(r, FlowResult) or r.status != "passed"]
        if len(results) != rows or bad:
            raise PairError(f"{len(results)} of {rows} rows came back; not passed: {bad[:2]}")
        return elapsed

    def _measure(self, workers: int) -> float:
        self._workers.start(workers)
        try:
            self._dispatch(4 * workers)  # warm-up: each process builds its SSL context and flow
            elapsed = self._dispatch(self.operations)
        finally:
            self._workers.stop()
        self._times[workers].append(elapsed)
        return elapsed

    def flowrun(self) -> float:
        self._measure(2)  # context, between the two sides
        return self._measure(4)

    def reference(self) -> float:
        return self._measure(1)

    def checks(self) -> list[Check]:
        import statistics

        rows = self.operations
        medians = {count: statistics.median(times) for count, times in self._times.items() if times}
        checks = [Check(f"{count} worker process(es): {rows} rows", f"{medians[count]:.3f} s, "
                        f"{rows / medians[count]:.1f} rows/s", "context", None) for count in sorted(medians)]
        if 1 in medians and 2 in medians:
            checks.append(Check("speed-up, 2 workers vs 1", f"{medians[1] / medians[2]:.2f}x", "context", None))
        if 1 in medians and 4 in medians:
            speedup = medians[1] / medians[4]
            checks.append(Check("speed-up, 4 workers vs 1", f"{speedup:.2f}x", f">= {SPEEDUP_TARGET}x",
                                speedup >= SPEEDUP_TARGET))
        return checks

    def close(self) -> None:
        if hasattr(self, "_workers"):
            self._workers.stop()
        if hasattr(self, "_redis"):
            self._redis.close()


class CeleryOverheadPair(Pair):
    name = "celery-overhead"
    title = "`flowrun run --data rows.csv --broker` on 1 worker vs a local `flowrun run --data rows.csv` (fast partner)"
    target = "context (per-row overhead)"

    def prepare(self, bench: Bench) -> None:
        _need_celery()
        from flowrun.celery import create_app

        directory = bench.directory / "celery-overhead"
        directory.mkdir(parents=True, exist_ok=True)
        self._redis = _Redis(directory / "redis")
        site = bench.rest_site()
        self.operations = 40 if _quick(bench) else OVERHEAD_ROWS
        flow = _write_json(directory / "row.json", _flow())
        rows = directory / "rows.csv"
        rows.write_text("n\n" + "".join(f"{n}\n" for n in range(1, self.operations + 1)))
        self._directory = directory
        self._broker_s: list[float] = []
        self._local_s: list[float] = []
        self._broker_command = flowrun_command("run", str(flow), "--data", str(rows), "--broker", self._redis.url,
                                               "--json")
        self._local_command = flowrun_command("run", str(flow), "--data", str(rows), "--aliases",
                                              str(site.aliases_dir), "--json")
        self._workers = _Workers(create_app(self._redis.url), self._redis.url, site.aliases_dir, directory)
        self._workers.start(1)
        self._run(self._broker_command, "flowrun run --broker")  # warm: the worker's context, the caches
        self._run(self._local_command, "flowrun run")

    def _run(self, command: list[str], what: str) -> float:
        import json

        elapsed, output = _run_process(command, cwd=self._directory, what=what)
        report = json.loads(output)
        if report.get("status") != "passed" or len(report.get("iterations", ())) != self.operations:
            raise PairError(f"{what} did not pass {self.operations} rows: {output[:300]}")
        return elapsed

    def flowrun(self) -> float:
        elapsed = self._run(self._broker_command, "flowrun run --broker")
        self._broker_s.append(elapsed)
        return elapsed

    def reference(self) -> float:
        elapsed = self._run(self._local_command, "flowrun run")
        self._local_s.append(elapsed)
        return elapsed

    def checks(self) -> list[Check]:
        import statistics

        if not self._broker_s or not self._local_s:
            return []
        rows = self.operations
        broker, local = statistics.median(self._broker_s), statistics.median(self._local_s)
        # Both are whole processes (start-up included), so the difference per row is what a row
        # costs more through the broker, start-up differences (importing Celery) spread over the rows.
        return [Check(f"--broker, 1 worker: {rows} rows", f"{broker:.3f} s, {rows / broker:.1f} rows/s", "context",
                      None),
                Check(f"local run: {rows} rows", f"{local:.3f} s, {rows / local:.1f} rows/s", "context", None),
                Check("overhead per row through the broker", f"{(broker - local) / rows * 1000:.2f} ms", "context",
                      None)]

    def close(self) -> None:
        if hasattr(self, "_workers"):
            self._workers.stop()
        if hasattr(self, "_redis"):
            self._redis.close()


CELERY_PAIRS: tuple[type[Pair], ...] = (CeleryScalePair, CeleryOverheadPair)
