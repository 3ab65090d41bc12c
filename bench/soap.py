"""N GetBalance calls through flowrun's SoapExecutor vs raw zeep, over mutual TLS.

    python bench/soap.py [--calls 1000] [--rounds 10]

The Ledger partner (``flowrun.testing.PartnerServer``) runs in a process of its own
(``_servers.start_partner_site``). Both clients load the WSDL by URL over mutual TLS (its schema
import too), then call GetBalance:

* flowrun: ``SoapExecutor.run(step)`` through the ``ledger`` alias, whose keystore is a JKS file;
* zeep: ``zeep.Client`` with its stock sync ``Transport`` on a ``requests`` session holding the
  same client certificate and trust.

Calls run in interleaved rounds (flowrun then zeep, then zeep then flowrun, ...) so that both
sides see the same machine load. Printed: median and 90th percentile per call, the ratio of the
medians, and how many times flowrun parsed the WSDL. ``bench/run.py --only soap`` measures the
same pair in whole rounds among the other benches.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
# flowrun from this checkout, here and in the partner process.
sys.path.insert(1, str(BENCH_DIR.parent))

from _servers import Site, start_partner_site  # noqa: E402  (needs the path above)

LEDGER_BINDING = "{urn:flowrun:ledger:1}LedgerBinding"


def zeep_service(site: Site) -> tuple[Any, Any]:
    """Raw zeep: its stock sync Transport on a requests session with the same certificates."""
    import requests
    import zeep

    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE silently replaces session.verify
    session.cert = (str(site.pki.client_cert_pem), str(site.pki.client_plain_key_pem))
    session.verify = str(site.pki.root_pem)
    client = zeep.Client(f"{site.url}/ledger?wsdl", transport=zeep.Transport(session=session))
    return session, client.create_service(LEDGER_BINDING, f"{site.url}/ledger")


def timed(call: Any, count: int) -> list[float]:
    times = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SoapExecutor vs raw zeep, GetBalance over mutual TLS")
    parser.add_argument("--calls", type=int, default=1000, help="GetBalance calls per client (default 1000)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flowrun-bench-soap-") as tmp:
        site = start_partner_site(Path(tmp))
        try:
            return run(site, max(args.calls, 1), max(args.rounds, 1))
        finally:
            site.close()


def run(site: Site, calls: int, rounds: int) -> int:
    from flowrun._models._steps import ResponseSpec, SoapStep
    from flowrun._registry import Registry
    from flowrun._soap import SoapExecutor
    from flowrun._transport._wsdl import WSDL_CACHE

    # The bench's ``ledger`` alias ends in /ledger: the endpoint is the alias URL itself.
    step = SoapStep(id="balance", alias="ledger", wsdl=f"{site.url}/ledger?wsdl", operation="GetBalance",
                    args={"account": "42"}, response=ResponseSpec(outputs={"balance": "body.balance"}))
    with SoapExecutor(Registry.load(site.aliases_dir)) as soap:
        session, service = zeep_service(site)

        def flowrun_call() -> None:
            result = soap.run(step)
            if result.error is not None or result.outputs["balance"] != 1234.5:
                raise SystemExit(f"flowrun call failed: {result.error}")

        def zeep_call() -> None:
            if service.GetBalance(account="42").balance != 1234.5:
                raise SystemExit("zeep call failed")

        # Warm-up, outside the measure: flowrun fetches and parses the WSDL here (zeep did in zeep.Client).
        flowrun_call()
        zeep_call()
        ours: list[float] = []
        theirs: list[float] = []
        per_round = [calls // rounds + (1 if r < calls % rounds else 0) for r in range(rounds)]
        for index, count in enumerate(per_round):
            order = [(ours, flowrun_call), (theirs, zeep_call)]
            for target, call in order if index % 2 == 0 else reversed(order):
                target.extend(timed(call, count))
        session.close()
        parses = WSDL_CACHE.stats().parses
    served = site.server.stats()["wsdl_fetches"]  # type: ignore[attr-defined]

    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    print(f"GetBalance over mutual TLS: {calls} calls per client in {rounds} interleaved rounds")
    for label, times in (("flowrun SoapExecutor", ours), ("zeep + requests", theirs)):
        median, p90 = statistics.median(times) * 1e6, percentile(times, 0.9) * 1e6
        print(f"  {label:22} median {median:8.1f} us   p90 {p90:8.1f} us")
    print(f"  ratio flowrun / zeep (medians): {ours_median / theirs_median:.2f}")
    print(f"  WSDL parsed {parses} time(s) by flowrun for {calls + 1} calls "
          f"(the partner served it {served} times: flowrun and zeep)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
