"""Alias directories and flows for each zoo case, written the way a user writes them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.aliases._setup import keystore, mtls_alias, profile, trust_cert, write_aliases

# The cases every partner is met with, in the order of the docs' table.
CASES = ("good", "client_ca_untrusted", "no_client_cert", "client_cert_expired", "server_untrusted",
         "wrong_host", "version_mismatch")
WRONG_HOST = "partner.zoo.example"


@dataclass(frozen=True)
class ClientStores:
    good: Path          # keytool JKS under the client CA the partners trust
    expired: Path       # same CA, expired yesterday
    foreign: Path       # a CA the partners do not trust
    server_root: Path   # the partners' server root: what the aliases trust
    other_root: Path    # an unrelated CA: trusting only it makes the partner untrusted
    good_sha256: str


@dataclass(frozen=True)
class CaseSetup:
    aliases: Path
    flow: Path
    connect_to: tuple[str, ...]  # CLI arguments
    mutual: bool


def write_case(directory: Path, case: str, ports: dict[str, int], version: str, stores: ClientStores, *,
               outputs: dict[str, str] | None = None) -> CaseSetup:
    """Alias ``partner`` for ``case`` against the partner's TLS ``version`` port, and a one-step flow
    (whose ``outputs`` are JMESPath expressions over the response, flow outputs of the same name)."""
    port = ports[version]
    host = "localhost"
    keystore_file, trust_file, extra = stores.good, stores.server_root, {}
    connect_to: tuple[str, ...] = ()
    if case == "client_ca_untrusted":
        keystore_file = stores.foreign
    elif case == "client_cert_expired":
        keystore_file = stores.expired
    elif case == "server_untrusted":
        trust_file = stores.other_root
    elif case == "wrong_host":
        host = WRONG_HOST
        connect_to = ("--connect-to", f"{WRONG_HOST}:{port}:127.0.0.1:{port}")
    elif case == "version_mismatch":
        # The profile pins this version; the port accepts only the other one.
        port = next(p for v, p in ports.items() if v != version)
        extra = {"tls_versions": [version]}
    records: list[dict[str, Any]]
    if case == "no_client_cert":
        records = [{"kind": "alias", "name": "partner",
                    "connection": {"url": f"https://{host}:{port}/v2"}}]
    else:
        records = [keystore("client_ks", keystore_file), trust_cert("partner_root", trust_file),
                   profile(**extra), mtls_alias(port=port, host=host)]
    aliases = write_aliases(directory / "aliases", records)
    flow = directory / "flow.json"
    flow.write_text(json.dumps({
        "name": f"zoo_{case}",
        "steps": [{"id": "ping", "type": "rest", "alias": "partner", "method": "GET", "path": "/ping",
                   "response": {"expect_status": [200], "outputs": outputs or {}}}],
        "outputs": {name: "{{ steps.ping.outputs." + name + " }}" for name in outputs or {}},
    }), encoding="utf-8")
    return CaseSetup(aliases, flow, connect_to, mutual=case != "no_client_cert")
