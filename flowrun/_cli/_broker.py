"""``flowrun run FLOW --broker URL``: the rows go to Celery workers; the reports are a local run's.

Imported only when ``--broker`` is given: a local run never imports Celery.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import urlsplit

from flowrun._cli._interrupt import SignalGuard, SignalInterrupt
from flowrun._cli._output import Console
from flowrun._errors import BrokerError, UsageError
from flowrun._models._flow_results import FlowResult

__all__ = ["run_on_workers"]


def _celery_missing() -> UsageError:
    return UsageError("--broker needs Celery and redis, which are not installed",
                      hint="pip install 'flowrun[celery]'")


def run_on_workers(args: argparse.Namespace, console: Console, guard: SignalGuard, *, flow: Any,
                   rows: list[tuple[int, int | None, dict[str, Any]]], many: bool, print_result: Any) -> int:
    try:
        from flowrun.celery._app import create_app
        from flowrun.celery._bundle import make_bundle
        from flowrun.celery._dispatch import Dispatch, shown_url
    except ImportError:
        raise _celery_missing() from None
    from flowrun._cli._flow_options import exit_code
    from flowrun._report._interruption import Interruption
    from flowrun._report._text import render_flow, render_interrupted, render_summary

    console.secrets.add(urlsplit(args.broker).password)
    err = Console.for_stream(sys.stderr, no_color=not console.color, secrets=console.secrets)
    app = create_app(args.broker)
    dispatch = Dispatch(app, args.broker, make_bundle(args.flow, flow), args.flow, env=args.env)
    total = len(rows)
    step = max(1, total // 10)

    shown = 0

    def show(result: FlowResult) -> None:
        nonlocal shown
        if not args.json:
            print_result(console, result, many, render_flow)
        shown += 1
        if many and (shown % step == 0 or shown == total):
            err.print(err.style(f"* {shown}/{total} data rows done", "dim"))

    failure: BrokerError | None = None
    stop: SignalInterrupt | None = None
    results: list[FlowResult] = []
    try:
        with guard.armed():
            dispatch.check()  # not there at all: the error alone, no empty report
    except BaseException:
        app.close()
        raise
    try:
        with guard.armed():
            dispatch.send(rows, many=many)
            err.print(err.style(f"* run {dispatch.run_id}: {total} task(s) sent to the workers of "
                                f"{shown_url(args.broker)}", "dim"))
            results = dispatch.gather(show)
    except BrokerError as error:
        failure = error
    except SignalInterrupt as signalled:
        stop = signalled
        dispatch.cancel()
    finally:
        app.close()
    interrupted = None
    if failure is not None or stop is not None:
        results = [dispatch.results[n] for n in sorted(dispatch.results)]
        reason = stop.reason if stop is not None else "broker.unavailable"
        interrupted = Interruption(reason, not_run_count=total - len(results))
    if args.report is not None:
        from flowrun._report._junit import write_junit

        write_junit(args.report, results, interrupted=interrupted, secrets=console.secrets)
    if args.json:
        from flowrun._report._json import run_report

        console.print_json(run_report(results, many=many, interrupted=interrupted))
    elif many:
        console.print(render_summary(results, console))
    if failure is not None:
        raise failure
    if stop is not None and interrupted is not None:
        err.print(render_interrupted(stop.reason, len(results), 0, interrupted.not_run_count, "iteration", err))
        return stop.exit_code
    return exit_code(results)
