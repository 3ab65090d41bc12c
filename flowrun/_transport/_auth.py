"""Credentials -> ``httpx.Auth``.

Secrets are revealed when a request is authenticated, not when the executor starts, so a
rotated secret file is picked up without a restart. OAuth2 client-credentials tokens are
fetched through the client the executor gives: the alias's own (with our client certificate,
for certificate-bound tokens, RFC 8705) when the origin rule trusts ``token_url``, else one
without a client certificate (``flowrun._models._web_origin``). With a
trust-only profile the token URL is trusted through that profile (a token endpoint on a private
CA), and the token request goes through the connection's proxy, like every request of the alias.

The other grants share that machinery (cache, refresh margin, 401 refresh, origin rule) and differ
only in the token request: ``oauth2_private_key_jwt`` (client credentials, the client
authenticated by an assertion signed with our key), ``oauth2_jwt_bearer`` (RFC 7523 grant) and
``oauth2_password``. Request signing (``hmac``, ``aws_sigv4``) is in ``_signing``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

import attrs
import httpx

from flowrun._errors import AuthenticationError, DefinitionError, FlowrunError
from flowrun._models._aliases import OAUTH2_TYPES, Credential
from flowrun._models._record import ValueRecord
from flowrun._models._redact import Secrets
from flowrun._models._secret import SecretRef
from flowrun._transport._decode import adecoded, decoded
from flowrun._transport._errors import aclassify, classify

if TYPE_CHECKING:
    import asyncio
    import ssl

    from flowrun._registry import ResolvedConnection

_TOKEN_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_TOKEN_MAX_BYTES = 1024 * 1024



def build_auth(
    credential: Credential | None,
    *,
    resolved: ResolvedConnection | None = None,
    client: httpx.Client | None = None,
    async_client: httpx.AsyncClient | None = None,
    secrets: Secrets | None = None,
) -> httpx.Auth | None:
    """The ``httpx.Auth`` for a credential (None for no credential or type ``none``).

    ``client``/``async_client`` send OAuth2 token requests (the alias's pooled client). Every
    value the auth sends as a secret is registered with ``secrets`` (the executor's) for masking.
    """
    if credential is None or credential.type == "none":
        return None
    secrets = secrets if secrets is not None else Secrets()
    if credential.type == "basic":
        return BasicAuth(credential, secrets)
    if credential.type == "bearer":
        return BearerAuth(credential, secrets)
    if credential.type == "api_key":
        return ApiKeyAuth(credential, secrets)
    if credential.type in OAUTH2_TYPES:
        grant = _GRANTS[credential.type]
        return grant(credential, resolved=resolved, client=client, async_client=async_client, secrets=secrets)
    if credential.type == "hmac":
        from flowrun._transport._signing import HmacSigning

        return HmacSigning(credential, secrets)
    if credential.type == "aws_sigv4":
        from flowrun._transport._signing import AwsSigV4Signing

        return AwsSigV4Signing(credential, secrets)
    raise DefinitionError(f"credential '{credential.name}' of type {credential.type} applies to SOAP steps only",
                          hint="use basic, bearer, api_key, an oauth2_* type, hmac or aws_sigv4 for REST",
                          **credential.origin.location())


def set_by_headers(auth: httpx.Auth | None) -> bool:
    """Whether ``auth`` only sets a header or a query key (``header``/``keyed_url``; an OAuth2
    token), which a request sent without httpx's client can carry: Digest answers a challenge,
    and the signing credentials sign the request httpx builds."""
    if auth is None or isinstance(auth, OAuth2ClientCredentials | BearerAuth | ApiKeyAuth):
        return True
    return isinstance(auth, BasicAuth) and auth.one_header


def auth_header(credential: Credential | None) -> str | None:
    """The header a credential sets (shown redacted in request info), or None."""
    if credential is None or credential.type == "none":
        return None
    if credential.type == "api_key":
        return credential.header
    if credential.type == "hmac" and credential.header:
        return credential.header
    return "Authorization"


def _reveal(credential: Credential, field: str, secrets: Secrets) -> str:
    secret: SecretRef | None = getattr(credential, field)
    if secret is None:
        raise DefinitionError(f"credential '{credential.name}' ({credential.type}) has no {field}",
                              **credential.origin.location())
    value = secret.reveal_line()
    secrets.add(value)
    return value


def _require(credential: Credential, field: str) -> str:
    value: str | None = getattr(credential, field)
    if not value:
        raise DefinitionError(f"credential '{credential.name}' ({credential.type}) has no {field}",
                              **credential.origin.location())
    return value


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class BasicAuth(httpx.Auth):
    def __init__(self, credential: Credential, secrets: Secrets) -> None:
        self._credential = credential
        self._username = _require(credential, "username")
        self._secrets = secrets

    @property
    def one_header(self) -> bool:
        """Whether the credential is one header (Basic); Digest answers a challenge."""
        return not self._credential.digest

    def header(self) -> tuple[str, str]:
        """The Authorization header, with the password read now (a rotated secret applies)."""
        password = _reveal(self._credential, "password", self._secrets)
        self._secrets.basic(self._username, password)
        return "Authorization", basic_header(self._username, password)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._credential.digest:
            password = _reveal(self._credential, "password", self._secrets)
            self._secrets.basic(self._username, password)
            yield from httpx.DigestAuth(self._username, password).auth_flow(request)
            return
        name, value = self.header()
        request.headers[name] = value
        yield request

    def __repr__(self) -> str:
        return f"BasicAuth(credential={self._credential.name!r})"


class BearerAuth(httpx.Auth):
    def __init__(self, credential: Credential, secrets: Secrets) -> None:
        self._credential = credential
        self._secrets = secrets

    one_header = True

    def header(self) -> tuple[str, str]:
        return "Authorization", f"Bearer {_reveal(self._credential, 'token', self._secrets)}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        name, value = self.header()
        request.headers[name] = value
        yield request

    def __repr__(self) -> str:
        return f"BearerAuth(credential={self._credential.name!r})"


class ApiKeyAuth(httpx.Auth):
    """An API key in a header (``prefix`` + key; a prefix word gets a space after it) or a query
    parameter (appended last, percent-encoded, without re-encoding the rest of the query)."""

    def __init__(self, credential: Credential, secrets: Secrets) -> None:
        self._credential = credential
        self._secrets = secrets
        prefix = credential.prefix
        self._prefix = prefix + " " if prefix and not prefix.endswith((" ", "=", ":")) else prefix
        if credential.header is None:
            from flowrun._transport._log_redaction import mask_query_parameter

            mask_query_parameter(credential.query or "api_key")

    @property
    def one_header(self) -> bool:
        return self._credential.header is not None

    def header(self) -> tuple[str, str]:
        """The key's header (a credential with ``header``), the key read now."""
        header = self._credential.header
        assert header is not None
        return header, self._prefix + _reveal(self._credential, "key", self._secrets)

    def keyed_url(self, url: httpx.URL) -> str:
        """``url`` with the key as its last query parameter (a credential with ``query``)."""
        key = _reveal(self._credential, "key", self._secrets)
        name = self._credential.query or "api_key"
        text = str(url)
        joiner = "&" if url.query else "?"
        fragment = ""
        if "#" in text:
            text, fragment = text.split("#", 1)
            fragment = "#" + fragment
        return f"{text}{joiner}{quote(name, safe='')}={quote(key, safe='')}{fragment}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.one_header:
            name, value = self.header()
            request.headers[name] = value
        else:
            request.url = httpx.URL(self.keyed_url(request.url))
        yield request

    def __repr__(self) -> str:
        return f"ApiKeyAuth(credential={self._credential.name!r})"


@attrs.frozen(eq=False, repr=False)
class Token(ValueRecord):
    value: str = attrs.field(repr=False)
    # time.monotonic() after which the token is refreshed; None: until the API answers 401.
    refresh_at: float | None
    # The lifetime the token endpoint announced (expires_in), for ``alias test``.
    expires_in_s: float | None = None

    def fresh(self) -> bool:
        return self.refresh_at is None or time.monotonic() < self.refresh_at


class OAuth2ClientCredentials(httpx.Auth):
    """OAuth2 client credentials grant with a cached token.

    The token is reused until ``expires_in - refresh_margin_s``; a 401 from the API refreshes it
    once and resends the request (when its body can be sent again). Thread-safe for the sync
    client; the async path serialises fetches with an ``asyncio.Lock``. Subclasses (the other
    grants) change ``_token_request`` only.
    """

    needs_client_id = True
    hint = "check client_id, client_secret, scope and token_url of the credential"

    def __init__(self, credential: Credential, *, resolved: ResolvedConnection | None = None,
                 client: httpx.Client | None = None, async_client: httpx.AsyncClient | None = None,
                 secrets: Secrets | None = None) -> None:
        self._credential = credential
        self._secrets = secrets if secrets is not None else Secrets()
        self._token_url = _require(credential, "token_url")
        self._client_id = _require(credential, "client_id") if self.needs_client_id else (credential.client_id or "")
        self._resolved = resolved
        self._client = client
        self._async_client = async_client
        self._token: Token | None = None
        self._lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self.fetches = 0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(credential={self._credential.name!r}, "
                f"token_url={self._token_url!r})")

    # --- token requests -------------------------------------------------------------------

    def _token_request(self) -> tuple[dict[str, str], dict[str, str]]:
        form = {"grant_type": "client_credentials"}
        headers = {"Accept": "application/json"}
        self._authenticate_client(form, headers, required=True)
        return self._scoped(form), headers

    def _authenticate_client(self, form: dict[str, str], headers: dict[str, str], *, required: bool) -> None:
        """Client id and secret (``client_auth``: Basic or form); without a secret (optional for
        the password and JWT bearer grants), the client id alone in the form."""
        if self._credential.client_secret is None and not required:
            if self._client_id:
                form["client_id"] = self._client_id
            return
        secret = _reveal(self._credential, "client_secret", self._secrets)
        self._secrets.basic(quote_plus(self._client_id), quote_plus(secret))
        if self._credential.client_auth == "basic":
            # RFC 6749 2.3.1: id and secret are form-encoded before the Basic encoding.
            headers["Authorization"] = basic_header(quote_plus(self._client_id), quote_plus(secret))
        else:
            form["client_id"] = self._client_id
            form["client_secret"] = secret

    def _scoped(self, form: dict[str, str]) -> dict[str, str]:
        if self._credential.scope:
            form["scope"] = self._credential.scope
        if self._credential.audience:
            form["audience"] = self._credential.audience
        return form

    def _signed_assertion(self, *, issuer: str, subject: str) -> str:
        from flowrun._tls._jwt import signed_assertion

        identity = self._resolved.signing_identity if self._resolved is not None else None
        if identity is None:
            raise DefinitionError(f"credential '{self._credential.name}' ({self._credential.type}) has no "
                                  "signing key", hint='name the keystore in "keystore", or use the credential on '
                                  "a mutual TLS connection", **self._credential.origin.location())
        assertion = signed_assertion(self._credential, identity, issuer=issuer, subject=subject,
                                     audience=self._credential.assertion_audience or self._token_url)
        self._secrets.add(assertion)
        return assertion

    def _parse(self, response: httpx.Response, content: bytes) -> Token:
        self.fetches += 1
        payload: Any
        try:
            payload = json.loads(content)
        except (ValueError, RecursionError):
            payload = None
        where = self._where()
        if response.status_code != 200 or not isinstance(payload, dict) or "access_token" not in payload:
            detail = ""
            if isinstance(payload, dict) and isinstance(payload.get("error"), str):
                detail = f": {payload['error']}"
                if isinstance(payload.get("error_description"), str):
                    detail += f" ({payload['error_description']})"
            if response.status_code == 200:
                raise AuthenticationError(f"{where} answered without an access_token", hint=self.hint)
            raise AuthenticationError(f"{where} answered HTTP {response.status_code}{detail}", hint=self.hint)
        lifetime = payload.get("expires_in")
        refresh_at = None
        seconds: float | None = None
        if isinstance(lifetime, int | float | str) and not isinstance(lifetime, bool):
            try:
                seconds = float(lifetime)
            except ValueError:
                seconds = None
            if seconds is not None:
                refresh_at = time.monotonic() + max(seconds - self._credential.refresh_margin_s, 0.0)
        value = str(payload["access_token"])
        self._secrets.add(value)
        if "\n" in value or "\r" in value:
            raise AuthenticationError(f"{where} issued an access_token that contains a line break (CR or LF)",
                                      hint="the token cannot go into a header: ask the token endpoint's owner "
                                           "to fix it")
        return Token(value, refresh_at, seconds)

    def _fetch(self) -> Token:
        if self._client is None:
            raise RuntimeError("no client to fetch OAuth2 tokens with")
        form, headers = self._token_request()
        request = self._client.build_request("POST", self._token_url, data=form, headers=headers,
                                             timeout=_TOKEN_TIMEOUT)
        try:
            response = self._client.send(request, stream=True)
            try:
                content = self._capped(decoded(response))
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise classify(exc, url=self._token_url, resolved=self._resolved) from None
        return self._parse(response, content)

    async def _afetch(self) -> Token:
        if self._async_client is None:
            raise RuntimeError("no async client to fetch OAuth2 tokens with")
        form, headers = self._token_request()
        request = self._async_client.build_request("POST", self._token_url, data=form, headers=headers,
                                                   timeout=_TOKEN_TIMEOUT)
        try:
            response = await self._async_client.send(request, stream=True)
            try:
                content = await self._acapped(adecoded(response))
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise await aclassify(exc, url=self._token_url, resolved=self._resolved) from None
        return self._parse(response, content)

    def _where(self) -> str:
        return f"token endpoint {self._token_url} (credential '{self._credential.name}')"

    def _capped(self, pieces: Iterable[bytes]) -> bytes:
        """A token answer is a small JSON object: a body past ``_TOKEN_MAX_BYTES`` is refused."""
        kept: list[bytes] = []
        size = 0
        for piece in pieces:
            size += len(piece)
            if size > _TOKEN_MAX_BYTES:
                raise self._too_large()
            kept.append(piece)
        return b"".join(kept)

    async def _acapped(self, pieces: AsyncIterator[bytes]) -> bytes:
        kept: list[bytes] = []
        size = 0
        async for piece in pieces:
            size += len(piece)
            if size > _TOKEN_MAX_BYTES:
                raise self._too_large()
            kept.append(piece)
        return b"".join(kept)

    def _too_large(self) -> AuthenticationError:
        return AuthenticationError(f"{self._where()} sent more than {_TOKEN_MAX_BYTES} bytes; refused",
                                   hint="a token answer is a small JSON object: check token_url")

    def token(self, *, stale: Token | None = None) -> Token:
        """The cached token, fetched when missing, expiring, or equal to ``stale`` (rejected)."""
        token = self._token
        if token is not None and token is not stale and token.fresh():
            return token
        with self._lock:
            token = self._token
            if token is None or token is stale or not token.fresh():
                token = self._token = self._fetch()
            return token

    async def atoken(self, *, stale: Token | None = None) -> Token:
        token = self._token
        if token is not None and token is not stale and token.fresh():
            return token
        if self._async_lock is None:
            import asyncio

            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            token = self._token
            if token is None or token is stale or not token.fresh():
                token = self._token = await self._afetch()
            return token

    # --- flows ----------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if response.status_code == 401:
            if not _replayable(request):
                self.forget(token)
                return
            token = self.token(stale=token)
            request.headers["Authorization"] = f"Bearer {token.value}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.atoken()
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if response.status_code == 401:
            if not _replayable(request):
                self.forget(token)
                return
            token = await self.atoken(stale=token)
            request.headers["Authorization"] = f"Bearer {token.value}"
            yield request

    def forget(self, token: Token) -> None:
        """The next request fetches a new token; the one that got the 401 cannot be resent
        (streamed body)."""
        if self._token is token:
            self._token = None


@attrs.frozen(eq=False, repr=False)
class TokenCheck(ValueRecord):
    """What ``alias test`` shows of the token call: never the token."""

    url: str
    with_certificate: bool
    expires_in_s: float | None = None
    error: FlowrunError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_token(resolved: ResolvedConnection, context: ssl.SSLContext, *, with_certificate: bool,
                secrets: Secrets) -> TokenCheck | None:
    """Fetch a token as the steps would (``context``: the alias's, or without our certificate
    when the origin rule does not trust ``token_url``); None for credentials without a token call."""
    from flowrun._transport._http import new_client

    credential = resolved.credential
    if credential is None or credential.type not in OAUTH2_TYPES or credential.token_url is None:
        return None
    with new_client(context, connect_to=resolved.connect_to, proxy=resolved.proxy) as client:
        try:
            token = _GRANTS[credential.type](credential, resolved=resolved, client=client, secrets=secrets).token()
        except FlowrunError as error:
            return TokenCheck(credential.token_url, with_certificate, error=error)
    return TokenCheck(credential.token_url, with_certificate, expires_in_s=token.expires_in_s)


CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class OAuth2PrivateKeyJwt(OAuth2ClientCredentials):
    """Client credentials grant; the client authenticates with an assertion signed with our key
    (``private_key_jwt``, RFC 7523 section 2.2): iss and sub are the client id, aud the token URL."""

    hint = ("check client_id, the key the partner registered for it (kid, algorithm), scope and token_url "
            "of the credential")

    def _token_request(self) -> tuple[dict[str, str], dict[str, str]]:
        form = {"grant_type": "client_credentials", "client_id": self._client_id,
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": self._signed_assertion(issuer=self._client_id, subject=self._client_id)}
        return self._scoped(form), {"Accept": "application/json"}


class OAuth2JwtBearer(OAuth2ClientCredentials):
    """The JWT bearer grant (RFC 7523 section 2.1): an assertion we sign (iss: ``issuer`` or the
    client id, sub: ``subject``) or one given as a secret; the client secret is optional."""

    needs_client_id = False
    hint = "check issuer, subject, the signing key (kid, algorithm) or assertion, scope and token_url"

    def _token_request(self) -> tuple[dict[str, str], dict[str, str]]:
        credential = self._credential
        if credential.assertion is not None:
            assertion = _reveal(credential, "assertion", self._secrets)
        else:
            issuer = credential.issuer or self._client_id
            if not issuer:
                raise DefinitionError(f"credential '{credential.name}' (oauth2_jwt_bearer) has neither issuer "
                                      "nor client_id for the assertion's iss", **credential.origin.location())
            assertion = self._signed_assertion(issuer=issuer, subject=_require(credential, "subject"))
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
        headers = {"Accept": "application/json"}
        self._authenticate_client(form, headers, required=False)
        return self._scoped(form), headers


class OAuth2Password(OAuth2ClientCredentials):
    """The resource owner password grant (RFC 6749 section 4.3); the client secret is optional."""

    needs_client_id = False
    hint = "check username, password, client_id, client_secret, scope and token_url of the credential"

    def _token_request(self) -> tuple[dict[str, str], dict[str, str]]:
        password = _reveal(self._credential, "password", self._secrets)
        form = {"grant_type": "password", "username": _require(self._credential, "username"), "password": password}
        headers = {"Accept": "application/json"}
        self._authenticate_client(form, headers, required=False)
        return self._scoped(form), headers


_GRANTS: dict[str, type[OAuth2ClientCredentials]] = {
    "oauth2_client_credentials": OAuth2ClientCredentials,
    "oauth2_private_key_jwt": OAuth2PrivateKeyJwt,
    "oauth2_jwt_bearer": OAuth2JwtBearer,
    "oauth2_password": OAuth2Password,
}


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)

