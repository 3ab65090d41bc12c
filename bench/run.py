"""flowrun against raw httpx, raw zeep and Newman, side by side.

    python bench/run.py [--quick] [--rounds R] [--only NAME[,NAME]] [--json out.json]

Starts its own servers (each in a process of its own), runs each pair's two sides interleaved for
R rounds (the side that goes first alternates), and prints medians and ratios (flowrun /
reference). Machines are noisy: the ratios are the result, not the absolute times. A pair that
cannot run here prints ``skipped: <why>`` and the run goes on. The exit code is 0 unless the
harness itself broke (a missed target is a result, not a failure). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# flowrun from this checkout, here and in every child process (servers, CLI runs).
sys.path.insert(1, str(REPO_ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)

from _celery_pairs import CELERY_PAIRS  # noqa: E402
from _pairs import PAIRS as _BASE_PAIRS  # noqa: E402
from _pairs import QUICK, Bench, Check, Pair, PairError, Sizes, Skip  # noqa: E402
from _scale_pairs import SCALE_PAIRS  # noqa: E402

PAIRS = (*_BASE_PAIRS, *SCALE_PAIRS, *CELERY_PAIRS)


def compile_flowrun() -> None:
    """Write flowrun's bytecode, as installing a package does: with PYTHONDONTWRITEBYTECODE set
    (or a read-only checkout) every CLI run of the bench would compile flowrun from source again,
    and the cold-start and Newman pairs would measure the compiler."""
    import compileall

    compileall.compile_dir(REPO_ROOT / "flowrun", quiet=1)


@dataclass
class Outcome:
    name: str
    title: str
    target: str
    status: str = "ok"  # ok | skipped | error
    why: str = ""
    operations: int = 0
    flowrun_s: list[float] = field(default_factory=list)
    reference_s: list[float] = field(default_factory=list)
    ratio: float | None = None
    meets_target: bool | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def flowrun_median(self) -> float | None:
        return statistics.median(self.flowrun_s) if self.flowrun_s else None

    @property
    def reference_median(self) -> float | None:
        return statistics.median(self.reference_s) if self.reference_s else None

    @property
    def verdict(self) -> str:
        if self.status != "ok":
            return self.status
        verdicts = [] if self.ratio is None else [
            "info" if self.meets_target is None else "ok" if self.meets_target else "MISSED"]
        verdicts += [check_verdict(check) for check in self.checks]
        return "MISSED" if "MISSED" in verdicts else "ok" if "ok" in verdicts else "info"


def check_verdict(check: Check) -> str:
    return "info" if check.ok is None else "ok" if check.ok else "MISSED"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [pair.name for pair in PAIRS]
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and one round: checks that every pair still runs (numbers mean little)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per pair (default 5; 1 with --quick)")
    parser.add_argument("--only", default="", metavar="NAME[,NAME]", help=f"run only these pairs: {', '.join(names)}")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--rest-server", choices=("auto", "nginx", "python"), default="auto",
                        help="server for the REST pairs: nginx when installed (auto), or the Python partner")
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown pair {', '.join(unknown)}; pairs: {', '.join(names)}")
    # A name also chooses its variants: "async" runs "async" and "async-latency".
    args.pairs = [pair for pair in PAIRS
                  if not chosen or any(pair.name == n or pair.name.startswith(f"{n}-") for n in chosen)]
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def run_pair(pair: Pair, bench: Bench, rounds: int) -> Outcome:
    outcome = Outcome(pair.name, pair.title, pair.target)
    try:
        pair.prepare(bench)
        outcome.operations = pair.operations
        if pair.timed:
            for round_number in range(rounds):
                # Alternate which side goes first, so neither always runs on a warmer machine.
                sides = [("flowrun", pair.flowrun), ("reference", pair.reference)]
                if round_number % 2:
                    sides.reverse()
                times: dict[str, float] = {}
                for side, measure in sides:
                    times[side] = measure()
                outcome.flowrun_s.append(times["flowrun"])
                outcome.reference_s.append(times["reference"])
                print(f"  round {round_number + 1}/{rounds}: flowrun {times['flowrun']:.3f} s, "
                      f"reference {times['reference']:.3f} s, ratio {times['flowrun'] / times['reference']:.3f}",
                      flush=True)
            # The median of the per-round ratios: each round's two sides ran back to back, under
            # the same load, so their ratio cancels most of the machine's drift between rounds.
            outcome.ratio = statistics.median(f / r for f, r in zip(outcome.flowrun_s, outcome.reference_s,
                                                                    strict=True))
            outcome.meets_target = pair.meets_target(outcome.ratio)
        outcome.checks = pair.checks()
    except Skip as skip:
        outcome.status, outcome.why = "skipped", str(skip)
    except PairError as error:
        outcome.status, outcome.why = "error", str(error)
    finally:
        pair.close()
    return outcome


def ratio_text(outcome: Outcome) -> str:
    ratio = outcome.ratio
    if ratio is None:
        return "-"
    if outcome.name in ("newman", "async-latency", "celery"):
        return f"{ratio:.3f} ({1 / ratio:.0f}x faster)"
    return f"{ratio:.3f}"


def time_text(seconds: float | None, operations: int) -> str:
    if seconds is None:
        return "-"
    if operations:
        return f"{seconds:.3f} s ({seconds / operations * 1000:.3f} ms/op)"
    return f"{seconds:.3f} s"


def summary_line(outcome: Outcome) -> str:
    if outcome.status == "skipped":
        return f"{outcome.name}: skipped: {outcome.why}"
    if outcome.status == "error":
        return f"{outcome.name}: error: {outcome.why}"
    parts = []
    if outcome.ratio is not None:
        parts.append(f"ratio {ratio_text(outcome)} (flowrun {time_text(outcome.flowrun_median, 0)}, "
                     f"reference {time_text(outcome.reference_median, 0)}; target {outcome.target})")
    if outcome.checks:
        judged = [check for check in outcome.checks if check.ok is not None]
        if judged:
            parts.append(f"checks {sum(bool(check.ok) for check in judged)}/{len(judged)} met")
    return f"{outcome.name}: {'; '.join(parts)} -> {outcome.verdict}"


def markdown_table(outcomes: list[Outcome]) -> str:
    rows = ["| pair | flowrun | reference | ratio | target | verdict |", "|---|---|---|---|---|---|"]
    numbers = {pair.name: number for number, pair in enumerate(PAIRS, start=1)}
    for outcome in outcomes:
        label = f"{numbers[outcome.name]}. {outcome.name}"
        if outcome.status != "ok":
            rows.append(f"| {label} | - | - | - | {outcome.target} | {outcome.status}: {outcome.why} |")
            continue
        if outcome.ratio is not None:
            verdict = "info" if outcome.meets_target is None else "ok" if outcome.meets_target else "MISSED"
            rows.append(f"| {label} | {time_text(outcome.flowrun_median, outcome.operations)} | "
                        f"{time_text(outcome.reference_median, outcome.operations)} | {ratio_text(outcome)} | "
                        f"{outcome.target} | {verdict} |")
        for check in outcome.checks:
            rows.append(f"| {label}: {check.name} | {check.value} | - | - | {check.target} | "
                        f"{check_verdict(check)} |")
    return "\n".join(rows)


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compile_flowrun()
    sizes: Sizes = QUICK if args.quick else Sizes()
    command = "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    started_at = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"flowrun bench: {len(args.pairs)} pair(s), {args.rounds} round(s){' (quick)' if args.quick else ''}; "
          f"{machine()}", flush=True)
    outcomes: list[Outcome] = []
    broke = False
    with tempfile.TemporaryDirectory(prefix="flowrun-bench-") as workdir:
        bench = Bench(Path(workdir), sizes, rest_server=args.rest_server)
        try:
            for number, pair_class in enumerate(args.pairs, start=1):
                pair = pair_class()
                print(f"\n[{number}/{len(args.pairs)}] {pair.name}: {pair.title}", flush=True)
                try:
                    outcome = run_pair(pair, bench, args.rounds)
                except Exception as exc:  # the harness broke: say where, go on with the others
                    traceback.print_exc()
                    broke = True
                    outcome = Outcome(pair.name, pair.title, pair.target, status="error",
                                      why=f"{type(exc).__name__}: {exc}")
                outcomes.append(outcome)
                for check in outcome.checks:
                    print(f"  {check.name}: {check.value} (target {check.target}) -> {check_verdict(check)}")
                print(summary_line(outcome), flush=True)
        finally:
            bench.close()
    print(f"\n## Results ({started_at}, `{command.strip()}`)\n")
    for note in bench.notes:
        print(f"- {note}")
    print(f"- machine: {machine()}\n")
    print(markdown_table(outcomes))
    missed = [o.name for o in outcomes if o.verdict == "MISSED"]
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "command": command.strip(), "started_at": started_at, "machine": machine(), "rounds": args.rounds,
            "quick": args.quick, "sizes": asdict(sizes), "notes": bench.notes,
            "pairs": [{**asdict(o), "flowrun_median_s": o.flowrun_median, "reference_median_s": o.reference_median,
                       "verdict": o.verdict} for o in outcomes],
        }, indent=1))
    return 1 if broke else 0


if __name__ == "__main__":
    sys.exit(main())
