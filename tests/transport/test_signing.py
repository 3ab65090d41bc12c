"""Request signing against a partner that verifies it: HMAC recomputed from the request as
received, AWS SigV4 recomputed by botocore; a retried request is signed again with a new date."""

from __future__ import annotations

import asyncio
import base64
import builtins
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from flowrun._errors import MissingExtraError, SecretFormatError
from flowrun._models._aliases import NO_RETRY, Credential, RetryPolicy
from flowrun._models._secret import SecretRef
from flowrun._models._steps import Body, RestStep
from flowrun._rest import AsyncRestExecutor, RestExecutor
from flowrun.testing import Pki, PkiFiles
from tests.transport import _auth_partner as p
from tests.transport._support import RawServer, make_registry
from tests.transport.conftest import server_context

# A second passes between attempts: each attempt's date differs (dates have second resolution).
RETRY = RetryPolicy(strategy="fixed", count=2, interval_s=1.0, jitter=False, retry_non_idempotent=True)


@pytest.fixture
def partner(pki: Pki) -> Iterator[tuple[p.AuthPartner, RawServer]]:
    auth = p.AuthPartner(pki.client.certificate, client_cert_sha256=pki.client.sha256)
    with RawServer(auth, ssl_context=server_context(pki)) as server:
        auth.port = server.port
        yield auth, server


def hmac_credential(key: str = p.HMAC_KEY) -> Credential:
    return Credential("signed", "hmac", key=SecretRef(literal=key), key_id=p.HMAC_KEY_ID, header="X-Signature",
                      header_format='keyId="{key_id}",sig="{signature}"', date_header="X-Date",
                      date_format="iso8601",
                      canonical="{method}\n{path}\n{query}\n{date}\n{body_hash}\n{header.Content-Type}")


def sigv4_credential() -> Credential:
    return Credential("aws", "aws_sigv4", service=p.AWS_SERVICE, region=p.AWS_REGION,
                      access_key_id=SecretRef(literal=p.AWS_ACCESS_KEY),
                      secret_access_key=SecretRef(literal=p.AWS_SECRET_KEY),
                      session_token=SecretRef(literal=p.AWS_SESSION_TOKEN))


def run(pki_files: PkiFiles, server: RawServer, credential: Credential, step: RestStep,
        retry: RetryPolicy = NO_RETRY) -> Any:
    registry = make_registry(pki_files, server.url(), credentials=[credential], credential=credential.name,
                             retry=retry, headers={"X-Partner": "acme"})
    with RestExecutor(registry) as rest:
        return rest.run(step), rest.secrets


@pytest.mark.parametrize("kind", ["hmac", "sigv4"])
def test_signed_post_with_query_and_body_is_accepted(partner: tuple[p.AuthPartner, RawServer],
                                                     pki_files: PkiFiles, kind: str) -> None:
    auth, server = partner
    credential = hmac_credential() if kind == "hmac" else sigv4_credential()
    step = RestStep(alias="partner", method="POST", path=f"/{kind}/payments", query={"a": "1 2", "b": "x/y"},
                    body=Body("json", {"amount": 10}))
    result, secrets = run(pki_files, server, credential, step)
    assert result.status == "passed", (result.error, auth.verdicts)
    assert auth.verdicts == [(f"/{kind}/payments", "ok")]
    masked = secrets.mask(" ".join(server.requests[0].header(h) or "" for h in
                                   ("X-Signature", "Authorization", "X-Amz-Security-Token")))
    assert p.AWS_SESSION_TOKEN not in masked and "sig=" not in masked and "Signature=" not in masked


@pytest.mark.parametrize("kind", ["hmac", "sigv4"])
def test_a_wrong_key_is_refused_by_the_partner(partner: tuple[p.AuthPartner, RawServer], pki_files: PkiFiles,
                                               kind: str) -> None:
    auth, server = partner
    credential = (hmac_credential("not-the-key-1") if kind == "hmac" else
                  Credential("aws", "aws_sigv4", service=p.AWS_SERVICE, region=p.AWS_REGION,
                             access_key_id=SecretRef(literal=p.AWS_ACCESS_KEY),
                             secret_access_key=SecretRef(literal="not-the-secret-key"),
                             session_token=SecretRef(literal=p.AWS_SESSION_TOKEN)))
    result, _ = run(pki_files, server, credential, RestStep(alias="partner", path=f"/{kind}/x"))
    assert result.status == "failed"
    assert auth.verdicts == [(f"/{kind}/x", "bad signature")]


