"""What a REST-only ``flowrun run`` imports: what the run does not use stays out of the process.

A one-step run is mostly start-up, and start-up is mostly imports: each module below is imported
only by the command, step kind, key format or failure that needs it. This is a behaviour check
(which modules are in ``sys.modules`` after the run), not a timing; ``bench/`` times start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from flowrun._cli import _collector
from flowrun.testing import PartnerServer, PkiFiles
from tests._binaries import require_binary
from tests.flows.conftest import PASSWORD, write_json

_WRAPPER = """
import gc, json, sys
from flowrun._cli import _collector, main
_collector.hold()  # as console_main does
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"exit": code, "modules": sorted(sys.modules), "threshold": gc.get_threshold()[0],
               "frozen": gc.get_freeze_count()}, out)
"""

NOT_ON_THE_REST_RUN_PATH = (
    "zeep", "requests", "lxml",  # SOAP
    "jsonschema",  # the fast checker accepts valid files; jsonschema only words a refusal
    "jwt",  # credentials that sign assertions
    "tenacity",  # retries, entered after a first failed attempt
    "asyncio",  # async executors
    "cryptography.hazmat.primitives.serialization.pkcs7",  # PKCS#7 trust bundles (and the email package)
    # Decoding and writing keys: a JKS key goes to OpenSSL as the PKCS#8 it was stored as, and
    # certificates as the DER they were read from.
    "cryptography.hazmat.primitives.serialization",
    "xml.etree.ElementTree", "flowrun._report._junit", "flowrun._report._html",  # --report, --html
    "csv",  # --data files
    "jmespath",  # expressions other than plain field paths (the flow asserts on `status`)
    "difflib",  # did-you-mean of a misspelt name
    "flowrun._soap", "flowrun._transport._soap", "flowrun._transport._wsdl",
    "flowrun._transport._probe",  # alias test
    "flowrun._tls._java_serial",  # JCEKS secret key entries
    "flowrun._tls._diagnose",  # keystore inspect, failure diagnosis
    "flowrun._tls._hello",  # diagnostic handshakes after an ambiguous failure
    "flowrun._transport._signing",
    "flowrun._transport._auth",  # credentials other than none
    "flowrun._paging", "flowrun._transport._links",  # paginate
    "flowrun._transport._rate",  # rate and concurrency limits
    "flowrun._transport._redirect",  # follow_redirects
    "flowrun._report._text", "flowrun._report._interruption",  # text output, interrupted runs
    "flowrun.importers", "flowrun._cli._keystore", "flowrun._cli._alias", "flowrun._cli._import",
)


def _user_aliases(tmp_path: Path, pki_files: PkiFiles, partner: PartnerServer,
                  keystore: dict[str, Any] | None = None) -> Path:
    """A user's alias: a JKS keystore (or ``keystore``), the partner's root, and the system's CAs too."""
    aliases = tmp_path / "aliases"
    write_json(aliases / "partner.json", [
        keystore or {"kind": "keystore", "name": "client", "type": "jks", "file": str(pki_files.client.jks),
                     "password": {"env": "FLOWRUN_TEST_KEYSTORE_PASSWORD"}, "key_alias": "client"},
        {"kind": "trust_store_cert", "name": "partner_root", "file": str(pki_files.root_pem)},
        {"kind": "protocol_profile", "name": "partnerMTLS", "keystore": "client",
         "trust_store_certs": ["partner_root"], "use_system_trust": True},
        {"kind": "alias", "name": "bank",
         "connection": {"url": f"{partner.url}/v2", "mutual_authentication": True,
                        "protocol_profile": "partnerMTLS", "timeout_s": 10},
         "retry_policy": {"strategy": "exponential", "count": 3, "interval_s": 0.5, "on_status": [503]}},
    ])
    return aliases


