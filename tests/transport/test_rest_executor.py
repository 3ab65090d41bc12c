"""RestExecutor against real loopback HTTPS servers that verify our client certificate."""

from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import json
import ssl
import tracemalloc
from pathlib import Path

import pytest

from flowrun._errors import (
    DataPillError,
    RedirectRefusedError,
    ResponseTooLargeError,
    ServerCertUntrustedError,
    UnexpectedStatusError,
)
from flowrun._models._aliases import Connection, Credential
from flowrun._models._secret import SecretRef
from flowrun._models._steps import Body, FilePart, ResponseSpec, RestStep
from flowrun._rest import AsyncRestExecutor, RestExecutor
from flowrun.testing import PartnerServer, Pki, PkiFiles
from tests.transport._support import RawRequest, RawServer, Reply, make_registry

PARTNER = "partner"


def only_request(server: RawServer) -> RawRequest:
    assert len(server.requests) == 1
    return server.requests[0]


def run(registry_url: str, pki_files: PkiFiles, step: RestStep, context: dict[str, object] | None = None,
        **registry_options: object):
    with RestExecutor(make_registry(pki_files, registry_url, **registry_options)) as rest:  # type: ignore[arg-type]
        return rest.run(step, context)


# --- exact requests --------------------------------------------------------------------------------


def test_json_body_is_sent_compact_with_its_type(tls_server_context: ssl.SSLContext, pki: Pki,
                                                  pki_files: PkiFiles) -> None:
    with RawServer(ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias=PARTNER, method="POST", path="/orders",
                                                       body=Body("json", {"b": 1, "a": ["x", None], "é": True})))
    assert result.status == "passed", result.error
    request = only_request(server)
    assert (request.method, request.target) == ("POST", "/orders")
    assert request.body == '{"b":1,"a":["x",null],"é":true}'.encode()
    assert request.header("Content-Type") == "application/json"
    assert request.header("Content-Length") == str(len(request.body))
    assert request.client_cert_sha256 == pki.client.sha256


