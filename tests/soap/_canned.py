"""A partner that answers SOAP calls with canned reply envelopes, over mutual TLS on loopback.

``CannedSoapPartner`` wraps ``tests.transport._support.RawServer`` (real HTTP over real TLS,
client certificate required) with a handler that serves ``replies[path]``. It checks what a
real endpoint would: the method is POST, the request is a SOAP envelope of the same version as
the reply, and the Content-Type is that version's (text/xml for 1.1, application/soap+xml for
1.2). Anything else is answered 400/415 with a plain text reason, so a client that sends the
wrong thing fails loudly instead of getting the canned reply anyway.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

from lxml import etree

from flowrun.testing import Pki
from flowrun.testing._pki import certificates_pem, load_identity_into
from tests.transport._support import Action, RawRequest, RawServer, Reply

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
CONTENT_TYPES = {SOAP11: "text/xml; charset=utf-8", SOAP12: "application/soap+xml; charset=utf-8"}


def mtls_server_context(pki: Pki) -> ssl.SSLContext:
    """The partner's TLS side: its server certificate, client certificates from the PKI root required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_identity_into(context, pki.server)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=certificates_pem([pki.root.certificate]).decode())
    return context


def envelope_namespace(document: bytes) -> str | None:
    try:
        root = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return None
    qname = etree.QName(root)
    return qname.namespace if qname.localname == "Envelope" else None


class CannedSoapPartner(RawServer):
    """Serves ``replies`` (path -> reply envelope bytes) to POSTs; ``status`` per path defaults to 200."""

    def __init__(self, pki: Pki, replies: Mapping[str, bytes], *, status: Mapping[str, int] | None = None) -> None:
        self._replies = dict(replies)
        self._status = dict(status or {})
        super().__init__(self._answer, ssl_context=mtls_server_context(pki))

    def requests_to(self, path: str) -> list[RawRequest]:
        return [r for r in self.requests if r.target.split("?")[0] == path]

    def _answer(self, request: RawRequest) -> Action:
        path = request.target.split("?")[0]
        reply = self._replies.get(path)
        if reply is None:
            return _text(404, f"no canned reply for {path}")
        if request.method != "POST":
            return _text(405, "SOAP endpoints take POST")
        version = envelope_namespace(reply)
        if envelope_namespace(request.body) != version:
            return _text(400, f"expected a SOAP envelope in {version}")
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != CONTENT_TYPES[str(version)].split(";")[0]:
            return _text(415, f"Content-Type {content_type!r} is not SOAP {'1.1' if version == SOAP11 else '1.2'}'s")
        return Reply(self._status.get(path, 200), reply, (("Content-Type", CONTENT_TYPES[str(version)]),))


def _text(status: int, reason: str) -> Reply:
    return Reply(status, reason.encode(), (("Content-Type", "text/plain; charset=utf-8"),))
