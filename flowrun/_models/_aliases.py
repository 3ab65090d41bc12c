"""Alias records: keystore, trust store cert, protocol profile, credential, connection, alias.

Frozen attrs records, checked on construction (what a JSON Schema cannot say: cross-field rules),
no I/O. Paths are absolute by the time a record exists: the loader resolves them against the
file that named them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import attrs

from flowrun._errors import DefinitionError, MissingExtraError, SchemaError
from flowrun._models._origin import NOWHERE, Origin
from flowrun._models._proxy import ProxyRules, proxy_endpoint
from flowrun._models._record import ValueRecord
from flowrun._models._secret import SecretRef
from flowrun._models._web_origin import web_origin

KeystoreType = Literal["jks", "jceks", "pkcs12", "pem"]
TlsVersion = Literal["1.2", "1.3"]
RetryStrategy = Literal["none", "fixed", "exponential", "retry_after"]
RESERVED_PROFILE_NAMES = frozenset({"http", "https"})


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def _fail(origin: Origin, message: str, hint: str | None = None) -> SchemaError:
    return SchemaError(message, hint=hint, **origin.location())


def _check_url(url: str, field: str, origin: Origin) -> None:
    """A URL the transports can use as is; credentials in it are refused, never echoed."""
    if _USERINFO.match(url):
        raise _fail(origin, f"'{field}' holds a user name or password before '@'",
                    "put credentials into a credential record ({\"env\": ...} or {\"file\": ...}), not into a URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _fail(origin, f"'{field}' {url!r} is not a valid URL: {exc}") from None
    if not parts.hostname:
        raise _fail(origin, f"'{field}' {url!r} has no host")
    del port  # parsed only to refuse a bad one


def _check_host(host: str, origin: Origin) -> None:
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    netloc = f"[{bare}]" if ":" in bare else bare
    try:
        parsed = urlsplit(f"https://{netloc}/").hostname
    except ValueError:
        parsed = None
    if parsed != bare.lower() or any(c.isspace() for c in bare):
        raise _fail(origin, f"'host' {host!r} is not a host name or IP address",
                    "give the host alone: no scheme, port, path or user name")


def _check_trusted_origin(text: str, origin: Origin) -> None:
    _check_url(text, "trusted_origins", origin)
    parts = urlsplit(text)
    if parts.scheme.lower() != "https":
        raise _fail(origin, f"trusted origin {text!r} is not https: a credential never travels in clear text",
                    "list the https:// origin, e.g. \"https://login.bank.example\"")
    if parts.path not in ("", "/") or parts.query or parts.fragment or web_origin(text) is None:
        raise _fail(origin, f"trusted origin {text!r} is not an origin: give scheme, host and port only",
                    "e.g. \"https://login.bank.example:8443\"; every path on that origin is trusted")


@attrs.frozen(eq=False, repr=False)
class Keystore(ValueRecord):
    """Our identity: a private key and its CA-signed chain."""

    name: str
    file: Path = attrs.field(converter=Path)
    type: KeystoreType | None = None
    password: SecretRef | None = None
    key_alias: str | None = None
    key_password: SecretRef | None = None
    key_file: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    # Certificates that complete the chain we send when the store lacks them: a file (Path) or
    # the name of a trust_store_cert record (str).
    chain_certs: tuple[Path | str, ...] = ()
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)


@attrs.frozen(eq=False, repr=False)
class TrustStoreCert(ValueRecord):
    """A certificate (or PEM bundle) we trust for a partner."""

    name: str
    format: Literal["pem", "der"] = "pem"
    file: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    pem: str | None = attrs.field(default=None, repr=False)
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if (self.file is None) == (self.pem is None):
            raise _fail(self.origin, f"trust_store_cert '{self.name}' needs exactly one of file or pem")


@attrs.frozen(eq=False, repr=False)
class ProtocolProfile(ValueRecord):
    """Binds a keystore (and the partner's trust certs) to a named protocol. Without a keystore
    it is a trust-only profile: a connection names it without mutual authentication to trust a
    partner (or token endpoint) on a private CA."""

    name: str
    keystore: str | None = None
    port: int = 443
    trust_store_certs: tuple[str, ...] = ()
    use_system_trust: bool = True
    tls_versions: tuple[TlsVersion, ...] = ("1.2", "1.3")
    insecure_skip_verify: bool = False
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    @property
    def trust_only(self) -> bool:
        return self.keystore is None

    def __attrs_post_init__(self) -> None:
        if self.name.lower() in RESERVED_PROFILE_NAMES:
            raise _fail(self.origin, f"a protocol profile cannot be named '{self.name}'",
                        "pick a unique name such as 'bankMTLS'; http and https are the plain protocols")
        if not self.use_system_trust and not self.trust_store_certs and not self.insecure_skip_verify:
            raise _fail(self.origin, f"protocol profile '{self.name}' trusts nothing: use_system_trust is false "
                        "and trust_store_certs is empty", "add the partner's root as a trust_store_cert")


# Request signing templates: {method} {path} {query} {date} {body_hash} {key_id} {header.NAME};
# {signature} in header_format only. The default covers what HMAC partners commonly sign.
HMAC_CANONICAL = "{method}\n{path}\n{query}\n{date}\n{body_hash}"
HMAC_ALGORITHMS = ("sha256", "sha512")
SIGNED_JWT_TYPES = frozenset({"oauth2_private_key_jwt", "oauth2_jwt_bearer"})
OAUTH2_TYPES = frozenset({"oauth2_client_credentials", "oauth2_password", *SIGNED_JWT_TYPES})
JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
HMAC_PLACEHOLDERS_TEXT = ("{method} {path} {query} {date} {body_hash} {key_id} {header.NAME}; "
                          "{signature} in header_format")
TEMPLATE_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)(?:\.([A-Za-z0-9_-]+))?\}")
_PLAIN_PLACEHOLDERS = frozenset({"method", "path", "query", "date", "body_hash", "key_id"})


def template_problem(template: str, *, signature: bool) -> str | None:
    """The first unknown placeholder of an hmac template, else None."""
    for match in TEMPLATE_PLACEHOLDER.finditer(template):
        name, part = match.groups()
        if name == "header" and part:
            continue
        if part is None and (name in _PLAIN_PLACEHOLDERS or (signature and name == "signature")):
            continue
        return match.group()[1:-1]
    return None


@attrs.frozen(eq=False, repr=False)
class Credential(ValueRecord):
    """How requests authenticate. Fields other than ``name`` and ``type`` depend on the type."""

    name: str
    type: Literal["none", "basic", "bearer", "api_key", "oauth2_client_credentials", "wsse_username_token",
                  "oauth2_private_key_jwt", "oauth2_jwt_bearer", "oauth2_password", "hmac", "aws_sigv4"]
    username: str | None = None
    password: SecretRef | None = None
    token: SecretRef | None = None
    key: SecretRef | None = None
    header: str | None = None
    query: str | None = None
    prefix: str = ""
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretRef | None = None
    scope: str | None = None
    audience: str | None = None
    client_auth: Literal["basic", "body"] = "basic"
    refresh_margin_s: float = 30.0
    digest: bool = False
    # Signed JWTs (private_key_jwt, jwt_bearer): the keystore record holding the signing key
    # (default: the connection's mutual TLS keystore), its kid and JWS algorithm.
    keystore: str | None = None
    kid: str | None = None
    algorithm: str | None = None
    assertion: SecretRef | None = None
    issuer: str | None = None
    subject: str | None = None
    assertion_audience: str | None = None
    assertion_lifetime_s: float = 60.0
    # Request signing: hmac (key, algorithm sha256/sha512, templates) and aws_sigv4.
    key_id: str | None = None
    canonical: str = HMAC_CANONICAL
    header_format: str = "{signature}"
    date_header: str = "Date"
    date_format: Literal["http", "iso8601", "unix"] = "http"
    encoding: Literal["base64", "hex"] = "base64"
    # How the key secret is written: its UTF-8 bytes are the key, or it is base64 or hex of the key.
    key_encoding: Literal["utf8", "base64", "hex"] = "utf8"
    service: str | None = None
    region: str | None = None
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    session_token: SecretRef | None = None
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.algorithm is not None:
            allowed = (HMAC_ALGORITHMS if self.type == "hmac" else
                       JWT_ALGORITHMS if self.type in SIGNED_JWT_TYPES else ())
            if self.algorithm not in allowed:
                raise _fail(self.origin, f"credential '{self.name}' ({self.type}): algorithm {self.algorithm!r} "
                            "is not one of " + (", ".join(allowed) or "(none: this type has no algorithm)"))
        if self.type == "hmac":
            for field in ("canonical", "header_format"):
                unknown = template_problem(getattr(self, field), signature=field == "header_format")
                if unknown is not None:
                    raise _fail(self.origin, f"hmac credential '{self.name}': {field} has an unknown placeholder "
                                f"{{{unknown}}}", "placeholders: " + HMAC_PLACEHOLDERS_TEXT)
        if self.type == "oauth2_jwt_bearer" and (self.assertion is None) == (self.subject is None):
            raise _fail(self.origin, f"oauth2_jwt_bearer credential '{self.name}' needs exactly one of assertion "
                        "(a ready assertion, as a secret) or subject (flowrun signs one)",
                        'e.g. "subject": "service-user" with "keystore", or "assertion": {"env": "ASSERTION"}')
        if self.token_url is not None:
            _check_url(self.token_url, "token_url", self.origin)
            if urlsplit(self.token_url).scheme.lower() != "https":
                raise _fail(self.origin, f"credential '{self.name}': token_url {self.token_url!r} is not https: "
                            "the client secret would travel in clear text",
                            "use the token endpoint's https:// URL")
        if self.type == "api_key" and (self.header is None) == (self.query is None):
            raise _fail(self.origin, f"api_key credential '{self.name}' needs exactly one of header or query",
                        'e.g. "header": "X-API-Key" or "query": "api_key"')

    def secrets(self) -> tuple[SecretRef, ...]:
        return tuple(s for s in (self.password, self.token, self.key, self.client_secret, self.assertion,
                                 self.access_key_id, self.secret_access_key, self.session_token) if s is not None)


def missing_aws_extra(credential: Credential) -> MissingExtraError:
    return MissingExtraError(f"credential '{credential.name}' (aws_sigv4) needs botocore, which is not installed",
                             hint="install the extra: pip install 'flowrun[aws]'", **credential.origin.location())


@attrs.frozen(eq=False, repr=False)
class ConnectionProxy(ValueRecord):
    """A connection's own proxy, which overrides the environment's: a URL with the proxy
    credentials apart (the password a secret reference), or ``url=None`` for ``"none"``: go
    direct whatever the environment says."""

    url: str | None
    username: str | None = None
    password: SecretRef | None = None
    no_proxy: tuple[str, ...] = ()
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.url is None:
            return
        if _USERINFO.match(self.url):
            raise _fail(self.origin, "'proxy.url' holds a user name or password before '@'",
                        'give them as "username" and "password" ({"env": ...} or {"file": ...}) next to "url"')
        if self.password is not None and self.username is None:
            raise _fail(self.origin, "'proxy.password' is set without 'proxy.username'",
                        'add "username": the proxy authenticates a user name and a password')
        try:
            self.rules()
        except DefinitionError as error:
            raise _fail(self.origin, error.message, error.hint) from None

    def rules(self) -> ProxyRules:
        if self.url is None:
            return ProxyRules(source="connection")  # "none": direct, whatever the environment says
        endpoint = proxy_endpoint(self.url, source="connection", username=self.username, password=self.password)
        return ProxyRules(source="connection", https=endpoint, http=endpoint, no_proxy=self.no_proxy)


@attrs.frozen(eq=False, repr=False)
class Connection(ValueRecord):
    """Where requests go: a full ``url``, or the URL builder's protocol/host/port/base_path."""

    url: str | None = None
    url_builder: bool = False
    protocol: Literal["https", "http"] = "https"
    host: str | None = None
    port: int | None = None
    base_path: str = ""
    mutual_authentication: bool = False
    protocol_profile: str | None = None
    credential: str | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    # Other origins ("https://host[:port]") that may receive the credential and client certificate.
    trusted_origins: tuple[str, ...] = ()
    # None: the environment's proxies (HTTPS_PROXY, NO_PROXY, ...) apply.
    proxy: ConnectionProxy | None = None
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        for index, text in enumerate(self.trusted_origins):
            _check_trusted_origin(text, self.origin.child("trusted_origins", index))
        if self.url_builder:
            if self.url is not None:
                raise _fail(self.origin, "url_builder is on: give host (and port, base_path), not url")
            if not self.host:
                raise _fail(self.origin, "url_builder is on but host is missing")
            _check_host(self.host, self.origin)
        else:
            if self.url is None:
                raise _fail(self.origin, "a connection needs a url, or url_builder: true with a host")
            _check_url(self.url, "url", self.origin)
            # Without the URL builder these fields would be ignored: refuse them rather than
            # send requests somewhere else than the user meant.
            for field in ("host", "port"):
                if getattr(self, field) is not None:
                    raise _fail(self.origin, f"'{field}' is a URL builder field",
                                'set "url_builder": true, or put it into "url"')
            if self.base_path:
                raise _fail(self.origin, "'base_path' is a URL builder field",
                            'put the path into "url", or set "url_builder": true')
            if self.protocol != "https":
                raise _fail(self.origin, "'protocol' is a URL builder field",
                            'the scheme of "url" says it; or set "url_builder": true')
        if self.mutual_authentication and not self.protocol_profile:
            raise _fail(self.origin, "mutual_authentication is on but no protocol_profile is named",
                        "name the protocol profile that holds the keystore")
        # A profile named without mutual authentication is for trust only; whether that profile
        # holds a keystore (which would then silently not be sent) is the registry's check.


@attrs.frozen(eq=False, repr=False)
class RetryPolicy(ValueRecord):
    strategy: RetryStrategy = "none"
    count: int = 0
    interval_s: float = 1.0
    max_interval_s: float = 30.0
    max_elapsed_s: float = 120.0
    jitter: bool = True
    on_status: tuple[int, ...] = (429, 502, 503, 504)
    on_transport_errors: bool = True
    retry_non_idempotent: bool = False

    @property
    def attempts(self) -> int:
        return 1 if self.strategy == "none" else 1 + self.count


NO_RETRY = RetryPolicy()


@attrs.frozen(eq=False, repr=False)
class RateLimit(ValueRecord):
    """At most ``per_second`` requests a second through an alias, after a first ``burst``:
    a token bucket that every step and flow of the process shares."""

    per_second: float
    burst: int = 1
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not 0 < self.per_second <= 100_000:
            raise _fail(self.origin, f"rate_limit.per_second must be above 0 (and at most 100000); "
                        f"got {self.per_second!r}")
        if not 1 <= self.burst <= 100_000:
            raise _fail(self.origin, f"rate_limit.burst must be at least 1; got {self.burst!r}")


@attrs.frozen(eq=False, repr=False)
class ConcurrencyLimit(ValueRecord):
    """At most ``max_in_flight`` requests through an alias at once: in one process, and across
    Celery workers (``flowrun.celery``). A request waits up to ``wait_s`` seconds for its turn."""

    max_in_flight: int
    wait_s: float = 60.0
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.max_in_flight <= 100_000:
            raise _fail(self.origin, "concurrency_limit.max_in_flight must be at least 1 (and at most 100000); "
                        f"got {self.max_in_flight!r}")
        if not 0 <= self.wait_s <= 86_400:
            raise _fail(self.origin, f"concurrency_limit.wait_s must be 0 to 86400 seconds; got {self.wait_s!r}")


def _connections(value: Connection | Mapping[str, Connection]) -> Mapping[str, Connection]:
    return {Alias.SINGLE: value} if isinstance(value, Connection) else dict(value)


@attrs.frozen(eq=False, repr=False)
class Alias(ValueRecord):
    """A Connection & Credential alias: one connection, or one per environment."""

    name: str
    # A single Connection is stored under SINGLE: Alias("bank", Connection(url=...)) in code.
    connections: Mapping[str, Connection] = attrs.field(converter=_connections)
    default_env: str | None = None
    retry_policy: RetryPolicy = NO_RETRY
    description: str = ""
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)
    rate_limit: RateLimit | None = None
    concurrency_limit: ConcurrencyLimit | None = None

    # The key under which a single ``connection`` is stored.
    SINGLE = ""

    def __attrs_post_init__(self) -> None:
        if not self.connections:
            raise _fail(self.origin, f"alias '{self.name}' has no connection")
        if self.default_env is not None and self.default_env not in self.connections:
            raise _fail(self.origin, f"default_env '{self.default_env}' is not one of the connections: "
                        + ", ".join(sorted(self.connections)))

    @property
    def environments(self) -> tuple[str, ...]:
        return tuple(k for k in self.connections if k != self.SINGLE)
