"""``flowrun test PATH...``: run many flows and report per flow and per assertion.

Directories are searched for flow files. Inputs (``-i``, ``--inputs-file``) apply to every flow
that declares them; an input no flow declares is a usage error. With ``--data`` each flow runs
once per row, with the row's values for the inputs it declares (a column no flow declares is a
usage error), like ``flowrun run --data``. ``--parallel N`` runs N flows at a time, each worker
with its own runner (its own connections), all sharing the alias records and the TLS caches.
On a terminal a progress line shows what is running; piped output is plain, one block per flow.
Exit 0 when every flow passed, 1 when a step or assertion failed, 2 when a flow could not be
loaded or hit a definition problem.

SIGINT or SIGTERM stops the command at once: the reports are written with the flows that
completed, the running ones as far as they got (their running step marked ``interrupted``) and
the ones that never started (``not run``); the exit code is 130 (SIGINT) or 143 (SIGTERM).
Workers are daemon threads, so a step blocked on a slow partner does not hold the exit up.
"""

from __future__ import annotations

import argparse
import collections
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowrun._cli._common import add_aliases_option, add_env_option
from flowrun._cli._flow_files import flow_files
from flowrun._cli._flow_options import (
    add_connect_to_option,
    add_input_options,
    add_steps_option,
    connect_to_mapping,
    exit_code,
    given_inputs,
    given_rows,
)
from flowrun._cli._interrupt import SignalGuard, SignalInterrupt
from flowrun._cli._otel import add_otel_option, otel_tracer
from flowrun._cli._output import Console
from flowrun._errors import FlowrunError, UsageError
from flowrun._models._flow_results import FlowResult

if TYPE_CHECKING:
    from flowrun._flows import FlowRunner
    from flowrun._models._flow import Flow
    from flowrun._report._interruption import Interruption

__all__ = ["Progress", "register", "report_test_run", "test_command", "test_exit_code"]

_MAX_PARALLEL = 128


