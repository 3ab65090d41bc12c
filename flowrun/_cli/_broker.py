"""``flowrun run --broker URL`` and ``flowrun test --broker URL``: the rows and flows go to Celery
workers; the output, reports and exit code are a local run's.

SIGINT or SIGTERM cancels the run (``Dispatch.cancel``): what no worker started never starts, what a
worker runs finishes there (no request is cut off) and is reported as interrupted, and the reports
are written at once; exit 130 or 143. Imported only when ``--broker`` is given: a local run never
imports Celery.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flowrun._cli._interrupt import SignalGuard, SignalInterrupt
from flowrun._cli._output import Console
from flowrun._errors import BrokerError, FlowrunError, UsageError
from flowrun._models._flow_results import FlowResult

if TYPE_CHECKING:
    from flowrun._models._flow import Flow
    from flowrun._report._interruption import Interruption
    from flowrun.celery._dispatch import Dispatch, Outcome

__all__ = ["run_on_workers", "test_on_workers"]


class _Stopped:
    """How the gathering ended early: the broker went away, or a signal (then ``running``: the
    tasks a worker had started, which run to their end there)."""

    def __init__(self) -> None:
        self.failure: BrokerError | None = None
        self.signal: SignalInterrupt | None = None
        self.running: set[int] = set()

    @property
    def reason(self) -> str | None:
        if self.signal is not None:
            return self.signal.reason
        return "broker.unavailable" if self.failure is not None else None


@contextmanager
def _dispatch(args: argparse.Namespace, console: Console, guard: SignalGuard) -> Iterator[Dispatch]:
    try:
        from flowrun.celery._app import create_app
        from flowrun.celery._dispatch import Dispatch
    except ImportError:
        raise UsageError("--broker needs Celery and redis, which are not installed",
                         hint="pip install 'flowrun[celery]'") from None
    console.secrets.add(urlsplit(args.broker).password)
    app = create_app(args.broker)
    try:
        dispatch = Dispatch(app, args.broker, env=args.env, bodies=args.html is not None)
        with guard.armed():
            dispatch.check()  # not there at all: the error alone, no empty report
        yield dispatch
    finally:
        app.close()


def _gather(dispatch: Dispatch, guard: SignalGuard, send: Callable[[], None], on_result: Callable[[int, Outcome], None],
            err: Console, broker: str, *, sent: Callable[[], None] = lambda: None) -> _Stopped:
    from flowrun.celery._dispatch import shown_url

    stopped = _Stopped()
    try:
        with guard.armed():
            send()
            err.print(err.style(f"* run {dispatch.run_id}: {len(dispatch.task_ids)} task(s) sent to the workers "
                                f"of {shown_url(broker)}", "dim"))
            sent()
            dispatch.gather(on_result)
    except BrokerError as error:
        stopped.failure = error
    except SignalInterrupt as signalled:
        stopped.signal = signalled
        stopped.running = dispatch.cancel()
    if stopped.signal is None and stopped.failure is None:
        stopped.signal = guard.interrupt  # a signal after the last result: nothing is lost, still report it
    return stopped


def _still_running(reason: str, name: str, file: Path, inputs: dict[str, Any], iteration: int | None) -> FlowResult:
    """What the report says of a flow or data row that a worker was running when the run was
    cancelled: it runs to its end there, and its result is not in this report."""
    from flowrun._errors import RunInterruptedError

    error = RunInterruptedError(
        f"{reason} stopped the run while a worker was running this flow: it runs to its end on the worker "
        f"(no request is cut off), and its result is not in this report",
        hint="check the partner (or the worker's log) for what it did before running it again")
    return FlowResult(name=name, status="failed", iteration=iteration, inputs=dict(inputs), error=error, file=file)


def _progress(err: Console, total: int, unit: str) -> Callable[[], None]:
    """Counts what is done; a line on standard error every tenth of ``total`` (none when it is 0)."""
    step = max(1, total // 10)
    shown = 0

    def one_more() -> None:
        nonlocal shown
        shown += 1
        if total > 1 and (shown % step == 0 or shown == total):
            err.print(err.style(f"* {shown}/{total} {unit} done", "dim"))

    return one_more


def run_on_workers(args: argparse.Namespace, console: Console, guard: SignalGuard, *, flow: Flow,
                   rows: list[tuple[int, int | None, dict[str, Any]]], many: bool, print_result: Any) -> int:
    from flowrun._cli._flow_options import exit_code
    from flowrun._report._interruption import Interruption
    from flowrun._report._text import render_flow, render_interrupted, render_summary
    from flowrun.celery._bundle import make_bundle

    err = Console.for_stream(sys.stderr, no_color=not console.color, secrets=console.secrets)
    bundle = make_bundle(args.flow, flow)
    gathered: dict[int, FlowResult] = {}
    progress = _progress(err, len(rows), "data rows")
    with _dispatch(args, console, guard) as dispatch:
        def send() -> None:
            for number, row, inputs in rows:
                dispatch.send(number, bundle, inputs, file=args.flow, iteration=number if many else None,
                              row=row if args.data is not None else None)

        def on_result(number: int, outcome: Outcome) -> None:
            if isinstance(outcome, FlowrunError):
                if outcome.file is None and args.data is not None:
                    outcome.file = str(args.data)
                raise outcome  # like a local run: a definition problem stops the run (exit 2)
            gathered[number] = outcome
            if not args.json:
                print_result(console, outcome, many, render_flow)
            progress()

        stopped = _gather(dispatch, guard, send, on_result, err, args.broker)
        completed = len(gathered)
        if stopped.signal is not None:
            # Completed out of order before the signal, then those a worker is still running.
            late: dict[int, FlowResult] = {n: o for n, o in dispatch.results.items()
                                           if n not in gathered and isinstance(o, FlowResult)}
            completed += len(late)
            for number, _, inputs in rows:
                if number in stopped.running and number not in late:
                    late[number] = _still_running(stopped.signal.reason, flow.name, args.flow, inputs,
                                                  number if many else None)
            for number in sorted(late):
                gathered[number] = late[number]
                if not args.json:
                    print_result(console, late[number], many, render_flow)
    results = [gathered[number] for number in sorted(gathered)]
    interrupted = None
    if stopped.reason is not None:
        interrupted = Interruption(stopped.reason, not_run_count=len(rows) - len(results))
    if args.html is not None:
        from flowrun._report._html import write_html

        write_html(args.html, results, interrupted=interrupted, secrets=console.secrets)
    if args.report is not None:
        from flowrun._report._junit import write_junit

        write_junit(args.report, results, interrupted=interrupted, secrets=console.secrets)
    if args.json:
        from flowrun._report._json import run_report

        console.print_json(run_report(results, many=many, interrupted=interrupted))
    elif many:
        console.print(render_summary(results, console))
    if stopped.failure is not None:
        raise stopped.failure
    if stopped.signal is not None and interrupted is not None:
        err.print(render_interrupted(stopped.signal.reason, completed, len(results) - completed,
                                     interrupted.not_run_count, "iteration", err))
        return stopped.signal.exit_code
    return exit_code(results)


def test_on_workers(args: argparse.Namespace, console: Console, guard: SignalGuard, *,
                    jobs: list[tuple[Path, Flow, dict[str, Any], int | None]], load_errors: list[FlowrunError],
                    label: Callable[[Path, int | None], str], started: float) -> int:
    import time

    from flowrun._cli._test import Progress, report_test_run, test_exit_code
    from flowrun._report._interruption import Interruption
    from flowrun._report._text import render_flow, render_interrupted
    from flowrun.celery._bundle import make_bundle

    err = Console.for_stream(sys.stderr, no_color=not console.color, secrets=console.secrets)
    bundles: dict[Path, dict[str, Any]] = {}
    for file, flow, _, _ in jobs:
        if file not in bundles:
            bundles[file] = make_bundle(file, flow)
    outcomes: dict[int, Outcome] = {}
    # On a terminal, a local test's status line (on standard output, under the flow blocks);
    # piped, a line on standard error every tenth of the flows.
    live = Progress(console, len(jobs), idle="on the workers")
    progress = _progress(err, 0 if live.live else len(jobs), "flows")
    with _dispatch(args, console, guard) as dispatch:
        def send() -> None:
            for number, (file, _, inputs, row) in enumerate(jobs, 1):
                dispatch.send(number, bundles[file], inputs, file=file, iteration=row, row=None)

        def on_result(number: int, outcome: Outcome) -> None:
            outcomes[number] = outcome
            file, _, _, row = jobs[number - 1]
            if isinstance(outcome, FlowResult):
                lines = render_flow(outcome, console, title=f"{outcome.name} ({file})", all_assertions=args.verbose)
            else:
                lines = [f"{console.style('error', 'red', 'bold')} {label(file, row)}: {outcome}"]
                if outcome.hint:
                    lines.append(f"  {console.style('hint', 'cyan')}: {outcome.hint}")
            live.finished(label(file, row), lines)
            progress()

        stopped = _gather(dispatch, guard, send, on_result, err, args.broker, sent=live.draw)
        completed = len(outcomes)
        if stopped.signal is not None:
            # Completed out of order before the signal, then those a worker is still running.
            late = {n: o for n, o in dispatch.results.items() if n not in outcomes}
            completed += len(late)
            for number in stopped.running - set(late):
                file, flow, inputs, row = jobs[number - 1]
                late[number] = _still_running(stopped.signal.reason, flow.name, file, inputs, row)
            for number in sorted(late):
                on_result(number, late[number])
        live.close()
    results = [o for _, o in sorted(outcomes.items()) if isinstance(o, FlowResult)]
    problems = list(load_errors) + [o for _, o in sorted(outcomes.items()) if isinstance(o, FlowrunError)]
    interrupted: Interruption | None = None
    if stopped.reason is not None:
        not_run = tuple(label(jobs[n - 1][0], jobs[n - 1][3]) for n in range(1, len(jobs) + 1) if n not in outcomes)
        interrupted = Interruption(stopped.reason, not_run=not_run)
    duration_ms = (time.perf_counter() - started) * 1000
    report_test_run(args, console, results, problems, interrupted, duration_ms)
    if stopped.failure is not None:
        raise stopped.failure
    if stopped.signal is not None and interrupted is not None:
        err.print(render_interrupted(stopped.signal.reason, completed, len(outcomes) - completed,
                                     len(interrupted.not_run), "flow", err))
        return stopped.signal.exit_code
    return test_exit_code(results, problems)
