"""A SOAP alias's rate limit, checked by the arrival times at Spyne (a real SOAP server) over mutual TLS.

SOAP calls take their turns from the alias's bucket like REST requests do (the WSDL fetched from
the alias's origin too), and REST and SOAP steps through the same alias share that one bucket.
These check pacing, not speed: no 1-second window holds more than rate + burst requests, and the
whole cannot be faster than the limit allows.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowrun import FlowResult, FlowRunner
from flowrun._registry import Registry
from flowrun.testing import Pki, PkiFiles
from tests.lists._partner import windows
from tests.soap._spyne_partner import SpynePartner
from tests.soap.conftest import KEYSTORE_PASSWORD

KEYSTORE_ENV = "SPYNE_PACED_KEYSTORE_PASSWORD"
RATE, BURST = 10, 2


@pytest.fixture
def spyne(pki: Pki) -> Iterator[SpynePartner]:
    # One server per test: its arrivals are that test's requests only.
    with SpynePartner(pki) as server:
        yield server


def paced_registry(tmp_path: Path, pki_files: PkiFiles, spyne: SpynePartner, alias: str,
                   monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv(KEYSTORE_ENV, KEYSTORE_PASSWORD)
    records = [
        {"kind": "keystore", "name": "paced_client", "type": "jks", "file": str(pki_files.client.jks),
         "password": {"env": KEYSTORE_ENV}, "key_alias": "client"},
        {"kind": "trust_store_cert", "name": "paced_root", "format": "pem", "file": str(pki_files.root_pem)},
        {"kind": "protocol_profile", "name": "pacedMTLS", "keystore": "paced_client",
         "trust_store_certs": ["paced_root"], "use_system_trust": False},
        {"kind": "alias", "name": alias, "rate_limit": {"per_second": RATE, "burst": BURST},
         "connection": {"url": spyne.url, "mutual_authentication": True, "protocol_profile": "pacedMTLS",
                        "timeout_s": 20}},
    ]
    directory = tmp_path / "aliases"
    directory.mkdir()
    (directory / "paced.json").write_text(json.dumps(records), encoding="utf-8")
    return Registry.load(directory)


def soap_flow(tmp_path: Path, spyne: SpynePartner, alias: str, count: int) -> Path:
    flow = {"name": "soap_paced", "inputs": {"n": {"type": "array", "default": list(range(count))}}, "steps": [
        {"id": "add", "type": "soap", "alias": alias, "wsdl": f"{spyne.url}/soap11?wsdl", "path": "/soap11",
         "operation": "Add", "args": {"a": "{{ item }}", "b": 1}, "for_each": "{{ inputs.n }}", "concurrency": 4,
         "response": {"outputs": {"sum": "body.AddResult"}}}]}
    path = tmp_path / "soap_paced.json"
    path.write_text(json.dumps(flow), encoding="utf-8")
    return path


def rest_flow(tmp_path: Path, alias: str, count: int) -> Path:
    # A plain GET of the service's WSDL: a REST request to the same partner through the same alias.
    flow = {"name": "rest_paced", "inputs": {"n": {"type": "array", "default": list(range(count))}}, "steps": [
        {"id": "get", "type": "rest", "alias": alias, "path": "/soap11", "query": {"wsdl": "", "n": "{{ item }}"},
         "response": {"parse": "text"}, "for_each": "{{ inputs.n }}", "concurrency": 4}]}
    path = tmp_path / "rest_paced.json"
    path.write_text(json.dumps(flow), encoding="utf-8")
    return path


def check_paced(times: list[float]) -> None:
    assert max(windows(times)) <= RATE + BURST
    # The bucket lets BURST go at once and one more every 1/RATE s; 10% for timer and scheduling jitter.
    assert max(times) - min(times) >= 0.9 * (len(times) - BURST) / RATE


def test_a_soap_alias_rate_limit_paces_the_calls(tmp_path: Path, pki_files: PkiFiles, spyne: SpynePartner,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    registry = paced_registry(tmp_path, pki_files, spyne, "spyne_paced", monkeypatch)
    with FlowRunner(registry=registry) as runner:
        result = runner.run(soap_flow(tmp_path, spyne, "spyne_paced", 20))

    assert result.status == "passed", result.error
    assert result.steps[0].outputs["sum"] == list(range(1, 21))
    arrivals = spyne.arrivals
    assert [a.method for a in arrivals].count("POST") == 20
    assert [a.query for a in arrivals if a.method == "GET"] == ["wsdl"]  # the WSDL, once, paced too
    check_paced([a.at for a in arrivals])


def test_rest_and_soap_steps_through_one_alias_share_its_bucket(tmp_path: Path, pki_files: PkiFiles,
                                                                spyne: SpynePartner,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    registry = paced_registry(tmp_path, pki_files, spyne, "spyne_shared", monkeypatch)
    flows = [soap_flow(tmp_path, spyne, "spyne_shared", 12), rest_flow(tmp_path, "spyne_shared", 12)]
    results: list[FlowResult] = []

    def run(path: Path) -> None:
        # Each flow on its own runner and executors, as `flowrun test --parallel` runs them.
        with FlowRunner(registry=registry) as runner:
            results.append(runner.run(path))

    threads = [threading.Thread(target=run, args=(path,)) for path in flows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.status for r in results] == ["passed", "passed"], [r.error for r in results]
    arrivals = spyne.arrivals
    soap_calls = [a for a in arrivals if a.method == "POST"]
    rest_calls = [a for a in arrivals if a.method == "GET" and "n=" in a.query]
    assert len(soap_calls) == 12 and len(rest_calls) == 12
    # Both kinds were in flight together, and together they kept to the one limit.
    assert min(a.at for a in rest_calls) < max(a.at for a in soap_calls)
    assert min(a.at for a in soap_calls) < max(a.at for a in rest_calls)
    check_paced([a.at for a in arrivals])
