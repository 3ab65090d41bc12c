"""Pairs about scale: calls must not grow with the WSDL, memory with the iterations, nor a run's cost
with the number of aliases it does not use.

- ``soap-1mb``: the SOAP pair on a generated ~1 MB WSDL of a few hundred operations (``_big_wsdl``),
  loaded from a local file by both sides.
- ``memory``: peak RSS of ``flowrun run --iterations N`` at 100 and at 10,000 iterations, for the
  text output, ``--json`` and ``--report`` (each run a fresh process that reports its own peak).
- ``aliases``: ``flowrun run`` of a one-step flow with an alias directory of 1,000 more aliases
  against the same directory without them (both whole processes, interleaved).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from _big_wsdl import write_big_wsdl
from _pairs import (
    Bench,
    Check,
    Pair,
    PairError,
    Sizes,
    SoapPair,
    _cli_run_available,
    _run_process,
    _write_json,
    flow_document,
    flowrun_command,
)
from _servers import alias_record, identity_records
from soap import LEDGER_BINDING

BIG_WSDL_OPERATIONS = 360
MEMORY_ITERATIONS = (100, 10_000)
MEMORY_LIMIT_MIB = 10
MANY_ALIASES = 1000


def _quick(bench: Bench) -> bool:
    return bench.sizes.rest_gets < Sizes().rest_gets


# --- SOAP on a ~1 MB WSDL -------------------------------------------------------------------------


class SoapBigWsdlPair(SoapPair):
    name = "soap-1mb"
    title = "SOAP executor vs raw zeep on a ~1 MB WSDL of hundreds of operations (local file, mTLS calls)"
    target = "<= 1.10"

    def prepare(self, bench: Bench) -> None:
        super().prepare(bench)
        import attrs

        operations = 20 if _quick(bench) else BIG_WSDL_OPERATIONS
        self._wsdl = write_big_wsdl(bench.directory / "big-wsdl", operations)
        self.wsdl_bytes = self._wsdl.stat().st_size
        self._step = attrs.evolve(self._step, wsdl=str(self._wsdl))

        def big_service(site: Any) -> tuple[Any, Any]:
            import requests
            import zeep

            session = requests.Session()
            session.trust_env = False
            session.cert = (str(site.pki.client_cert_pem), str(site.pki.client_plain_key_pem))
            session.verify = str(site.pki.root_pem)
            client = zeep.Client(str(self._wsdl), transport=zeep.Transport(session=session))
            return session, client.create_service(LEDGER_BINDING, f"{site.url}/ledger")

        self._zeep_service = big_service

    def checks(self) -> list[Check]:
        return [*super().checks(),
                Check("WSDL size", f"{self.wsdl_bytes / 1e6:.2f} MB", "~1 MB", None)]


# --- memory over iterations -----------------------------------------------------------------------

# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the forking parent (the bench).
_PEAK_WRAPPER = """
import json, sys
from flowrun._cli import main
code = main(sys.argv[2:])
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
with open(sys.argv[1], "w") as out:
    json.dump({"exit": code, "peak_kib": peak}, out)
"""


class MemoryPair(Pair):
    name = "memory"
    title = "peak RSS of `flowrun run --iterations N`: 100 vs 10,000 iterations (text, --json, --report)"
    target = "see checks"
    timed = False

    def prepare(self, bench: Bench) -> None:
        directory = bench.directory / "memory"
        directory.mkdir(parents=True, exist_ok=True)
        _cli_run_available(directory)
        site = bench.rest_site()
        flow = _write_json(directory / "flow.json", flow_document())
        small, large = (5, 500) if _quick(bench) else MEMORY_ITERATIONS
        self._checks: list[Check] = []
        for mode, extra in (("text", []), ("--json", ["--json"]), ("--report", ["--report", "junit.xml"])):
            peaks = []
            for iterations in (small, large):
                out = directory / "peak.json"
                _run_process([sys.executable, "-c", _PEAK_WRAPPER, str(out), "run", str(flow), "--aliases",
                              str(site.aliases_dir), "--iterations", str(iterations), *extra],
                             cwd=directory, what=f"flowrun run --iterations {iterations} {mode}")
                result = json.loads(out.read_text())
                if result["exit"] != 0:
                    raise PairError(f"flowrun run {mode} exited with {result['exit']}")
                peaks.append(result["peak_kib"] / 1024)
            growth = peaks[1] - peaks[0]
            self._checks.append(Check(
                f"peak RSS, {mode}: {small:,} -> {large:,} iterations",
                f"{peaks[0]:.1f} -> {peaks[1]:.1f} MiB ({growth:+.1f})", f"<= +{MEMORY_LIMIT_MIB} MiB",
                growth <= MEMORY_LIMIT_MIB))

    def checks(self) -> list[Check]:
        return self._checks


# --- many aliases ---------------------------------------------------------------------------------


class ManyAliasesPair(Pair):
    name = "aliases"
    title = "`flowrun run` with 1,000 unused aliases in the directory vs with only the one it uses"
    target = "<= 1.2"

    def prepare(self, bench: Bench) -> None:
        directory = bench.directory / "aliases-pair"
        directory.mkdir(parents=True, exist_ok=True)
        _cli_run_available(directory)
        site = bench.rest_site()
        count = 50 if _quick(bench) else MANY_ALIASES
        flow = _write_json(directory / "flow.json", flow_document())
        commands = []
        for label, extra in (("one", 0), ("many", count)):
            aliases = directory / label
            aliases.mkdir(exist_ok=True)
            records = [*identity_records(site.pki, aliases), alias_record("partner", site.url)]
            records += [alias_record(f"unused_{i:04d}", f"{site.url}/unused/{i}") for i in range(extra)]
            _write_json(aliases / "aliases.json", records)
            commands.append(flowrun_command("run", str(flow), "--aliases", str(aliases), "--json"))
        self._many_command, self._one_command = commands[1], commands[0]
        self._directory = directory
        self.flowrun()  # warm the file and bytecode caches
        self.reference()

    def meets_target(self, ratio: float) -> bool:
        return ratio <= 1.2

    def _run(self, command: list[str]) -> float:
        elapsed, output = _run_process(command, cwd=self._directory, what="flowrun run")
        if json.loads(output).get("status") != "passed":
            raise PairError(f"flowrun run did not pass: {output[:400]}")
        return elapsed

    def flowrun(self) -> float:
        return self._run(self._many_command)

    def reference(self) -> float:
        return self._run(self._one_command)


SCALE_PAIRS: tuple[type[Pair], ...] = (SoapBigWsdlPair, MemoryPair, ManyAliasesPair)