def _run_balance(tmp_path: Path, pki_files: PkiFiles, partner: PartnerServer, keystore: dict[str, Any] | None = None,
                 ) -> Callable[..., tuple[str, dict[str, Any]]]:
    """Runs a one-step balance flow through the user's alias with ``run`` options; gives its
    standard output and what the wrapper saw (exit code, modules, collector)."""
    aliases = _user_aliases(tmp_path, pki_files, partner, keystore)
    flow = write_json(tmp_path / "flow.json", {"name": "balance", "steps": [
        {"id": "balance", "type": "rest", "alias": "bank", "path": "/accounts/7",
         "assert": [{"that": "status", "equals": 200}]}]})
    report = tmp_path / "modules.json"
    env = {"PATH": "/usr/bin:/bin", "FLOWRUN_TEST_KEYSTORE_PASSWORD": PASSWORD}

    def run(*options: str) -> tuple[str, dict[str, Any]]:
        proc = subprocess.run([sys.executable, "-c", _WRAPPER, str(report), "run", str(flow), "--aliases",
                               str(aliases), *options], capture_output=True, text=True, env=env, timeout=120,
                              check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        facts: dict[str, Any] = json.loads(report.read_text())
        return proc.stdout, facts

    return run


def test_a_rest_only_run_imports_nothing_it_does_not_use(tmp_path: Path, pki_files: PkiFiles,
                                                          partner: PartnerServer) -> None:
    out, facts = _run_balance(tmp_path, pki_files, partner)("--json")

    assert json.loads(out)["status"] == "passed"
    assert facts["exit"] == 0
    imported = set(facts["modules"])
    assert "httpx" in imported and "flowrun._rest" in imported  # the check looks at a real run
    assert sorted(imported & set(NOT_ON_THE_REST_RUN_PATH)) == []
    assert not any(name.startswith(("zeep.", "lxml.", "flowrun.importers.")) for name in imported)
    # The collector, held during start-up, collects again after the first result; what start-up
    # built is frozen (flowrun/_cli/_collector.py).
    assert facts["threshold"] < _collector.HELD_THRESHOLD and facts["frozen"] > 0


def _plain_pem_keystore(tmp_path: Path, pki_files: PkiFiles) -> dict[str, Any]:
    """The client's certificate file and its key as unencrypted PKCS#8 (``openssl pkey`` output, 0600)."""
    key = tmp_path / "client.key"
    subprocess.run([require_binary("openssl", "openssl"), "pkey", "-in", str(pki_files.client.key_pem), "-passin",
                    f"pass:{PASSWORD}", "-out", str(key)], check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    return {"kind": "keystore", "name": "client", "type": "pem", "file": str(pki_files.client.cert_pem),
            "key_file": str(key)}


@pytest.mark.parametrize("store", ["jks", "pem"])
def test_a_run_from_a_jks_store_or_pem_files_never_imports_cryptography(
        tmp_path: Path, pki_files: PkiFiles, partner: PartnerServer, store: str) -> None:
    """Neither passed iterations nor a JSON report decode a certificate with cryptography: the
    lean path (flowrun/_tls/_lean.py) reads what they need from the DER."""
    keystore = _plain_pem_keystore(tmp_path, pki_files) if store == "pem" else None
    run = _run_balance(tmp_path, pki_files, partner, keystore)

    text, facts = run("--iterations", "3")
    json_out, facts_for_json = run("--json")

    imported, imported_for_json = set(facts["modules"]), set(facts_for_json["modules"])
    assert text.count("ok   iteration") == 3
    assert "flowrun._rest" in imported and "flowrun._tls._lean" in imported
    assert sorted(name for name in imported if name.startswith("cryptography")) == []
    tls = json.loads(json_out)["steps"][0]["tls"]
    assert tls["client_cert_subject"] and tls["server_cert_subject"] and tls["server_chain"]
    leaf = x509.load_pem_x509_certificate(pki_files.client.cert_pem.read_bytes())
    assert tls["client_cert_sha256"] == leaf.fingerprint(hashes.SHA256()).hex()
    assert tls["client_cert_subject"] == leaf.subject.rfc4514_string()
    assert sorted(name for name in imported_for_json if name.startswith("cryptography")) == []
