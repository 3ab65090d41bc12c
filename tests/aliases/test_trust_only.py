"""Trust-only protocol profiles: a profile without a keystore, named by a connection without
mutual authentication, trusts a partner (or its token endpoint) on a private CA."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from flowrun._cli import main
from flowrun._errors import DefinitionError, SchemaError
from flowrun._models._results import StepResult
from flowrun._models._steps import RestStep
from flowrun._rest import AsyncRestExecutor, RestExecutor
from flowrun._tls._cache import TlsCache
from flowrun.testing import PartnerServer, Pki, PkiFiles
from tests.aliases._setup import keystore, load, trust_cert, write_aliases

pytestmark = pytest.mark.usefixtures("secrets_env")


def trust_only_records(files: PkiFiles, *, profile_port: int | None = None, **connection: Any) -> list[dict[str, Any]]:
    profile: dict[str, Any] = {"kind": "protocol_profile", "name": "partnerCA", "trust_store_certs": ["partner_root"],
                               "use_system_trust": False}
    if profile_port is not None:
        profile["port"] = profile_port
    return [
        trust_cert("partner_root", files.root_pem),
        profile,
        {"kind": "alias", "name": "partner",
         "connection": {"url_builder": True, "host": "localhost", "base_path": "/v2",
                        "protocol_profile": "partnerCA", **connection}},
    ]


def test_trust_only_profile_resolves_without_client_certificate(tmp_path: Path, pki_files: PkiFiles) -> None:
    registry = load(write_aliases(tmp_path, trust_only_records(pki_files, profile_port=9443)))
    resolved = registry.resolve("partner")
    assert resolved.profile is not None and resolved.profile.trust_only
    assert resolved.client_certificate is None and resolved.client_chain == ()
    assert resolved.ssl_context is not None
    assert "flowrun test root CA" in {v for c in resolved.ssl_context.get_ca_certs() for rdn in c["subject"]
                                      for k, v in rdn if k == "commonName"}
    # The port rule: a named profile's port applies, with or without mutual authentication.
    assert resolved.port == 9443
    assert resolved.base_url == "https://localhost:9443/v2"


def test_explicit_connection_port_beats_trust_only_profile_port(tmp_path: Path, pki_files: PkiFiles) -> None:
    registry = load(write_aliases(tmp_path, trust_only_records(pki_files, profile_port=9443)))
    assert registry.resolve("partner").port == 9443
    registry = load(write_aliases(tmp_path, trust_only_records(pki_files, profile_port=9443, port=8443)))
    assert registry.resolve("partner").port == 8443


def test_profile_with_keystore_still_requires_mutual_authentication(tmp_path: Path, pki_files: PkiFiles) -> None:
    records = trust_only_records(pki_files)
    records.insert(0, keystore("client_ks", pki_files.client.jks))
    records[2]["keystore"] = "client_ks"
    with pytest.raises(SchemaError) as caught:
        load(write_aliases(tmp_path, records))
    error = caught.value
    assert error.pointer == "/3/connection"
    assert "would not be sent" in error.message and "client_ks" in error.message
    assert '"mutual_authentication": true' in error.hint and "trust-only" in error.hint


def test_mutual_authentication_with_trust_only_profile_is_refused(tmp_path: Path, pki_files: PkiFiles) -> None:
    with pytest.raises(SchemaError) as caught:
        load(write_aliases(tmp_path, trust_only_records(pki_files, mutual_authentication=True)))
    assert "has no keystore" in caught.value.message
    assert "no client certificate would be sent" in caught.value.message
    assert '"keystore"' in caught.value.hint


def test_trust_only_profile_over_http_is_refused(tmp_path: Path, pki_files: PkiFiles) -> None:
    with pytest.raises(DefinitionError) as caught:
        load(write_aliases(tmp_path, trust_only_records(pki_files, protocol="http")))
    assert "needs https" in caught.value.message


def test_a_rest_step_trusts_a_partner_on_a_private_ca(tmp_path: Path, pki: Pki, pki_files: PkiFiles) -> None:
    with PartnerServer(pki, require_client_cert=False) as partner:
        registry = load(write_aliases(tmp_path, trust_only_records(pki_files, profile_port=partner.port)))
        with RestExecutor(registry) as rest:
            result = rest.run(RestStep(alias="partner", path="/accounts/7"))
        seen = partner.client_certs
    assert result.status == "passed", result.error
    assert result.body["account"] == "7"
    assert seen == []  # no client certificate went out


def test_async_rest_step_trusts_a_partner_on_a_private_ca(tmp_path: Path, pki: Pki, pki_files: PkiFiles) -> None:
    async def run() -> StepResult:
        async with AsyncRestExecutor(registry) as rest:
            return await rest.run(RestStep(alias="partner", path="/accounts/7"))

    with PartnerServer(pki, require_client_cert=False) as partner:
        registry = load(write_aliases(tmp_path, trust_only_records(pki_files, profile_port=partner.port)))
        result = asyncio.run(run())
    assert result.status == "passed", result.error


def test_without_the_profile_the_hint_names_a_trust_only_profile(tmp_path: Path, pki: Pki,
                                                                  pki_files: PkiFiles) -> None:
    with PartnerServer(pki, require_client_cert=False) as partner:
        records = [{"kind": "alias", "name": "partner",
                    "connection": {"url": f"https://localhost:{partner.port}/v2"}}]
        with RestExecutor(load(write_aliases(tmp_path, records))) as rest:
            result = rest.run(RestStep(alias="partner", path="/accounts/7"))
    assert result.error is not None and result.error.code == "tls.server_untrusted"
    # A hint the schema accepts: a profile without keystore, mutual authentication off.
    assert "without a keystore" in result.error.hint and "mutual_authentication stays off" in result.error.hint


def test_oauth_token_endpoint_on_a_private_ca(tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNER_OAUTH_SECRET", "demo-secret")
    with PartnerServer(pki, require_client_cert=False) as partner:
        records = trust_only_records(pki_files, profile_port=partner.port, credential="oauth")
        records.append({"kind": "credential", "name": "oauth", "type": "oauth2_client_credentials",
                        "token_url": f"{partner.url}/oauth/token", "client_id": "demo-client",
                        "client_secret": {"env": "PARTNER_OAUTH_SECRET"}})
        with RestExecutor(load(write_aliases(tmp_path, records))) as rest:
            result = rest.run(RestStep(alias="partner", path="/protected/accounts/3"))
        issued, seen = partner.tokens_issued, partner.client_certs
    assert result.status == "passed", result.error
    assert issued == 1 and seen == []


def test_alias_show_and_test_name_the_trust_only_profile(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         pki: Pki, pki_files: PkiFiles) -> None:
    with PartnerServer(pki, require_client_cert=False) as partner:
        directory = write_aliases(tmp_path, trust_only_records(pki_files, profile_port=partner.port))
        assert main(["alias", "show", "partner", "--aliases", str(directory)]) == 0
        shown = capsys.readouterr().out
        assert main(["alias", "show", "partner", "--aliases", str(directory), "--json"]) == 0
        view = json.loads(capsys.readouterr().out)
        assert main(["alias", "test", "partner", "--aliases", str(directory)]) == 0
        tested = capsys.readouterr().out
        assert main(["alias", "list", "--aliases", str(directory)]) == 0
        listed = capsys.readouterr().out
        port = partner.port
    assert re.search(r"mutual TLS +off \(no client certificate is sent\)", shown)
    assert f"trust-only protocol profile partnerCA (port {port})" in shown
    assert "(port" in shown and "from protocol profile partnerCA" in shown
    connection = view["connections"][0]
    assert connection["mutual_authentication"] is False
    assert connection["protocol_profile"]["trust_only"] is True
    assert connection["protocol_profile"]["keystore"] is None
    assert "configured  none (trust-only protocol profile partnerCA: no keystore)" in tested
    assert "ok: the TLS path works" in tested
    assert "off (trusts partnerCA)" in listed


def test_validate_accepts_a_trust_only_profile(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               pki_files: PkiFiles) -> None:
    directory = write_aliases(tmp_path / "aliases", trust_only_records(pki_files))
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "f", "steps": [
        {"id": "a", "type": "rest", "alias": "partner", "method": "GET", "path": "/x"}]}))
    code = main(["validate", str(flow), "--aliases", str(directory)])
    out = capsys.readouterr().out
    assert code == 0, out


def test_a_partner_that_wants_a_client_certificate_names_the_trust_only_profile(
        tmp_path: Path, pki: Pki, pki_files: PkiFiles) -> None:
    with PartnerServer(pki, tls_versions=("1.3",)) as partner:
        registry = load(write_aliases(tmp_path, trust_only_records(pki_files, profile_port=partner.port)))
        with RestExecutor(registry) as rest:
            result = rest.run(RestStep(alias="partner", path="/accounts/7"))
    assert result.error is not None and result.error.code == "tls.client_cert_not_sent"
    assert "'partnerCA' is trust-only" in result.error.hint and "add a keystore" in result.error.hint


def test_trust_only_contexts_are_cached_by_content(tmp_path: Path, pki_files: PkiFiles) -> None:
    records = trust_only_records(pki_files)
    records.append({"kind": "protocol_profile", "name": "sameCA", "trust_store_certs": ["partner_root"],
                    "use_system_trust": False})
    records.append({"kind": "alias", "name": "other",
                    "connection": {"url": "https://other.example/api", "protocol_profile": "sameCA"}})
    cache = TlsCache()
    registry = load(write_aliases(tmp_path, records), cache)
    first, second = registry.resolve("partner"), registry.resolve("other")
    # Two profiles with the same trust and settings: one context, no key material read.
    assert first.ssl_context is second.ssl_context
    assert cache.contexts.builds == 1
