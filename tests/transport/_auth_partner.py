"""A partner that checks what the credentials produce, as real partners do.

- ``POST /token``: a token endpoint for the private_key_jwt client authentication, the JWT
  bearer grant and the password grant. Assertions are verified with PyJWT against the public
  key of our client certificate (signature, algorithm, kid, iss, sub, aud, exp, jti replay).
- ``/api/...``: answers 200 to a token it issued, 401 otherwise.
- ``/hmac/...``: recomputes the HMAC from the request as received.
- ``/sigv4/...``: recomputes the AWS SigV4 signature with botocore from the request as received.
- a path ending in ``/echo``: the 200 answer repeats the request's headers and body.
- ``?flaky=N``: the first N attempts of that path are answered 503 after the signature check.

Each answer is also recorded in ``verdicts`` (path, outcome), and signed dates in ``dates``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections import Counter
from urllib.parse import parse_qsl, urlsplit

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import Certificate

from tests.transport._support import RawRequest, Reply

CLIENT_ID = "client-1"
ISSUER = "issuer-svc"
SUBJECT = "user-42"
USERNAME = "alice"
PASSWORD = "s3cret-pass"
CLIENT_SECRET = "client-secret-9"
HMAC_KEY = "hmac-key-0123456789"
HMAC_KEY_ID = "key-7"
AWS_ACCESS_KEY = "AKIDEXAMPLE"
AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS_SESSION_TOKEN = "session-token-example-123"
AWS_REGION = "eu-west-1"
AWS_SERVICE = "execute-api"
GIVEN_ASSERTION_KID = "partner-issued"


def thumbprint(certificate: Certificate) -> str:
    return base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA256())).rstrip(b"=").decode()


def _json(status: int, payload: object) -> Reply:
    return Reply(status, json.dumps(payload).encode())


def _ok(request: RawRequest) -> Reply:
    """200; on a path ending in /echo, with what was received (as partners' debug endpoints do)."""
    if not urlsplit(request.target).path.endswith("/echo"):
        return _json(200, {"ok": True})
    return _json(200, {"ok": True, "headers": [list(h) for h in request.headers],
                       "body": request.body.decode("utf-8", "replace")})


class AuthPartner:
    def __init__(self, client_certificate: Certificate, *, client_cert_sha256: str | None = None,
                 algorithms: tuple[str, ...] = ("ES256",), kid: str | None = None) -> None:
        self._certificate = client_certificate
        self._public_key = client_certificate.public_key()
        self._cert_sha256 = client_cert_sha256
        self._algorithms = list(algorithms)
        self._kid = kid or thumbprint(client_certificate)
        self._lock = threading.Lock()
        self._jti: set[str] = set()
        self._tokens: dict[str, str] = {}
        self._attempts: Counter[str] = Counter()
        self.port = 0
        self.verdicts: list[tuple[str, str]] = []
        self.dates: list[str] = []
        self.assertion_headers: list[dict[str, object]] = []
        self.given_assertion: str | None = None

    @property
    def token_url(self) -> str:
        return f"https://localhost:{self.port}/token"

    def tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    def __call__(self, request: RawRequest) -> Reply:
        path = urlsplit(request.target).path
        if path == "/token":
            reply, verdict = self._token(request)
        elif path.startswith("/api/"):
            ok = self._tokens.get((request.header("Authorization") or "").removeprefix("Bearer ")) is not None
            reply, verdict = (_ok(request), "ok") if ok else (_json(401, {"error": "invalid_token"}), "bad token")
        elif path.startswith("/hmac/"):
            reply, verdict = self._signed(request, self._hmac_ok(request))
        elif path.startswith("/sigv4/"):
            reply, verdict = self._signed(request, self._sigv4_ok(request))
        else:
            reply, verdict = _json(404, {"error": "not found"}), "not found"
        with self._lock:
            self.verdicts.append((path, verdict))
        return reply

    # --- token endpoint -----------------------------------------------------------------------

    def _token(self, request: RawRequest) -> tuple[Reply, str]:
        form = dict(parse_qsl(request.body.decode()))
        grant = form.get("grant_type")
        try:
            if grant == "client_credentials" and "client_assertion" in form:
                if request.client_cert_sha256 != self._cert_sha256:
                    return _json(401, {"error": "invalid_client", "error_description": "mTLS required"}), "no mtls"
                if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                    return _json(400, {"error": "invalid_request"}), "assertion type"
                self._verify(form["client_assertion"], issuer=CLIENT_ID, subject=CLIENT_ID)
                who = f"client {form.get('client_id')}"
            elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                if form["assertion"] == self.given_assertion:
                    who = "given assertion"
                else:
                    self._verify(form["assertion"], issuer=ISSUER, subject=SUBJECT)
                    who = f"subject {SUBJECT}"
            elif grant == "password":
                basic = request.header("Authorization") or ""
                expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if basic != expected:
                    return _json(401, {"error": "invalid_client"}), "bad client"
                if form.get("username") != USERNAME or form.get("password") != PASSWORD:
                    return _json(400, {"error": "invalid_grant", "error_description": "bad user credentials"}), \
                        "bad password"
                who = f"user {USERNAME}"
            else:
                return _json(400, {"error": "unsupported_grant_type"}), "grant"
        except jwt.PyJWTError as error:
            return _json(400, {"error": "invalid_grant", "error_description": type(error).__name__}), \
                f"jwt: {type(error).__name__}: {error}"
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = who
        return _json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}), f"issued to {who}"

    def _verify(self, assertion: str, *, issuer: str, subject: str) -> None:
        header = jwt.get_unverified_header(assertion)
        self.assertion_headers.append(header)
        if header.get("kid") != self._kid:
            raise jwt.InvalidKeyError(f"unknown kid {header.get('kid')!r}")
        claims = jwt.decode(assertion, self._public_key, algorithms=self._algorithms,  # type: ignore[arg-type]
                            audience=self.token_url, issuer=issuer,
                            options={"require": ["exp", "iat", "jti", "sub", "iss", "aud"]})
        if claims["sub"] != subject:
            raise jwt.InvalidTokenError(f"sub {claims['sub']!r}")
        with self._lock:
            if claims["jti"] in self._jti:
                raise jwt.InvalidTokenError("jti replayed")
            self._jti.add(claims["jti"])

    # --- signed requests ----------------------------------------------------------------------

    def _signed(self, request: RawRequest, ok: bool) -> tuple[Reply, str]:
        if not ok:
            return _json(401, {"error": "bad signature"}), "bad signature"
        parts = urlsplit(request.target)
        flaky = int(dict(parse_qsl(parts.query)).get("flaky", "0"))
        with self._lock:
            self._attempts[parts.path] += 1
            attempt = self._attempts[parts.path]
        if attempt <= flaky:
            return _json(503, {"error": "try again"}), "503 after good signature"
        return _ok(request), "ok"

    def _hmac_ok(self, request: RawRequest) -> bool:
        parts = urlsplit(request.target)
        date = request.header("X-Date") or ""
        self.dates.append(date)
        canonical = "\n".join([request.method, parts.path, parts.query, date,
                               hashlib.sha256(request.body).hexdigest(), request.header("Content-Type") or ""])
        expected = base64.b64encode(hmac.new(HMAC_KEY.encode(), canonical.encode(), "sha256").digest()).decode()
        return hmac.compare_digest(request.header("X-Signature") or "", f'keyId="{HMAC_KEY_ID}",sig="{expected}"')

    def _sigv4_ok(self, request: RawRequest) -> bool:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        authorization = request.header("Authorization") or ""
        if not authorization.startswith("AWS4-HMAC-SHA256 "):
            return False
        fields = dict(item.strip().split("=", 1) for item in authorization.removeprefix("AWS4-HMAC-SHA256 ")
                      .split(","))
        if fields["Credential"].split("/")[0] != AWS_ACCESS_KEY:
            return False
        signed = fields["SignedHeaders"].split(";")
        if "x-amz-date" not in signed or "host" not in signed:
            return False
        headers = {name: value for name, value in request.headers if name.lower() in signed}
        date = request.header("X-Amz-Date") or ""
        self.dates.append(date)
        aws = AWSRequest(method=request.method, url=f"https://localhost:{self.port}{request.target}",
                         data=request.body, headers=headers)
        aws.context["timestamp"] = date
        signer = SigV4Auth(Credentials(AWS_ACCESS_KEY, AWS_SECRET_KEY, AWS_SESSION_TOKEN), AWS_SERVICE, AWS_REGION)
        canonical = signer.canonical_request(aws)
        expected = signer.signature(signer.string_to_sign(aws, canonical), aws)
        return (hmac.compare_digest(fields["Signature"], expected)
                and request.header("X-Amz-Security-Token") == AWS_SESSION_TOKEN)