def test_text_body_with_content_type(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    with RawServer(ssl_context=tls_server_context) as server:
        run(server.url(), pki_files, RestStep(alias=PARTNER, method="PUT", path="/note",
                                              body=Body("text", "Grüße\nline 2", content_type="text/csv")))
    request = only_request(server)
    assert request.method == "PUT"
    assert request.body == "Grüße\nline 2".encode()
    assert request.header("Content-Type") == "text/csv"


def test_text_body_defaults_to_utf8_plain_text(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    with RawServer(ssl_context=tls_server_context) as server:
        run(server.url(), pki_files, RestStep(alias=PARTNER, method="POST", body=Body("text", "hi")))
    assert only_request(server).header("Content-Type") == "text/plain; charset=utf-8"


def test_form_body_keeps_order_and_duplicates(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    form = [("b", "2"), ("a", "x y&z"), ("b", "3"), ("empty", "")]
    with RawServer(ssl_context=tls_server_context) as server:
        run(server.url(), pki_files, RestStep(alias=PARTNER, method="POST", path="/form", body=Body("form", form)))
    request = only_request(server)
    assert request.body == b"b=2&a=x%20y%26z&b=3&empty="
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"


def test_multipart_with_fields_and_a_file(tls_server_context: ssl.SSLContext, pki_files: PkiFiles,
                                          upload_file: Path) -> None:
    body = Body("multipart", {"title": "report", "tag": ["a", "b"]},
                files={"document": FilePart(upload_file, filename="report.bin", content_type="application/x-test")})
    with RawServer(ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias=PARTNER, method="POST", path="/upload", body=body))
    assert result.ok, result.error
    request = only_request(server)
    content_type = request.header("Content-Type") or ""
    assert content_type.startswith("multipart/form-data; boundary=")
    assert request.header("Content-Length") == str(len(request.body))
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body)
    parts = [(p.get_param("name", header="content-disposition"), p.get_filename(), p.get_content_type(),
              p.get_payload(decode=True)) for p in message.iter_parts()]
    assert parts == [
        ("title", None, "text/plain", b"report"),
        ("tag", None, "text/plain", b"a"),
        ("tag", None, "text/plain", b"b"),
        ("document", "report.bin", "application/x-test", upload_file.read_bytes()),
    ]


def test_file_upload_is_streamed_with_its_length(tls_server_context: ssl.SSLContext, pki_files: PkiFiles,
                                                 tmp_path: Path) -> None:
    size = 24 * 1024 * 1024
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        for index in range(size // 65536):
            handle.write(bytes([index % 251]) * 65536)
    import hashlib

    expected = hashlib.sha256(big.read_bytes()).hexdigest()
    step = RestStep(alias=PARTNER, method="PUT", path="/blob", body=Body("file", big, content_type="application/zip"))
    with RawServer(ssl_context=tls_server_context, keep_bodies=False) as server:
        registry = make_registry(pki_files, server.url())
        with RestExecutor(registry) as rest:
            rest.run(RestStep(alias=PARTNER, path="/warm-up"))  # resolve the alias, load the keystore
            tracemalloc.start()
            try:
                result = rest.run(step)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert result.ok, result.error
    request = server.requests[-1]
    assert (request.body_size, request.body_sha256) == (size, expected)
    assert request.header("Content-Length") == str(size)
    assert request.header("Transfer-Encoding") is None
    assert request.header("Content-Type") == "application/zip"
    # Streamed: far less memory than the file (the server thread only hashes what it reads).
    assert peak < size // 4


def test_query_keeps_order_duplicates_and_encodes(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    step = RestStep(alias=PARTNER, path="/search?fixed=1",
                    query=[("b", "2"), ("a", "x y"), ("b", "3"), ("amp", "p&q=r"), ("skip", None), ("on", True)])
    with RawServer(ssl_context=tls_server_context) as server:
        run(server.url(), pki_files, step)
    assert only_request(server).target == "/search?fixed=1&b=2&a=x%20y&b=3&amp=p%26q%3Dr&on=true"


def test_query_object_with_list_repeats_the_key(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    with RawServer(ssl_context=tls_server_context) as server:
        run(server.url(), pki_files, RestStep(alias=PARTNER, path="/s", query={"tag": ["a", "b"], "n": 1}))
    assert only_request(server).target == "/s?tag=a&tag=b&n=1"


def test_headers_keep_order_and_duplicates_after_connection_headers(tls_server_context: ssl.SSLContext,
                                                                     pki_files: PkiFiles) -> None:
    step = RestStep(alias=PARTNER, headers=[("X-B", "1"), ("X-A", "2"), ("X-B", "3"), ("Accept", "text/csv")])
    with RawServer(ssl_context=tls_server_context) as server:
        run(server.url(), pki_files, step, headers={"X-Tenant": "acme"})
    sent = [(k, v) for k, v in only_request(server).headers if k.startswith("X-") or k == "Accept"]
    assert sent == [("X-Tenant", "acme"), ("X-B", "1"), ("X-A", "2"), ("X-B", "3"), ("Accept", "text/csv")]


def test_path_joins_base_path_and_encodes_pill_values_as_one_segment(tls_server_context: ssl.SSLContext,
                                                                      pki_files: PkiFiles) -> None:
    step = RestStep(alias=PARTNER, path="/accounts/{{ inputs.id }}/notes;v=1/{{ inputs.n }}",
                    query={"q": "{{ inputs.q }}"})
    context = {"inputs": {"id": "a/b c?d#e%", "n": 7, "q": "x&y"}}
    with RawServer(ssl_context=tls_server_context) as server:
        result = run(server.url() + "/v2/", pki_files, step, context)
    assert result.ok, result.error
    assert only_request(server).target == "/v2/accounts/a%2Fb%20c%3Fd%23e%25/notes;v=1/7?q=x%26y"
    assert result.request is not None
    assert result.request.url == f"{server.url()}/v2/accounts/a%2Fb%20c%3Fd%23e%25/notes;v=1/7?q=x%26y"


def test_pills_render_headers_and_body(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    step = RestStep(alias=PARTNER, method="POST", headers={"X-Id": "id-{{ inputs.id }}"},
                    body=Body("json", {"amount": "{{ inputs.amount }}", "note": "for {{ inputs.id }}"}))
    with RawServer(ssl_context=tls_server_context) as server:
        run(server.url(), pki_files, step, {"inputs": {"id": 7, "amount": 12.5}})
    request = only_request(server)
    assert request.header("X-Id") == "id-7"
    assert json.loads(request.body) == {"amount": 12.5, "note": "for 7"}


def test_missing_pill_fails_the_step_before_sending(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    with RawServer(ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(id="get", alias=PARTNER, path="/a/{{ inputs.nope }}"),
                     {"inputs": {"id": 1}})
    assert result.status == "failed"
    assert isinstance(result.error, DataPillError)
    assert result.error.step == "get"
    assert server.requests == []
    with pytest.raises(DataPillError):
        result.raise_for_failure()


# --- responses ---------------------------------------------------------------------------------------


def test_outputs_from_json_body_headers_and_status(partner: PartnerServer, pki_files: PkiFiles, pki: Pki) -> None:
    step = RestStep(alias=PARTNER, path="/accounts/7", query={"currency": "CHF"},
                    response=ResponseSpec(expect_status=(200,), outputs={
                        "balance": "body.balance", "currency": "body.currency", "type": 'headers."content-type"',
                        "status": "status"}),
                    assertions=({"that": "outputs.balance", "gt": 0}, {"that": "status", "equals": 200}))
    result = run(partner.url, pki_files, step)
    assert result.status == "passed", result.error
    assert result.outputs == {"balance": 1234.5, "currency": "CHF", "type": "application/json", "status": 200}
    assert result.body == {"account": "7", "balance": 1234.5, "currency": "CHF"}
    assert [a.passed for a in result.assertions] == [True, True]
    assert result.tls is not None
    assert result.tls.version in ("TLSv1.2", "TLSv1.3")
    assert result.tls.cipher
    assert result.tls.client_cert_sha256 == pki.client.sha256
    assert [a.status for a in result.attempts] == [200]


def test_xml_body_outputs_with_xpath_and_jmespath(partner: PartnerServer, pki_files: PkiFiles) -> None:
    step = RestStep(alias=PARTNER, path="/xml", query={"account": "42"},
                    response=ResponseSpec(namespaces={"a": "urn:flowrun:accounts:1"}, outputs={
                        "balance": "xpath: /a:account/a:balance", "currency": "xpath:/a:account/a:balance/@currency",
                        "owner": "body.account.owner.name"}))
    result = run(partner.url, pki_files, step)
    assert result.status == "passed", result.error
    assert result.outputs == {"balance": "1234.50", "currency": "EUR", "owner": "Demo Customer"}


def test_failing_assertion_fails_the_step(partner: PartnerServer, pki_files: PkiFiles) -> None:
    step = RestStep(alias=PARTNER, path="/accounts/7", response=ResponseSpec(outputs={"balance": "body.balance"}),
                    assertions=({"that": "outputs.balance", "lt": 0},))
    result = run(partner.url, pki_files, step)
    assert result.status == "failed"
    assert result.error is not None and result.error.code == "assertion"
    assert result.assertions[0].passed is False


def test_unexpected_status_carries_status_excerpt_and_content_type(partner: PartnerServer,
                                                                   pki_files: PkiFiles) -> None:
    result = run(partner.url, pki_files, RestStep(alias=PARTNER, path="/accounts/0"))
    assert result.status == "failed"
    error = result.error
    assert isinstance(error, UnexpectedStatusError)
    assert error.status == 404 and result.http_status == 404
    assert error.content_type == "application/json"
    assert error.body_excerpt is not None and "account_not_found" in error.body_excerpt
    assert "404" in str(error) and "account_not_found" in str(error)
    assert error.to_dict()["http_status"] == 404


def test_expect_status_accepts_listed_statuses(partner: PartnerServer, pki_files: PkiFiles) -> None:
    step = RestStep(alias=PARTNER, path="/status/404", response=ResponseSpec(expect_status=(404,)))
    assert run(partner.url, pki_files, step).status == "passed"


def test_long_error_body_is_cut_to_an_excerpt(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    with RawServer(lambda r: Reply(500, b"x" * 5000, (("Content-Type", "text/plain"),)),
                   ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias=PARTNER))
    assert isinstance(result.error, UnexpectedStatusError)
    assert result.error.body_excerpt == "x" * 500


def test_huge_streamed_body_is_refused_without_reading_it_all(partner: PartnerServer, pki_files: PkiFiles) -> None:
    step = RestStep(alias=PARTNER, path="/large", query={"bytes": 50 * 1024 * 1024},
                    response=ResponseSpec(max_bytes=256 * 1024))
    result = run(partner.url, pki_files, step)
    assert isinstance(result.error, ResponseTooLargeError)
    assert "262144" in str(result.error)
    assert len(result.attempts) == 1


def test_announced_length_over_the_cap_is_refused(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    with RawServer(lambda r: Reply(200, b"y" * 4096), ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias=PARTNER, response=ResponseSpec(max_bytes=4095)))
    assert isinstance(result.error, ResponseTooLargeError)
    assert "4096" in str(result.error)


def test_save_to_streams_the_body_to_a_file(partner: PartnerServer, pki_files: PkiFiles, tmp_path: Path) -> None:
    target = tmp_path / "out" / "large.bin"
    size = 3 * 1024 * 1024 + 17
    step = RestStep(alias=PARTNER, path="/large", query={"bytes": size},
                    response=ResponseSpec(save_to=target, max_bytes=1024,
                                          outputs={"saved": "body.saved_to", "size": "body.bytes"}))
    result = run(partner.url, pki_files, step)
    assert result.status == "passed", result.error
    assert target.stat().st_size == size
    assert target.read_bytes()[:16] == b"flowrun-partner-"
    assert result.outputs == {"saved": str(target), "size": size}
    assert [p.name for p in target.parent.iterdir()] == ["large.bin"]


def test_save_to_keeps_the_old_file_when_the_status_is_unexpected(partner: PartnerServer, pki_files: PkiFiles,
                                                                  tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("previous")
    step = RestStep(alias=PARTNER, path="/accounts/0", response=ResponseSpec(save_to=target))
    result = run(partner.url, pki_files, step)
    assert isinstance(result.error, UnexpectedStatusError)
    assert "account_not_found" in (result.error.body_excerpt or "")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_parse_modes(partner: PartnerServer, pki_files: PkiFiles) -> None:
    with RestExecutor(make_registry(pki_files, partner.url)) as rest:
        text = rest.run(RestStep(alias=PARTNER, path="/accounts/7", response=ResponseSpec(parse="text")))
        binary = rest.run(RestStep(alias=PARTNER, path="/accounts/7", response=ResponseSpec(parse="binary")))
        empty = rest.run(RestStep(alias=PARTNER, path="/status/204"))
    assert isinstance(text.body, str) and json.loads(text.body)["account"] == "7"
    assert isinstance(binary.body, bytes) and json.loads(binary.body)["account"] == "7"
    assert empty.status == "passed" and empty.body is None


def test_invalid_json_is_a_parse_error(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    with RawServer(lambda r: Reply(200, b"{not json"), ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias=PARTNER))
    assert result.error is not None and result.error.code == "http.response_parse"


# --- redirects ---------------------------------------------------------------------------------------


@pytest.fixture
def open_partner(pki: Pki) -> PartnerServer:
    """A partner that asks for a client certificate but also serves clients without one."""
    with PartnerServer(pki, require_client_cert=False) as server:
        yield server


def test_redirects_are_not_followed_by_default(partner: PartnerServer, pki_files: PkiFiles) -> None:
    result = run(partner.url, pki_files, RestStep(alias=PARTNER, path="/redirect", query={"to": "/echo"},
                                                  response=ResponseSpec(expect_status=(302,))))
    assert result.status == "passed" and result.http_status == 302
    assert len(partner.requests) == 1


def test_same_origin_redirect_keeps_credentials_and_client_cert(open_partner: PartnerServer, pki_files: PkiFiles,
                                                                 pki: Pki) -> None:
    bearer = Credential("token", "bearer", token=SecretRef(literal="sekret-token"))
    step = RestStep(alias=PARTNER, path="/redirect", query={"to": "/echo", "status": 307}, follow_redirects=True)
    result = run(open_partner.url, pki_files, step, credentials=[bearer], credential="token")
    assert result.status == "passed", result.error
    echo = result.body
    assert echo["path"] == "/echo"
    assert ["Authorization", "Bearer sekret-token"] in echo["headers"]
    assert echo["client_cert_sha256"] == pki.client.sha256


def test_cross_origin_redirect_drops_credentials_and_client_cert(open_partner: PartnerServer,
                                                                  pki_files: PkiFiles) -> None:
    key = Credential("key", "api_key", header="X-Partner-Key", key=SecretRef(literal="sekret-key"))
    other_origin = f"https://127.0.0.1:{open_partner.port}/echo"
    step = RestStep(alias=PARTNER, path="/redirect", query={"to": other_origin},
                    headers={"Cookie": "session=1", "X-Trace": "t1"}, follow_redirects=True)
    result = run(open_partner.url, pki_files, step, credentials=[key], credential="key")
    assert result.status == "passed", result.error
    first, second = open_partner.requests
    assert first.header("X-Partner-Key") == "sekret-key" and first.client_cert_sha256 is not None
    assert second.path == "/echo"
    assert second.header("X-Partner-Key") is None
    assert second.header("Cookie") is None
    assert second.header("Authorization") is None
    assert second.header("X-Trace") == "t1"
    assert second.client_cert_sha256 is None
    assert result.tls is not None and result.tls.client_cert_sha256 is None


def test_redirect_from_https_to_http_is_refused(partner: PartnerServer, pki_files: PkiFiles) -> None:
    with RawServer() as plain:
        step = RestStep(alias=PARTNER, path="/redirect", query={"to": f"{plain.url()}/x"}, follow_redirects=True)
        result = run(partner.url, pki_files, step)
    assert isinstance(result.error, RedirectRefusedError)
    assert "https to http" in str(result.error)
    assert plain.requests == []


def test_too_many_redirects(tls_server_context: ssl.SSLContext, pki_files: PkiFiles) -> None:
    def loop(request: RawRequest) -> Reply:
        return Reply(302, b"", (("Location", "/again"),))

    with RawServer(loop, ssl_context=tls_server_context) as server:
        step = RestStep(alias=PARTNER, path="/start", follow_redirects=True, max_redirects=3)
        result = run(server.url(), pki_files, step)
    assert isinstance(result.error, RedirectRefusedError)
    assert "more than 3 redirects" in str(result.error)
    assert [r.target for r in server.requests] == ["/start", "/again", "/again", "/again"]


def test_303_turns_a_post_into_a_get_without_body(partner: PartnerServer, pki_files: PkiFiles) -> None:
    step = RestStep(alias=PARTNER, method="POST", path="/redirect", query={"to": "/echo", "status": 303},
                    body=Body("json", {"a": 1}), follow_redirects=True)
    result = run(partner.url, pki_files, step)
    assert result.status == "passed", result.error
    assert result.body["method"] == "GET" and result.body["body_text"] == ""
    assert result.body["content_type"] is None


# --- connections ---------------------------------------------------------------------------------------


def test_keep_alive_one_handshake_for_sequential_calls(partner: PartnerServer, pki_files: PkiFiles) -> None:
    with RestExecutor(make_registry(pki_files, partner.url)) as rest:
        results = [rest.run(RestStep(alias=PARTNER, path=f"/accounts/{n}")) for n in range(1, 8)]
    assert all(r.ok for r in results)
    assert partner.handshakes == 1
    assert len(partner.requests) == 7


def test_async_executor_runs_50_requests_concurrently(partner: PartnerServer, pki_files: PkiFiles,
                                                       pki: Pki) -> None:
    async def main() -> list:
        async with AsyncRestExecutor(make_registry(pki_files, partner.url)) as rest:
            spec = ResponseSpec(outputs={"a": "body.account"})
            steps = [RestStep(alias=PARTNER, path=f"/accounts/{n}", response=spec) for n in range(1, 51)]
            return await asyncio.gather(*(rest.run(step) for step in steps))

    results = asyncio.run(main())
    assert [r.outputs["a"] for r in results] == [str(n) for n in range(1, 51)]
    assert all(r.tls is not None and r.tls.client_cert_sha256 == pki.client.sha256 for r in results)
    assert len(partner.requests) == 50
    # Concurrency opens several connections, but far fewer than one per request is not guaranteed;
    # every connection presented our certificate.
    assert set(partner.client_certs) == {pki.client.sha256}


def test_async_executor_sends_bodies(tls_server_context: ssl.SSLContext, pki_files: PkiFiles,
                                     upload_file: Path) -> None:
    async def main(url: str) -> None:
        async with AsyncRestExecutor(make_registry(pki_files, url)) as rest:
            for step in (RestStep(alias=PARTNER, method="PUT", body=Body("file", upload_file)),
                         RestStep(alias=PARTNER, method="POST", body=Body("multipart", {"a": "1"},
                                                                          files={"f": FilePart(upload_file)}))):
                (await rest.run(step)).raise_for_failure()

    with RawServer(ssl_context=tls_server_context) as server:
        asyncio.run(main(server.url()))
    file_request, multipart_request = server.requests
    assert file_request.body == upload_file.read_bytes()
    assert file_request.header("Content-Length") == str(upload_file.stat().st_size)
    assert upload_file.read_bytes() in multipart_request.body


def test_inline_connection_without_registry(pki_files: PkiFiles) -> None:
    with RawServer(lambda r: Reply(200, b'{"n": 1}')) as server, RestExecutor() as rest:
        result = rest.run(RestStep(connection=Connection(url=server.url() + "/base"), path="/x",
                                   response=ResponseSpec(outputs={"n": "body.n"})))
    assert result.outputs == {"n": 1}
    assert server.requests[0].target == "/base/x"
    assert result.tls is None


def test_inline_connection_uses_default_trust_only(partner: PartnerServer) -> None:
    with RestExecutor() as rest:
        result = rest.run(RestStep(connection=Connection(url=partner.url)))
    assert isinstance(result.error, ServerCertUntrustedError)


def test_closed_executor_refuses_new_connections(partner: PartnerServer, pki_files: PkiFiles) -> None:
    rest = RestExecutor(make_registry(pki_files, partner.url))
    rest.close()
    with pytest.raises(RuntimeError, match="closed"):
        rest.run(RestStep(alias=PARTNER))


# --- secrets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("credential", [
    Credential("c", "basic", username="svc", password=SecretRef(literal="pa55-word-secret")),
    Credential("c", "bearer", token=SecretRef(literal="pa55-word-secret")),
    Credential("c", "api_key", header="X-Api-Key", key=SecretRef(literal="pa55-word-secret")),
    Credential("c", "api_key", header="X-Custom-Key", prefix="Key", key=SecretRef(literal="pa55-word-secret")),
])
def test_secrets_are_redacted_in_results_and_reprs(partner: PartnerServer, pki_files: PkiFiles,
                                                    credential: Credential) -> None:
    step = RestStep(alias=PARTNER, path="/status/503", headers={"X-Auth-Token": "step-token-secret"})
    result = run(partner.url, pki_files, step, credentials=[credential], credential="c")
    assert isinstance(result.error, UnexpectedStatusError)
    sent = partner.requests[0]
    header = credential.header or "Authorization"
    value = sent.header(header) or ""
    if credential.type == "basic":
        value = base64.b64decode(value.removeprefix("Basic ")).decode()
    assert value.endswith("pa55-word-secret")  # it was sent...
    assert sent.header("X-Auth-Token") == "step-token-secret"
    shown = [repr(result), json.dumps(result.to_dict(), default=str), str(result.error),
             json.dumps(result.request.to_dict() if result.request else {})]
    for text in shown:  # ...and is shown nowhere
        assert "pa55-word-secret" not in text
        assert base64.b64encode(b"svc:pa55-word-secret").decode() not in text
        assert "step-token-secret" not in text
    assert result.request is not None
    assert (header, "***") in result.request.headers
    assert ("X-Auth-Token", "***") in result.request.headers


def test_reprs_hide_response_cookies_and_echoed_bodies(tls_server_context: ssl.SSLContext,
                                                       pki_files: PkiFiles) -> None:
    reply = Reply(200, b'{"echo": "Bearer echoed-secret"}',
                  (("Content-Type", "application/json"), ("Set-Cookie", "session=cookie-secret")))
    with RawServer(lambda r: reply, ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias=PARTNER))
    assert result.body == {"echo": "Bearer echoed-secret"}
    assert ("Set-Cookie", "session=cookie-secret") in result.headers
    text = repr(result)
    assert "cookie-secret" not in text and "echoed-secret" not in text
    assert "'Set-Cookie', '***'" in text
    assert "cookie-secret" not in json.dumps(result.to_dict(include_body=False))


def test_a_pill_without_context_is_an_error_not_literal_text(tls_server_context: ssl.SSLContext,
                                                             pki_files: PkiFiles) -> None:
    with RawServer(ssl_context=tls_server_context) as server:
        result = run(server.url(), pki_files, RestStep(alias=PARTNER, headers={"X-Id": "{{ inputs.id }}"}))
    assert isinstance(result.error, DataPillError)
    assert server.requests == []


def test_without_a_registry_aliases_come_from_flowrun_aliases(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with RawServer(lambda r: Reply(200, b'{"v": 2}')) as server:
        (tmp_path / "plain.json").write_text(json.dumps(
            {"kind": "alias", "name": "plain", "connection": {"url": server.url() + "/api"}}))
        monkeypatch.setenv("FLOWRUN_ALIASES", str(tmp_path))
        with RestExecutor() as rest:
            result = rest.run(RestStep(alias="plain", path="/v", response=ResponseSpec(outputs={"v": "body.v"})))
    assert result.outputs == {"v": 2}
    assert server.requests[0].target == "/api/v"


def test_unknown_alias_is_a_failed_result(partner: PartnerServer, pki_files: PkiFiles) -> None:
    result = run(partner.url, pki_files, RestStep(alias="partnr"))
    assert result.error is not None and result.error.code == "definition.unknown_reference"
    assert "did you mean 'partner'" in str(result.error)


def test_async_cross_origin_redirect_and_tls_failure(open_partner: PartnerServer, pki_files: PkiFiles,
                                                     pki: Pki) -> None:
    bearer = Credential("token", "bearer", token=SecretRef(literal="sekret-token"))
    other_origin = f"https://127.0.0.1:{open_partner.port}/echo"

    async def main() -> tuple:
        registry = make_registry(pki_files, open_partner.url, credentials=[bearer], credential="token")
        async with AsyncRestExecutor(registry) as rest:
            same = await rest.run(RestStep(alias=PARTNER, path="/redirect", query={"to": "/echo"},
                                           follow_redirects=True))
            other = await rest.run(RestStep(alias=PARTNER, path="/redirect", query={"to": other_origin},
                                            follow_redirects=True))
        untrusted = make_registry(pki_files, open_partner.url, trust=[pki_files.other_ca_pem])
        async with AsyncRestExecutor(untrusted) as rest:
            failed = await rest.run(RestStep(alias=PARTNER))
        return same, other, failed

    same, other, failed = asyncio.run(main())
    assert ["Authorization", "Bearer sekret-token"] in same.body["headers"]
    assert same.body["client_cert_sha256"] == pki.client.sha256
    assert not any(name == "Authorization" for name, _ in other.body["headers"])
    assert other.body["client_cert_sha256"] is None
    assert isinstance(failed.error, ServerCertUntrustedError)


def test_connect_to_dials_another_address_keeping_host_and_sni(partner: PartnerServer, pki_files: PkiFiles,
                                                               pki: Pki) -> None:
    dial = {("localhost", 1): ("127.0.0.1", partner.port)}
    registry = make_registry(pki_files, "https://localhost:1/v2", connect_to=dial)
    with RestExecutor(registry) as rest:
        result = rest.run(RestStep(alias=PARTNER, path="/echo"))
    assert result.status == "passed", result.error
    assert result.body["path"] == "/v2/echo"
    assert ["Host", "localhost:1"] in result.body["headers"]
    assert result.tls is not None and result.tls.client_cert_sha256 == pki.client.sha256


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_cookie_the_partner_sets_is_kept_as_before(tls_server_context: ssl.SSLContext, pki_files: PkiFiles,
                                                     asynchronous: bool) -> None:
    # The client's jar reads only responses that set a cookie; one that does still counts.
    def handler(request: RawRequest) -> Reply:
        if request.target == "/login":
            return Reply(200, b"{}", (("Content-Type", "application/json"), ("Set-Cookie", "session=s1; Path=/")))
        return Reply(200, json.dumps({"cookie": request.header("Cookie")}).encode())

    steps = [RestStep(alias=PARTNER, path=path) for path in ("/plain", "/login", "/after")]
    with RawServer(handler, ssl_context=tls_server_context) as server:
        registry = make_registry(pki_files, server.url())
        if asynchronous:
            async def main() -> list:
                async with AsyncRestExecutor(registry) as rest:
                    return [await rest.run(step) for step in steps]

            results = asyncio.run(main())
        else:
            with RestExecutor(registry) as rest:
                results = [rest.run(step) for step in steps]
    assert [r.body["cookie"] for r in (results[0], results[2])] == [None, "session=s1"]