@pytest.mark.parametrize("kind", ["hmac", "sigv4"])
def test_a_retried_request_is_signed_again_with_a_fresh_date(partner: tuple[p.AuthPartner, RawServer],
                                                             pki_files: PkiFiles, kind: str) -> None:
    auth, server = partner
    credential = hmac_credential() if kind == "hmac" else sigv4_credential()
    step = RestStep(alias="partner", method="PUT", path=f"/{kind}/retried", query={"flaky": 1},
                    body=Body("json", {"n": 1}))
    result, _ = run(pki_files, server, credential, step, retry=RETRY)
    assert result.status == "passed", result.error
    assert [v for _, v in auth.verdicts] == ["503 after good signature", "ok"]
    first, second = auth.dates
    assert first != second  # re-signed, not the first attempt's signature sent again
    signatures = [r.header("X-Signature" if kind == "hmac" else "Authorization") for r in server.requests]
    assert signatures[0] != signatures[1]


def test_async_executor_signs_each_request(partner: tuple[p.AuthPartner, RawServer], pki_files: PkiFiles) -> None:
    auth, server = partner
    registry = make_registry(pki_files, server.url(), credentials=[sigv4_credential()], credential="aws")

    async def go() -> list[str]:
        async with AsyncRestExecutor(registry) as rest:
            return [(await rest.run(RestStep(alias="partner", path=f"/sigv4/{n}"))).status for n in range(3)]

    assert asyncio.run(go()) == ["passed"] * 3
    assert [v for _, v in auth.verdicts] == ["ok"] * 3


def test_sigv4_without_botocore_names_the_extra(monkeypatch: pytest.MonkeyPatch, pki_files: PkiFiles) -> None:
    real_import = builtins.__import__

    def no_botocore(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("botocore"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_botocore)
    registry = make_registry(pki_files, "https://localhost:1", credentials=[sigv4_credential()], credential="aws")
    with RestExecutor(registry) as rest:
        result = rest.run(RestStep(alias="partner", path="/x"))
    assert isinstance(result.error, MissingExtraError)
    assert result.error.code == "definition.missing_extra"
    assert "needs botocore" in result.error.message
    assert result.error.hint == "install the extra: pip install 'flowrun[aws]'"


@pytest.mark.parametrize("kind", ["hmac", "sigv4"])
def test_a_streamed_file_body_is_hashed_and_signed(partner: tuple[p.AuthPartner, RawServer], pki_files: PkiFiles,
                                                   upload_file: Any, kind: str) -> None:
    auth, server = partner
    credential = hmac_credential() if kind == "hmac" else sigv4_credential()
    step = RestStep(alias="partner", method="PUT", path=f"/{kind}/upload", query={"flaky": 1},
                    body=Body("file", upload_file, content_type="application/octet-stream"))
    result, _ = run(pki_files, server, credential, step, retry=RETRY)
    assert result.status == "passed", (result.error, auth.verdicts)
    assert [v for _, v in auth.verdicts] == ["503 after good signature", "ok"]
    assert all(r.body == upload_file.read_bytes() for r in server.requests)


@pytest.mark.parametrize(("encoding", "written"), [("base64", base64.b64encode(p.HMAC_KEY.encode()).decode()),
                                                  ("hex", p.HMAC_KEY.encode().hex())])
def test_hmac_key_given_as_base64_or_hex(partner: tuple[p.AuthPartner, RawServer], pki_files: PkiFiles,
                                         encoding: str, written: str) -> None:
    auth, server = partner
    credential = attrs.evolve(hmac_credential(written), key_encoding=encoding)
    result, _ = run(pki_files, server, credential, RestStep(alias="partner", path="/hmac/x"))
    assert result.status == "passed", result.error
    assert auth.verdicts == [("/hmac/x", "ok")]


def test_hmac_key_that_does_not_decode_is_named_not_shown(pki_files: PkiFiles,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNER_HMAC", "not base64 at all!")
    credential = attrs.evolve(hmac_credential(), key=SecretRef(env="PARTNER_HMAC"), key_encoding="base64")
    registry = make_registry(pki_files, "https://localhost:1", credentials=[credential], credential="signed")
    with RestExecutor(registry) as rest:
        result = rest.run(RestStep(alias="partner", path="/x"))
    assert isinstance(result.error, SecretFormatError)
    assert result.error.message == ("hmac credential 'signed': the key from environment variable PARTNER_HMAC "
                                    "is not base64")
    assert "not base64 at all!" not in repr(result)
