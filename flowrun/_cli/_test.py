"""``flowrun test PATH...``: run many flows and report per flow and per assertion.

Directories are searched for flow files. ``--parallel N`` runs N flows at a time, each worker
with its own runner (its own connections), all sharing the alias records and the TLS caches.
On a terminal a progress line shows what is running; piped output is plain, one block per flow.
Exit 0 when every flow passed, 1 when a step or assertion failed, 2 when a flow could not be
loaded or hit a definition problem.
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from flowrun._cli._common import add_aliases_option, add_env_option
from flowrun._cli._flow_files import flow_files
from flowrun._cli._flow_options import add_connect_to_option, add_steps_option, connect_to_mapping, exit_code
from flowrun._cli._output import Console
from flowrun._errors import FlowrunError, UsageError
from flowrun._models._flow_results import FlowResult

__all__ = ["register", "test_command"]

_MAX_PARALLEL = 64


def register(subparsers: Any, name: str, summary: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary,
        description="Run every flow in the given files and directories (with their default inputs) and "
        "report each flow, step and assertion; write JUnit XML and JSON reports for CI.",
        epilog="Exit codes: 0 all flows passed, 1 a step or assertion failed, 2 a flow could not be loaded "
        "or a definition is wrong. Example: flowrun test samples/ --aliases aliases --report out.xml",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="flow files, or directories searched (recursively) for flow files")
    parser.add_argument("--parallel", metavar="N", type=int, default=1, help="run N flows at a time (default 1)")
    parser.add_argument("--report", metavar="FILE", type=Path, help="write a JUnit XML report to FILE")
    parser.add_argument("--json-report", metavar="FILE", type=Path, help="write a JSON report to FILE")
    add_aliases_option(parser)
    add_steps_option(parser)
    add_env_option(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing assertions too")
    add_connect_to_option(parser)
    parser.set_defaults(handler=test_command)


class _Progress:
    """One status line on a terminal, redrawn under the flow blocks; nothing when piped."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.done = 0
        self.running: list[str] = []
        self.live = console.color
        self.lock = threading.Lock()

    def started(self, label: str) -> None:
        with self.lock:
            self.running.append(label)
            self._draw()

    def finished(self, label: str, lines: list[str]) -> None:
        with self.lock:
            if label in self.running:
                self.running.remove(label)
            self.done += 1
            self._clear()
            for line in lines:
                self.console.print(line)
            self._draw()

    def close(self) -> None:
        with self.lock:
            self._clear()

    def _draw(self) -> None:
        if not self.live or self.done == self.total:
            return
        current = ", ".join(self.running[:3]) + (" ..." if len(self.running) > 3 else "")
        text = f"[{self.done}/{self.total}] running {current}"
        self.console.stream.write(self.console.style(text[:150], "dim"))
        self.console.stream.flush()

    def _clear(self) -> None:
        if self.live:
            self.console.stream.write("\r\x1b[2K")


def test_command(args: argparse.Namespace, console: Console) -> int:
    from flowrun._flows import FlowRunner
    from flowrun._load._flows import FlowLoader
    from flowrun._registry import Registry
    from flowrun._report._text import render_flow, render_summary

    if not 1 <= args.parallel <= _MAX_PARALLEL:
        raise UsageError(f"--parallel must be between 1 and {_MAX_PARALLEL}")
    connect_to = connect_to_mapping(args.connect_to)
    files = flow_files(list(args.paths))
    started = time.perf_counter()
    loader = FlowLoader(steps_dirs=args.steps)
    load_errors: list[FlowrunError] = []
    flows: list[tuple[Path, Any]] = []
    for file in files:
        try:
            flows.append((file, loader.load(file)))
        except FlowrunError as error:
            load_errors.append(error)
            console.print_error(error)
    registry: Registry | None = None
    if args.aliases is not None or any(flow.alias_names for _, flow in flows):
        try:
            registry = Registry.load(args.aliases, connect_to=connect_to)
        except FlowrunError as error:
            console.print_error(error)
            return error.exit_code
    local = threading.local()
    runners: list[FlowRunner] = []
    runners_lock = threading.Lock()

    def runner() -> FlowRunner:
        current: FlowRunner | None = getattr(local, "runner", None)
        if current is None:
            current = FlowRunner(registry=registry, env=args.env, steps_dirs=args.steps, connect_to=connect_to)
            local.runner = current
            with runners_lock:
                runners.append(current)
        return current

    progress = _Progress(console, len(flows))

    def run_one(index: int, file: Path, flow: Any) -> tuple[int, FlowResult | FlowrunError]:
        label = str(file)
        progress.started(label)
        try:
            result: FlowResult | FlowrunError = runner().run(flow)
        except FlowrunError as error:  # inputs without defaults, undeclared env variables
            result = error
        if isinstance(result, FlowResult):
            lines = render_flow(result, console, title=f"{result.name} ({file})", all_assertions=args.verbose)
        else:
            lines = [f"{console.style('error', 'red', 'bold')} {file}: {result}"]
            if result.hint:
                lines.append(f"  {console.style('hint', 'cyan')}: {result.hint}")
        progress.finished(label, lines)
        return index, result

    outcomes: dict[int, FlowResult | FlowrunError] = {}
    try:
        if args.parallel == 1:
            for index, (file, flow) in enumerate(flows):
                outcomes[index] = run_one(index, file, flow)[1]
        else:
            with ThreadPoolExecutor(max_workers=args.parallel, thread_name_prefix="flowrun-test") as pool:
                futures = [pool.submit(run_one, index, file, flow) for index, (file, flow) in enumerate(flows)]
                for future in as_completed(futures):
                    index, outcome = future.result()
                    outcomes[index] = outcome
    finally:
        progress.close()
        for item in runners:
            item.close()
    results: list[FlowResult] = []
    problems: list[FlowrunError] = list(load_errors)
    for index in sorted(outcomes):
        outcome = outcomes[index]
        if isinstance(outcome, FlowResult):
            results.append(outcome)
        else:
            problems.append(outcome)
    duration_ms = (time.perf_counter() - started) * 1000
    if args.report is not None:
        from flowrun._report._junit import write_junit

        write_junit(args.report, results, load_errors=problems)
    if args.json_report is not None:
        from flowrun._report._json import test_report, write_json

        write_json(args.json_report, test_report(results, duration_ms=duration_ms,
                                                 errors=[e.to_dict() for e in problems]))
    console.print(render_summary(results, console)
                  + (console.style(f"; {len(problems)} not run", "red", "bold") if problems else ""))
    code = exit_code(results)
    if problems:
        code = max(code, *(error.exit_code for error in problems))
    return code
