"""Request signing credentials: ``hmac`` and ``aws_sigv4``, as ``httpx.Auth`` flows.

httpx runs an auth flow after the request is built (connection and step headers, body, Host)
and again for every send, so the signature covers the final request and each retry is signed
afresh, with a new date. ``requires_request_body`` makes httpx read a streamed body first: the
signature covers its hash.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx

from flowrun._errors import SecretFormatError
from flowrun._models._aliases import TEMPLATE_PLACEHOLDER, Credential, missing_aws_extra
from flowrun._models._redact import Secrets
from flowrun._models._secret import SecretRef
from flowrun._transport._auth import _require, _reveal

# Headers AWS sets itself: a stale value from an earlier attempt is never signed.
_AWS_HEADERS = ("authorization", "x-amz-date", "x-amz-security-token")


def render(template: str, values: Mapping[str, str], headers: httpx.Headers) -> str:
    """``template`` with each ``{name}`` from ``values`` and ``{header.NAME}`` from ``headers``
    (empty when the request has no such header)."""
    def one(match: Any) -> str:
        name, part = match.groups()
        if name == "header":
            return str(headers.get(part, ""))
        return values[name]

    return TEMPLATE_PLACEHOLDER.sub(one, template)


_DATES: Mapping[str, Callable[[float], str]] = {
    "http": lambda now: email.utils.formatdate(now, usegmt=True),
    "iso8601": lambda now: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    "unix": lambda now: str(int(now)),
}


class HmacSigning(httpx.Auth):
    """An HMAC over the canonical string (``canonical``) in ``header`` (``header_format``)."""

    requires_request_body = True

    def __init__(self, credential: Credential, secrets: Secrets) -> None:
        self._credential = credential
        self._secrets = secrets
        self._algorithm = credential.algorithm or "sha256"
        self._header = credential.header or "Authorization"

    def __repr__(self) -> str:
        return f"HmacSigning(credential={self._credential.name!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        credential = self._credential
        key = _reveal(credential, "key", self._secrets)
        date = _DATES[credential.date_format](time.time())
        request.headers[credential.date_header] = date
        values = {
            "method": request.method,
            "path": request.url.raw_path.split(b"?", 1)[0].decode("ascii"),
            "query": request.url.query.decode("ascii"),
            "date": date,
            "body_hash": hashlib.new(self._algorithm, request.content).hexdigest(),
            "key_id": credential.key_id or "",
        }
        canonical = render(credential.canonical, values, request.headers)
        digest = hmac.new(self._key_bytes(key), canonical.encode(), self._algorithm).digest()
        values["signature"] = (digest.hex() if credential.encoding == "hex"
                               else base64.b64encode(digest).decode("ascii"))
        value = render(credential.header_format, values, request.headers)
        self._secrets.add(value)
        request.headers[self._header] = value
        yield request

    def _key_bytes(self, key: str) -> bytes:
        encoding = self._credential.key_encoding
        if encoding == "utf8":
            return key.encode()
        try:
            return base64.b64decode(key, validate=True) if encoding == "base64" else bytes.fromhex(key)
        except ValueError:
            secret = self._credential.key
            origin = secret.origin if secret is not None else self._credential.origin
            where = secret.describe() if secret is not None else "key"
            raise SecretFormatError(f"hmac credential '{self._credential.name}': the key from {where} is not "
                                    f"{encoding}", hint='fix the secret, or set "key_encoding" to what it is',
                                    **origin.location()) from None


class AwsSigV4Signing(httpx.Auth):
    """AWS Signature Version 4 by botocore's own signer (the optional extra ``flowrun[aws]``)."""

    requires_request_body = True

    def __init__(self, credential: Credential, secrets: Secrets) -> None:
        try:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
        except ImportError:
            raise missing_aws_extra(credential) from None
        self._signer, self._request, self._credentials = SigV4Auth, AWSRequest, Credentials
        self._credential = credential
        self._secrets = secrets
        self._service = _require(credential, "service")
        self._region = _require(credential, "region")

    def __repr__(self) -> str:
        return f"AwsSigV4Signing(credential={self._credential.name!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        credential = self._credential
        token: SecretRef | None = credential.session_token
        credentials = self._credentials(
            _reveal(credential, "access_key_id", self._secrets),
            _reveal(credential, "secret_access_key", self._secrets),
            _reveal(credential, "session_token", self._secrets) if token is not None else None)
        headers = {name: value for name, value in request.headers.items() if name.lower() not in _AWS_HEADERS}
        aws = self._request(method=request.method, url=str(request.url), data=request.content, headers=headers)
        self._signer(credentials, self._service, self._region).add_auth(aws)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws.headers:
                request.headers[name] = aws.headers[name]
        self._secrets.add(request.headers["Authorization"])
        yield request