def register(subparsers: Any, name: str, summary: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary,
        description="Run every flow in the given files and directories (with their default inputs, and the "
        "inputs given with -i, --inputs-file or --data for the flows that declare them) and report each flow, "
        "step and assertion; write JUnit XML and JSON reports for CI.",
        epilog="Exit codes: 0 all flows passed, 1 a step or assertion failed, 2 a flow could not be loaded "
        "or a definition is wrong. Example: flowrun test samples/ --aliases aliases --report out.xml",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="flow files, or directories searched (recursively) for flow files")
    parser.add_argument("--parallel", metavar="N", type=int, default=1, help="run N flows at a time (default 1)")
    parser.add_argument("--report", metavar="FILE", type=Path, help="write a JUnit XML report to FILE")
    parser.add_argument("--json-report", metavar="FILE", type=Path, help="write a JSON report to FILE")
    parser.add_argument("--html", metavar="FILE", type=Path, help="write a self-contained HTML report to FILE")
    add_input_options(parser, data_help="run each flow once per row of a CSV (header row = input names) or a "
                      "JSON array of objects, with the values of the inputs it declares")
    add_aliases_option(parser)
    add_steps_option(parser)
    add_env_option(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing assertions too")
    add_connect_to_option(parser)
    add_otel_option(parser)
    parser.add_argument("--broker", metavar="URL",
                        help="run the flows on `flowrun worker` processes through this Redis broker and gather "
                        "their results into the same reports (docs/scale.md)")
    parser.set_defaults(handler=test_command)


class Progress:
    """One status line on a terminal, redrawn under the flow blocks; nothing when piped. ``idle``
    is shown when no flow is known to run here (flows running on workers)."""

    def __init__(self, console: Console, total: int, *, idle: str = "") -> None:
        self.console = console
        self.total = total
        self.done = 0
        self.running: list[str] = []
        self.idle = idle
        self.live = console.color
        self.lock = threading.Lock()
        self.closed = False

    def draw(self) -> None:
        with self.lock:
            self._draw()

    def started(self, label: str) -> None:
        with self.lock:
            self.running.append(label)
            self._draw()

    def finished(self, label: str, lines: list[str]) -> None:
        with self.lock:
            if self.closed:  # interrupted: the summary is being written
                return
            if label in self.running:
                self.running.remove(label)
            self.done += 1
            self._clear()
            for line in lines:
                self.console.print(line)
            self._draw()

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self._clear()
            self.closed = True

    def _draw(self) -> None:
        if not self.live or self.closed or self.done == self.total:
            return
        current = ", ".join(self.running[:3]) + (" ..." if len(self.running) > 3 else "") or self.idle
        text = f"[{self.done}/{self.total}] running {current}"
        self.console.stream.write(self.console.style(text[:150], "dim"))
        self.console.stream.flush()

    def _clear(self) -> None:
        if self.live:
            self.console.stream.write("\r\x1b[2K")


Outcome = FlowResult | FlowrunError  # a flow's result, or the definition error that kept it from running
# A flow to run: its file, the flow, its inputs, and the data row (numbered from 1) they came from.
Job = tuple[Path, "Flow", dict[str, Any], int | None]


class _Workers:
    """N daemon threads, each with its own runner, taking flows in order until none are left.

    What each worker runs is kept under one lock, so that an interruption sees every flow exactly
    once: completed (an outcome), running (a snapshot of its runner) or not started."""

    def __init__(self, flows: list[Job], count: int, make_runner: Any, run_one: Any) -> None:
        self.flows = flows
        self.lock = threading.Lock()
        self.todo = collections.deque(range(len(flows)))
        self.outcomes: dict[int, Outcome] = {}
        self.running: dict[int, tuple[int, FlowRunner]] = {}  # thread ident -> (flow index, runner)
        self.runners: list[FlowRunner] = []
        self.crashes: list[BaseException] = []
        self.stopped = threading.Event()
        self.done = threading.Event()
        self._make_runner = make_runner
        self._run_one = run_one
        self._live = count
        self.threads = [threading.Thread(target=self._work, name=f"flowrun-test-{n}", daemon=True)
                        for n in range(count)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        ident = threading.get_ident()
        try:
            runner: FlowRunner = self._make_runner()
            with self.lock:
                self.runners.append(runner)
            while True:
                with self.lock:
                    if self.stopped.is_set() or not self.todo:
                        return
                    index = self.todo.popleft()
                    self.running[ident] = (index, runner)
                outcome, lines = self._run_one(runner, *self.flows[index])
                with self.lock:
                    self.outcomes[index] = outcome
                    del self.running[ident]
                    if self.stopped.is_set():
                        return
                lines()
        except BaseException as crash:  # a bug: re-raised by the main thread, not lost in a worker
            with self.lock:
                self.crashes.append(crash)
        finally:
            with self.lock:
                self._live -= 1
                if self._live == 0:
                    self.done.set()

    def stop(self, reason: str) -> tuple[dict[int, Outcome], dict[int, FlowResult], list[int]]:
        """Stop taking flows: (completed outcomes, partial results of running flows, not started)."""
        with self.lock:
            self.stopped.set()
            outcomes = dict(self.outcomes)
            running = list(self.running.values())
        partial: dict[int, FlowResult] = {}
        for index, runner in running:
            if index in outcomes:
                continue
            snapshot = runner.snapshot(reason, of=self.flows[index][1])
            if snapshot is not None:
                partial[index] = snapshot
        not_started = [i for i in range(len(self.flows)) if i not in outcomes and i not in partial]
        return outcomes, partial, not_started

    def close(self, *, busy_too: bool) -> None:
        with self.lock:
            busy = {id(runner) for _, runner in self.running.values()}
            runners = list(self.runners)
        for runner in runners:
            if busy_too or id(runner) not in busy:
                runner.close()


def crashed(exc: Exception, file: Path) -> FlowrunError:
    """A flow that crashed: an error outcome (reported like a flow that could not run) naming the
    flow file and the exception's type; never a traceback."""
    from flowrun._runner import internal_error

    error = internal_error(exc)
    error.message = f"the flow crashed: {error.message}"
    error.file = str(file)
    return error


def test_command(args: argparse.Namespace, console: Console) -> int:
    with SignalGuard() as guard, otel_tracer(args.otel) as tracer:
        args.observer = tracer
        return _test(args, console, guard)


def _test(args: argparse.Namespace, console: Console, guard: SignalGuard) -> int:
    import sys

    from flowrun._cli._run import warn_insecure
    from flowrun._flows import FlowRunner
    from flowrun._load._flows import FlowLoader
    from flowrun._registry import Registry
    from flowrun._report._files import check_report_path
    from flowrun._report._interruption import Interruption
    from flowrun._report._text import render_flow, render_interrupted

    if not 1 <= args.parallel <= _MAX_PARALLEL:
        raise UsageError(f"--parallel must be between 1 and {_MAX_PARALLEL}")
    connect_to = connect_to_mapping(args.connect_to)
    for option, report in (("--report", args.report), ("--json-report", args.json_report), ("--html", args.html)):
        if report is not None:
            check_report_path(report, option)
    files = flow_files(list(args.paths))
    started = time.perf_counter()
    loader = FlowLoader(steps_dirs=args.steps)
    load_errors: list[FlowrunError] = []
    flows: list[tuple[Path, Flow]] = []
    for file in files:
        try:
            flow = loader.load(file)
        except FlowrunError as error:
            load_errors.append(error)
            console.print_error(error)
        else:
            if flow is not None:
                flows.append((file, flow))
    err = Console.for_stream(sys.stderr, no_color=not console.color, secrets=console.secrets)
    registry: Registry | None = None
    if args.broker and args.connect_to:
        raise UsageError("--connect-to applies to local runs, not with --broker",
                         hint="workers use their own aliases")
    # With --broker the workers resolve the aliases: this machine needs none.
    if not args.broker and (args.aliases is not None or any(flow.alias_names for _, flow in flows)):
        try:
            registry = Registry.load(args.aliases, connect_to=connect_to)
        except FlowrunError as error:
            console.print_error(error)
            return error.exit_code
        registry.on_insecure = warn_insecure(err)
    jobs = _jobs(flows, given_inputs(args), given_rows(args))
    if args.broker:
        from flowrun._cli._broker import test_on_workers

        return test_on_workers(args, console, guard, jobs=jobs, load_errors=load_errors, label=_label,
                               started=started)
    progress = Progress(console, len(jobs))

    def make_runner() -> FlowRunner:
        return FlowRunner(registry=registry, env=args.env, steps_dirs=args.steps, connect_to=connect_to,
                          secrets=console.secrets, observer=args.observer)

    def run_one(runner: FlowRunner, file: Path, flow: Flow, inputs: dict[str, Any],
                row: int | None) -> tuple[Outcome, Any]:
        label = _label(file, row)
        progress.started(label)
        try:
            result: Outcome = runner.run(flow, inputs, iteration=row)
        except FlowrunError as error:  # inputs without defaults, undeclared env variables
            result = error
        except Exception as exc:  # one flow's crash never stops the others or the reports
            result = crashed(exc, file)
        try:
            lines = (render_flow(result, console, title=f"{result.name} ({file})", all_assertions=args.verbose)
                     if isinstance(result, FlowResult) else [])
        except Exception as exc:
            result = crashed(exc, file)
        if not isinstance(result, FlowResult):
            lines = [f"{console.style('error', 'red', 'bold')} {label}: {result}"]
            if result.hint:
                lines.append(f"  {console.style('hint', 'cyan')}: {result.hint}")
        return result, lambda: progress.finished(label, lines)

    workers = _Workers(jobs, min(args.parallel, max(len(jobs), 1)), make_runner, run_one)
    stop: SignalInterrupt | None = None
    partial: dict[int, FlowResult] = {}
    not_started: list[int] = []
    try:
        with guard.armed():
            workers.start()
            workers.done.wait()
    except SignalInterrupt as signalled:
        stop = signalled
        outcomes, partial, not_started = workers.stop(stop.reason)
        progress.close()
        # Workers still inside a step are left to the end of the process (they are daemons).
        workers.close(busy_too=False)
        for index in sorted(partial):
            for line in render_flow(partial[index], console, title=f"{partial[index].name} ({jobs[index][0]})"):
                console.print(line)
    else:
        progress.close()
        for thread in workers.threads:
            thread.join()
        workers.close(busy_too=True)
        if workers.crashes:
            raise workers.crashes[0]
        outcomes = workers.outcomes
    results: list[FlowResult] = []
    problems: list[FlowrunError] = list(load_errors)
    merged: dict[int, Outcome] = {**outcomes, **partial}
    for index in sorted(merged):
        outcome = merged[index]
        if isinstance(outcome, FlowResult):
            results.append(outcome)
        else:
            problems.append(outcome)
    if stop is None:
        stop = guard.interrupt  # a signal after the last flow: nothing is lost, still report it
    interrupted = None
    if stop is not None:
        interrupted = Interruption(stop.reason, not_run=tuple(_label(jobs[i][0], jobs[i][3]) for i in not_started))
    duration_ms = (time.perf_counter() - started) * 1000
    report_test_run(args, console, results, problems, interrupted, duration_ms)
    if stop is not None:
        err.print(render_interrupted(stop.reason, len(outcomes), len(partial), len(not_started), "flow", err))
        return stop.exit_code
    return test_exit_code(results, problems)


def report_test_run(args: argparse.Namespace, console: Console, results: list[FlowResult],
                    problems: list[FlowrunError], interrupted: Interruption | None, duration_ms: float) -> None:
    """The reports of a ``flowrun test`` run (JUnit, JSON, HTML) and its summary line, for local and
    broker runs alike."""
    if args.report is not None:
        from flowrun._report._junit import write_junit

        write_junit(args.report, results, load_errors=problems, interrupted=interrupted, secrets=console.secrets)
    if args.json_report is not None:
        from flowrun._report._json import test_report, write_json

        write_json(args.json_report, test_report(results, duration_ms=duration_ms,
                                                 errors=[e.to_dict() for e in problems], interrupted=interrupted),
                   secrets=console.secrets)
    if args.html is not None:
        from flowrun._report._html import write_html

        write_html(args.html, results, load_errors=problems, interrupted=interrupted, duration_ms=duration_ms,
                   secrets=console.secrets)
    from flowrun._report._text import render_summary

    console.print(render_summary(results, console)
                  + (console.style(f"; {len(problems)} not run", "red", "bold") if problems else ""))


def test_exit_code(results: list[FlowResult], problems: list[FlowrunError]) -> int:
    code = exit_code(results)
    if problems:
        code = max(code, *(error.exit_code for error in problems))
    return code


def _label(file: Path, row: int | None) -> str:
    return str(file) if row is None else f"{file} row {row}"


def _jobs(flows: list[tuple[Path, Flow]], inputs: dict[str, Any], rows: list[dict[str, Any]] | None) -> list[Job]:
    """Each flow with the given inputs it declares, once, or once per data row."""
    declared = {name for _, flow in flows for name in flow.inputs}
    given = set(inputs) | {name for row in rows or () for name in row}
    unknown = sorted(given - declared)
    if unknown and flows:
        listing = ", ".join(sorted(declared)) or "none"
        where = " or a column of the data file" if rows is not None else ""
        from flowrun._load._schema import did_you_mean

        guess = did_you_mean(unknown[0], sorted(declared)) if len(unknown) == 1 else ""
        raise UsageError(f"input {', '.join(repr(n) for n in unknown)} (given with -i, --inputs-file{where}) "
                         f"is declared by none of the flows{guess}",
                         hint=f"inputs the flows declare: {listing}")
    jobs: list[Job] = []
    for file, flow in flows:
        own = {name: value for name, value in inputs.items() if name in flow.inputs}
        if rows is None:
            jobs.append((file, flow, own, None))
            continue
        for number, row in enumerate(rows, 1):
            jobs.append((file, flow, {**own, **{k: v for k, v in row.items() if k in flow.inputs}}, number))
    return jobs
