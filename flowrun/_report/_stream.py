"""Reports of a long run written as its iterations finish, so that memory stays flat.

``flowrun run --iterations 10000`` must not keep 10,000 results: ``RunTally`` keeps the counts
that the summary and the exit code need, and each iteration's JSON object and JUnit suite go to
an anonymous temporary file (unlinked, 0600) as soon as the iteration ends. At the end the
report is copied out around that spool in pieces: the same text as ``run_report`` and
``junit_xml`` would give for the whole list, masked the same way.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from flowrun._models._flow_results import FlowResult, summarize
from flowrun._models._numbers import dumps
from flowrun._models._redact import Secrets, json_visible
from flowrun._report._files import open_report

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

    from flowrun._report._interruption import Interruption

_CHUNK = 1 << 16


class RunTally:
    """What a run's summary and exit code need, counted as results come in (no result is kept)."""

    def __init__(self) -> None:
        self.count = 0
        self.counts = summarize([])
        self.exit_code = 0

    def add(self, result: FlowResult) -> None:
        self.count += 1
        for key, value in summarize([result]).items():
            self.counts[key] += value
        if not result.ok:
            self.exit_code = max(self.exit_code, result.error.exit_code if result.error is not None else 1)

    @property
    def ok(self) -> bool:
        return self.counts["flows_failed"] == 0


def _spool() -> IO[str]:
    # Partners' answers may be in it: never a named file (O_TMPFILE where the OS has it), mode 0600;
    # surrogatepass: a partner's lone surrogate comes back out as it went in (json_visible shows it).
    return tempfile.TemporaryFile("w+", encoding="utf-8", errors="surrogatepass", prefix="flowrun-report-")


def _indented(text: str, prefix: str) -> str:
    return text.replace("\n", "\n" + prefix)


class JsonStream:
    """``run --json``: the iterations' objects, spooled; ``write`` prints what ``run_report`` gives."""

    def __init__(self, secrets: Secrets) -> None:
        self._secrets = secrets
        self._spool: IO[str] | None = None
        self._first: FlowResult | None = None
        self._count = 0

    def add(self, result: FlowResult) -> None:
        self._count += 1
        if self._count == 1:
            self._first = result  # one result (no iterations) is printed as is: no spool file for it
            return
        if self._spool is None:
            self._spool = _spool()
        if self._first is not None:
            self._spool_result(self._first)
            self._first = None
        self._spool.write(",\n")
        self._spool_result(result)

    def _spool_result(self, result: FlowResult) -> None:
        assert self._spool is not None
        text = dumps(self._secrets.mask_data(result.to_dict()), indent=2, ensure_ascii=False, default=None)
        self._spool.write("    " + _indented(text, "    "))

    def write(self, stream: IO[str], tally: RunTally, *, many: bool, interrupted: Interruption | None) -> None:
        try:
            for piece in self._pieces(tally, many=many, interrupted=interrupted):
                stream.write(json_visible(self._secrets.mask(piece)))
            stream.write("\n")
        finally:
            if self._spool is not None:
                self._spool.close()

    def _pieces(self, tally: RunTally, *, many: bool, interrupted: Interruption | None) -> Iterator[str]:
        if not many and self._count == 1 and self._first is not None:
            from flowrun._report._json import run_report

            yield dumps(self._secrets.mask_data(run_report([self._first], many=False, interrupted=interrupted)),
                        indent=2, ensure_ascii=False, default=None)
            return
        status = "passed" if tally.ok and interrupted is None else "failed"
        if self._count == 0:
            yield '{\n  "status": ' + dumps(status) + ',\n  "iterations": [],\n'
        else:
            yield '{\n  "status": ' + dumps(status) + ',\n  "iterations": [\n'
            if self._first is not None:  # the only iteration
                self._spool = _spool()
                self._spool_result(self._first)
            assert self._spool is not None
            yield from _copy_out(self._spool)
            yield "\n  ],\n"
        yield '  "summary": ' + _indented(dumps(tally.counts, indent=2), "  ")
        if interrupted is not None:
            yield ',\n  "interrupted": ' + _indented(dumps(interrupted.to_dict(), indent=2, ensure_ascii=False),
                                                    "  ")
        yield "\n}"


class JunitStream:
    """``run --report``: each iteration's ``testsuite``, spooled; ``write`` gives what ``junit_xml`` gives."""

    def __init__(self) -> None:
        from flowrun._report._junit import _clean

        self._spool = _spool()
        self._hostname = _clean(socket.gethostname())
        self._totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        self._time = 0.0

    def add(self, result: FlowResult) -> None:
        from flowrun._report._junit import _suite

        self._append(_suite(result, self._hostname))
        self._time += result.duration_ms / 1000

    def _append(self, suite: ET.Element) -> None:
        import xml.etree.ElementTree as ET  # only --report runs pay for it

        for key in self._totals:
            self._totals[key] += int(suite.get(key, "0"))
        ET.indent(suite, level=1)
        suite.tail = None
        self._spool.write("  " + ET.tostring(suite, encoding="unicode") + "\n")

    def write(self, path: Path, *, interrupted: Interruption | None, secrets: Secrets | None) -> None:
        import xml.etree.ElementTree as ET

        from flowrun._report._junit import not_run_suites

        try:
            if interrupted is not None:
                for suite in not_run_suites(interrupted):
                    self._append(suite)
            root = ET.Element("testsuites", name="flowrun")
            for key, value in self._totals.items():
                root.set(key, str(value))
            root.set("time", f"{self._time:.3f}")
            head = ET.tostring(root, encoding="unicode").removesuffix(" />")
            empty = self._spool.tell() == 0
            with open_report(path, option="--report") as handle:
                def put(text: str) -> None:
                    handle.write(secrets.mask(text) if secrets is not None else text)

                put('<?xml version="1.0" encoding="UTF-8"?>\n')
                if empty:
                    put(head + " />\n")
                    return
                put(head + ">\n")
                for piece in _copy_out(self._spool):
                    put(piece)
                put("</testsuites>\n")
        finally:
            self._spool.close()


def _copy_out(spool: IO[str]) -> Iterator[str]:
    """The spool's text in pieces that end at line ends (a secret never spans two pieces)."""
    spool.flush()
    spool.seek(0)
    carry = ""
    while True:
        chunk = spool.read(_CHUNK)
        if not chunk:
            break
        chunk = carry + chunk
        cut = chunk.rfind("\n") + 1
        if cut == 0:
            carry = chunk
            continue
        carry = chunk[cut:]
        yield chunk[:cut]
    if carry:
        yield carry


__all__ = ["JsonStream", "JunitStream", "RunTally"]
