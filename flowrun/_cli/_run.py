"""``flowrun run FLOW``: run one flow (once, per data row, or N times) and report.

Inputs come from ``--inputs-file`` (a JSON object), then ``-i name=value`` (text, converted to the
declared type), then each ``--data`` row (CSV columns or JSON object keys; an empty CSV cell
counts as not given). ``--iterations N`` repeats the whole set of rows N times. The flow file is
read once and the executors live for the whole command, so iterations share connections.

SIGINT or SIGTERM stops the run at once (a blocking read is broken off): the iterations that
completed and the interrupted one (its running step marked ``interrupted``) are printed and
written to ``--report`` / ``--json`` as usual, then the command exits 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowrun._cli import _collector
from flowrun._cli._common import add_aliases_option, add_env_option
from flowrun._cli._flow_options import (
    add_connect_to_option,
    add_input_options,
    add_steps_option,
    connect_to_mapping,
    data_rows,
    given_inputs,
    given_rows,
    parse_input_options,
)
from flowrun._cli._interrupt import SignalGuard, SignalInterrupt
from flowrun._cli._otel import add_otel_option, otel_tracer
from flowrun._cli._output import Console
from flowrun._errors import FlowrunError, InternalError, UsageError
from flowrun._models._flow import FlowStep
from flowrun._models._flow_results import FlowResult
from flowrun._models._numbers import dumps
from flowrun._models._results import StepResult

if TYPE_CHECKING:
    from flowrun._registry import InsecureUse

__all__ = ["data_rows", "parse_input_options", "register", "run_command", "warn_insecure"]

_MAX_ITERATIONS = 1_000_000


def register(subparsers: Any, name: str, summary: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary,
        description="Run a flow file: its steps in order through the aliases, then print a summary "
        "(or JSON with --json).",
        epilog="Exit codes: 0 every step and assertion passed, 1 a step or assertion failed, "
        "2 bad usage or definitions (flow, aliases, keystores, inputs). "
        "Example: flowrun run samples/flows/balance.json --aliases aliases -i account=7",
    )
    parser.add_argument("flow", type=Path, metavar="FLOW", help="the flow file (JSON)")
    add_input_options(parser, data_help="run once per row of a CSV (header row = input names) or a JSON "
                      "array of objects")
    add_aliases_option(parser)
    add_steps_option(parser)
    add_env_option(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a summary")
    parser.add_argument("--report", metavar="FILE", type=Path, help="also write a JUnit XML report to FILE")
    parser.add_argument("--html", metavar="FILE", type=Path,
                        help="also write a self-contained HTML report to FILE")
    parser.add_argument("--iterations", metavar="N", type=int, default=1,
                        help="run N times (with --data: every row N times)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show each request (method, URL, headers and body with secrets redacted), each "
                        "attempt, and the body received (capped) with its shape, on standard error")
    parser.add_argument("--show-body", action="store_true",
                        help="print each step's parsed body (what output expressions read: body, soap_headers, "
                        "fault) as JSON on standard error, secrets redacted")
    add_connect_to_option(parser)
    add_otel_option(parser)
    parser.add_argument("--broker", metavar="URL",
                        help="send the data rows to `flowrun worker` processes through this Redis broker "
                        "(redis://host:6379/0) and gather their results into the same reports (docs/scale.md)")
    parser.set_defaults(handler=run_command)


def _runs(base: Mapping[str, Any], rows: list[dict[str, Any]] | None, iterations: int,
          ) -> Iterator[tuple[int, int | None, dict[str, Any]]]:
    number = 0
    for _ in range(iterations):
        for index, row in enumerate(rows if rows is not None else [{}]):
            number += 1
            yield number, (index + 1 if rows is not None else None), {**base, **row}


def run_command(args: argparse.Namespace, console: Console) -> int:
    with SignalGuard() as guard, otel_tracer(args.otel) as tracer:
        args.observer = tracer
        return _run(args, console, guard)


def _run(args: argparse.Namespace, console: Console, guard: SignalGuard) -> int:
    from flowrun._flows import FlowRunner
    from flowrun._load._flows import load_flow
    from flowrun._report._stream import JsonStream, JunitStream, RunTally

    if not 1 <= args.iterations <= _MAX_ITERATIONS:
        raise UsageError(f"--iterations must be between 1 and {_MAX_ITERATIONS}")
    if args.report is not None:
        from flowrun._report._files import check_report_path

        check_report_path(args.report, "--report")
    if args.html is not None:
        from flowrun._report._files import check_report_path

        check_report_path(args.html, "--html")
    connect_to = connect_to_mapping(args.connect_to)
    base = given_inputs(args)
    rows = given_rows(args)
    flow = load_flow(args.flow, steps_dirs=args.steps)
    err = Console.for_stream(sys.stderr, no_color=not console.color, secrets=console.secrets)

    def show_request(entry: FlowStep, result: StepResult) -> None:
        from flowrun._report._text import render_body, render_request

        lines = render_request(result) if args.verbose else []
        if args.show_body and result.status != "skipped":
            lines += render_body(result)
        if lines:
            err.print(err.style(f"* step {entry.id}", "dim"))
            for line in lines:
                err.print(line)
        if isinstance(result.error, InternalError) and result.error.details:
            # -v is where a defect's traceback goes (for the report the hint asks for), never elsewhere.
            err.print(err.style(f"* step {entry.id}: traceback of the unexpected exception", "dim"))
            err.print(result.error.details.rstrip())

    total = args.iterations * (len(rows) if rows is not None else 1)
    many = total > 1
    if getattr(args, "broker", None):
        if args.verbose or args.show_body or args.connect_to:
            raise UsageError("-v, --show-body and --connect-to apply to local runs, not with --broker",
                             hint="workers use their own aliases; run one row locally to see its requests")
        from flowrun._cli._broker import run_on_workers

        _collector.release()

        return run_on_workers(args, console, guard, flow=flow, rows=list(_runs(base, rows, args.iterations)),
                              many=many, print_result=_print_result)
    # Results are counted and streamed to the reports as they come, never kept: memory stays flat
    # over any number of iterations.
    tally = RunTally()
    json_stream = JsonStream(console.secrets) if args.json else None
    junit_stream = JunitStream() if args.report is not None else None
    # The HTML report draws every flow on one page: the one report that keeps the results.
    html_results: list[FlowResult] | None = [] if args.html is not None else None

    def keep(result: FlowResult) -> None:
        tally.add(result)
        if json_stream is not None:
            json_stream.add(result)
        else:
            _print_result(console, result, many, _render_flow)
        if junit_stream is not None:
            junit_stream.add(result)
        if html_results is not None:
            html_results.append(result)

    stop: SignalInterrupt | None = None
    partial: list[FlowResult] = []
    with FlowRunner(aliases=args.aliases, env=args.env, steps_dirs=args.steps, connect_to=connect_to,
                    on_step=show_request if args.verbose or args.show_body else None,
                    secrets=console.secrets, observer=args.observer) as runner:
        try:
            with guard.armed():
                # A missing or broken alias directory stops here, not once per iteration.
                registry = runner.registry_for(flow, only_this_flow=True)
            registry.on_insecure = warn_insecure(err)
            for number, row, inputs in _runs(base, rows, args.iterations):
                try:
                    with guard.armed():
                        result = runner.run(flow, inputs, iteration=number if many else None)
                except FlowrunError as error:
                    if row is not None and args.data is not None:
                        error.message = f"data row {row}: {error.message}"
                        error.file = error.file or str(args.data)
                    raise
                keep(result)
                del result
                _collector.release()  # the first result ends start-up
        except SignalInterrupt as signalled:
            stop = signalled
            partial = list(runner.interrupted_results)
    completed = tally.count
    for result in partial:
        keep(result)
    if stop is None:
        stop = guard.interrupt  # a signal after the last iteration: nothing is lost, still report it
    interrupted = None
    if stop is not None:
        from flowrun._report._interruption import Interruption

        interrupted = Interruption(stop.reason, not_run_count=total - tally.count)
    if html_results is not None:
        from flowrun._report._html import write_html

        write_html(args.html, html_results, interrupted=interrupted, secrets=console.secrets)
    if junit_stream is not None:
        junit_stream.write(args.report, interrupted=interrupted, secrets=console.secrets)
    if json_stream is not None:
        json_stream.write(console.stream, tally, many=many, interrupted=interrupted)
    elif many:
        from flowrun._report._text import render_counts

        console.print(render_counts(tally.counts, console))
    if stop is not None and interrupted is not None:
        from flowrun._report._text import render_interrupted

        err.print(render_interrupted(stop.reason, completed, len(partial), interrupted.not_run_count,
                                     "iteration", err))
        return stop.exit_code
    return tally.exit_code


def warn_insecure(err: Console) -> Callable[[InsecureUse], None]:
    """Prints the insecure-profile warning on standard error (once per alias: the registry asks once)."""

    def warn(use: InsecureUse) -> None:
        from flowrun._report._text import render_insecure

        for line in render_insecure(use, err):
            err.print(line)

    return warn


def _render_flow(result: FlowResult, console: Console) -> list[str]:
    # The text report only where a result is shown as text (not --json, not a passed iteration).
    from flowrun._report._text import render_flow

    return render_flow(result, console)


def _print_result(console: Console, result: FlowResult, many: bool, render: Any) -> None:
    if many and result.ok:
        console.print(f"{console.style('ok', 'green')}   iteration {result.iteration}  "
                      f"{result.duration_ms:.1f} ms" + _outputs_text(result.outputs))
        return
    for line in render(result, console):
        console.print(line)


def _outputs_text(outputs: Mapping[str, Any]) -> str:
    if not outputs:
        return ""
    return "  " + " ".join(f"{key}={dumps(value, ensure_ascii=False)}"
                           for key, value in outputs.items())
