"""The origin rule: which host may receive an alias's credential and client certificate.

An origin is (scheme, host, port), the port filled in from the scheme. Everything flowrun fetches
for a step besides the step request itself (a WSDL and the schemas it imports, a redirect's
target, an OAuth2 token) goes to some origin, and ``OriginRule.trusts`` decides how:

* the alias's own origin, and the origins its connection lists in ``trusted_origins``, get the
  request through the alias's client: its credential and its client certificate;
* any other origin gets a client that trusts what the alias trusts but holds no client
  certificate, and the request carries no credential and no credential-bearing header.

A credential never travels over plain http: a connection on ``http`` with a ``basic``,
``bearer``, ``api_key`` or ``oauth2_client_credentials`` credential, a ``token_url`` on
``http`` and an ``http`` entry in ``trusted_origins`` are refused when the aliases load
(``credential_over_http``, ``SchemaError``). So a trusted origin is always https, and every
request that carries a credential is encrypted.

A ``token_url`` is named by the credential record itself: the client id and secret go there
(over https only). Our client certificate goes with them only when the token endpoint is the
alias's own origin or is listed in ``trusted_origins`` (certificate-bound tokens, RFC 8705, on
a separate identity host).

The decision is a tuple comparison made when a client is chosen, never per byte sent.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs

from flowrun._models._record import ValueRecord

WebOrigin = tuple[str, str, int]
DEFAULT_PORTS = {"https": 443, "http": 80}
# Credential types whose secret is on the wire in every request (or in the token request).
WIRE_CREDENTIALS = frozenset({"basic", "bearer", "api_key", "oauth2_client_credentials", "wsse_username_token",
                              "oauth2_private_key_jwt", "oauth2_jwt_bearer", "oauth2_password", "hmac",
                              "aws_sigv4"})


def web_origin(url: str) -> WebOrigin | None:
    """(scheme, host, port) of an http(s) URL; None for anything else or a URL that does not parse."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            return None
        return scheme, parts.hostname.lower(), parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return None


def origin_text(origin: WebOrigin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


@attrs.frozen(eq=False, repr=False)
class OriginRule(ValueRecord):
    """The origins that may receive an alias's credential and client certificate."""

    home: WebOrigin
    trusted: frozenset[WebOrigin] = frozenset()

    def trusts(self, origin: WebOrigin | None) -> bool:
        return origin is not None and (origin == self.home or origin in self.trusted)

    def trusts_url(self, url: str) -> bool:
        return self.trusts(web_origin(url))

    def describe(self) -> str:
        return ", ".join(origin_text(o) for o in (self.home, *sorted(self.trusted)))


def credential_over_http(credential_type: str | None, scheme: str) -> bool:
    """Whether a connection on ``scheme`` would send a credential of this type in clear text."""
    return scheme == "http" and credential_type in WIRE_CREDENTIALS
