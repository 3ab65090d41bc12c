"""Alias resolution: alias -> connection -> URL, credential, protocol profile -> SSL context.

``Registry.load(dir)`` reads and cross-checks every record (no I/O beyond the JSON files);
``Registry.from_records([...])`` does the same for records built in code. ``secrets=`` gives
the registry the service's own secret stores (``SecretSource``): every secret its records name is
read through ``registry.reveal_secret``, the one place secrets are resolved.
``registry.resolve(name, env)`` reads key material (cached by content) and returns a
``ResolvedConnection`` that the transports use as is.

A protocol profile with ``insecure_skip_verify`` is never used quietly: the first time a registry
resolves a connection through it, per alias, it reports an ``InsecureUse`` to ``on_insecure``
(the CLI prints a warning there), or, when nobody listens, logs a warning on the ``flowrun``
logger (which Python prints to stderr when logging is not configured).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from flowrun._errors import (
    DefinitionError,
    FlowrunError,
    KeyMaterialError,
    SchemaError,
    TrustCertError,
    UnknownReferenceError,
)
from flowrun._load._aliases import AliasRecords, Record, alias_files, collect_records, load_alias_records
from flowrun._load._schema import did_you_mean
from flowrun._models._aliases import (
    NO_RETRY,
    SIGNED_JWT_TYPES,
    Alias,
    ConcurrencyLimit,
    Connection,
    Credential,
    ProtocolProfile,
    RateLimit,
    RetryPolicy,
    missing_aws_extra,
)
from flowrun._models._origin import Origin
from flowrun._models._proxy import DIRECT, ProxyRules, rules_from_environment
from flowrun._models._record import RecordRepr, ValueRecord
from flowrun._models._redact import Secrets
from flowrun._models._results import StepResult
from flowrun._models._secret import SecretRef, SecretSource
from flowrun._models._web_origin import OriginRule, WebOrigin, credential_over_http, web_origin
from flowrun._tls._cache import TLS_CACHE, TlsCache
from flowrun._tls._context import TlsSettings
from flowrun._tls._material import identity_for, place, trust_der_for, trust_for
from flowrun._tls._model import ClientIdentity

if TYPE_CHECKING:  # certificates are decoded where their fields are read, not on a run's path
    from cryptography import x509

_LOG = logging.getLogger("flowrun")
DEFAULT_ALIAS_DIR = "aliases"
ALIASES_ENV = "FLOWRUN_ALIASES"
_DEFAULT_PORTS = {"https": 443, "http": 80}


@attrs.frozen(eq=False, repr=False)
class ResolvedConnection(RecordRepr):
    """Everything a transport needs to talk to a partner through an alias."""

    alias: str
    env: str | None
    scheme: str
    host: str
    port: int
    base_path: str
    ssl_context: ssl.SSLContext | None = attrs.field(repr=False)
    credential: Credential | None
    retry_policy: RetryPolicy
    connect_timeout_s: float
    read_timeout_s: float
    headers: Mapping[str, str] = attrs.field(factory=dict)
    profile: ProtocolProfile | None = None
    # Our identity for mutual TLS (its chain is decoded only when read: ``client_chain``).
    client_identity: ClientIdentity | None = attrs.field(default=None, repr=False)
    insecure: bool = False
    # Where to open the TCP connection instead of host:port (like curl's --connect-to);
    # TLS SNI, certificate checks and the Host header still use host.
    connect_to: Mapping[tuple[str, int], tuple[str, int]] = attrs.field(factory=dict)
    # The connection's ``trusted_origins`` (see ``flowrun._models._web_origin``).
    trusted_origins: frozenset[WebOrigin] = frozenset()
    # Which requests go through which proxy: the connection's own, else the environment's.
    proxy: ProxyRules = DIRECT
    rate_limit: RateLimit | None = None
    concurrency_limit: ConcurrencyLimit | None = None
    # The key and certificate a credential signs JWTs with (private_key_jwt, jwt_bearer).
    signing_identity: ClientIdentity | None = attrs.field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return base_url(self.scheme, self.host, self.port, self.base_path)

    @property
    def origin_key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host.lower(), self.port)

    @property
    def origin_rule(self) -> OriginRule:
        """Who may receive this connection's credential and client certificate."""
        return OriginRule(self.origin_key, self.trusted_origins)

    @property
    def client_chain(self) -> tuple[x509.Certificate, ...]:
        return self.client_identity.chain if self.client_identity is not None else ()

    @property
    def client_certificate(self) -> x509.Certificate | None:
        return self.client_identity.leaf if self.client_identity is not None else None

    @property
    def client_cert_sha256(self) -> str | None:
        if self.client_identity is None:
            return None
        return hashlib.sha256(self.client_identity.ders[0]).hexdigest()


@attrs.frozen(eq=False, repr=False)
class InsecureUse(ValueRecord):
    """A connection resolved through a protocol profile that turns certificate checks off."""

    alias: str  # "" for a step's inline connection
    profile: ProtocolProfile

    @property
    def message(self) -> str:
        who = f"alias '{self.alias}'" if self.alias else "an inline connection"
        return (f"{who} does not verify the partner's certificate or host name (protocol profile "
                f"'{self.profile.name}' sets insecure_skip_verify)")

    @property
    def hint(self) -> str:
        return ("anyone on the network path can read and change this traffic: remove insecure_skip_verify "
                "and add the partner's root as a trust_store_cert")


InsecureListener = Callable[[InsecureUse], None]
# One source for every {"source": ..., "name": ...} secret, or one per source name.
SecretSources = SecretSource | Mapping[str, SecretSource]


def base_url(scheme: str, host: str, port: int, base_path: str) -> str:
    """The URL requests are relative to; the port is left out when it is the scheme's default."""
    netloc = f"[{host}]" if ":" in host else host
    if port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{base_path}"


def _unknown(kind: str, name: str, defined: Iterable[str], origin: Origin, field: str) -> UnknownReferenceError:
    known = sorted(defined)
    listing = ", ".join(known) if known else "none are defined"
    return UnknownReferenceError(
        f"'{field}' names {kind.replace('_', ' ')} '{name}', which is not defined{did_you_mean(name, known)}",
        hint=f"{kind}s defined: {listing}",
        **origin.location(),
    )


class Registry:
    """The records of an alias directory, cross-checked, and their resolution."""

    def __init__(self, records: AliasRecords | Iterable[Record], *, cache: TlsCache = TLS_CACHE,
                 connect_to: Mapping[tuple[str, int], tuple[str, int]] | None = None,
                 secrets: SecretSources | None = None, check_origins: bool = True,
                 environ: Mapping[str, str] | None = None) -> None:
        """``check_origins=False`` leaves credentials over plain http to ``origin_problems()``
        (``validate`` lists them all); any use of such a connection still refuses it.
        ``environ`` replaces the process environment as the source of proxy variables."""
        if not isinstance(records, AliasRecords):
            records = collect_records(records)  # Registry([...]) as Registry.from_records([...])
        self._default_source, self._secret_sources = _secret_sources(secrets)
        self.records = self._bind_secrets(records)
        self._cache = cache
        # Where proxy variables are read (None: os.environ at each resolution).
        self._environ = environ
        self.connect_to = {(host.lower(), port): target for (host, port), target in (connect_to or {}).items()}
        # Who hears about insecure profiles in use (None: the "flowrun" logger), once per alias.
        self.on_insecure: InsecureListener | None = None
        self._insecure_reported: set[tuple[str, str]] = set()
        self._insecure_lock = threading.Lock()
        self._check_references(check_origins)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *,
             connect_to: Mapping[tuple[str, int], tuple[str, int]] | None = None,
             secrets: SecretSources | None = None,
             environ: Mapping[str, str] | None = None, aliases: Collection[str] | None = None) -> Registry:
        """Read an alias directory (default: $FLOWRUN_ALIASES, else ./aliases).

        ``aliases`` (the aliases a run uses): only those and the records they name are checked and
        built, so unused aliases cost a run almost nothing; a broken record elsewhere is then
        `flowrun validate`'s to report.

        ``connect_to`` maps (host, port) to the address actually dialled, for testing against a
        local or staging copy of a partner without editing its alias. ``secrets`` answers the
        records' ``{"source": ..., "name": ...}`` secrets (see ``from_records``). ``environ``
        replaces the process environment as the source of proxy variables (``{}``: no proxies)."""
        directory = Path(path) if path is not None else Path(os.environ.get(ALIASES_ENV, DEFAULT_ALIAS_DIR))
        return cls(load_alias_records(alias_files(directory), aliases=aliases), connect_to=connect_to,
                   secrets=secrets, environ=environ)

    @classmethod
    def from_records(cls, records: Iterable[Record], *, secrets: SecretSources | None = None,
                     connect_to: Mapping[tuple[str, int], tuple[str, int]] | None = None) -> Registry:
        """A registry of records built in code (``Keystore``, ``TrustStoreCert``, ``ProtocolProfile``,
        ``Credential``, ``Alias``), cross-checked like an alias directory.

        ``secrets`` is a ``SecretSource`` that answers every ``SecretRef.from_source(source, name)``,
        or a mapping of source names to sources; ``{"env": ...}`` and ``{"file": ...}`` secrets
        still read the environment and files."""
        return cls(collect_records(records), secrets=secrets, connect_to=connect_to)

    @classmethod
    def empty(cls) -> Registry:
        return cls(AliasRecords({}, {}, {}, {}, {}))

    # --- secrets --------------------------------------------------------------------------

    def reveal_secret(self, secret: SecretRef) -> str:
        """The value of a secret named by this registry's records: every secret a run uses
        (keystore passwords, credentials) is read here, at the moment it is needed."""
        source = None
        if secret.source is not None:
            source = self._secret_sources.get(secret.source, self._default_source)
        return secret.read(source=source)

    def _bind_secrets(self, records: AliasRecords) -> AliasRecords:
        def bind(record: Any) -> Any:
            changes = {field.name: attrs.evolve(value, resolver=self.reveal_secret)
                       for field in attrs.fields(type(record))
                       if isinstance(value := getattr(record, field.name), SecretRef)}
            return attrs.evolve(record, **changes) if changes else record

        return attrs.evolve(records, keystores={n: bind(r) for n, r in records.keystores.items()},
                            credentials={n: bind(r) for n, r in records.credentials.items()})

    # --- lookup ---------------------------------------------------------------------------

    def alias_names(self) -> list[str]:
        return sorted(self.records.aliases)

    def alias(self, name: str) -> Alias:
        alias = self.records.aliases.get(name)
        if alias is None:
            known = sorted(self.records.aliases)
            listing = ", ".join(known) if known else "none (is --aliases pointing at the right directory?)"
            raise UnknownReferenceError(f"no alias named '{name}'{did_you_mean(name, known)}",
                                        hint=f"aliases defined: {listing}")
        return alias

    def connection(self, name: str, env: str | None = None) -> tuple[Alias, Connection, str | None]:
        alias = self.alias(name)
        if alias.SINGLE in alias.connections:
            return alias, alias.connections[alias.SINGLE], None
        chosen = env or alias.default_env
        if chosen is None:
            raise DefinitionError(
                f"alias '{name}' has one connection per environment ({', '.join(alias.environments)}) "
                "and no environment was chosen",
                hint="pass --env NAME, or set default_env on the alias", **alias.origin.location(),
            )
        if chosen not in alias.connections:
            raise DefinitionError(
                f"alias '{name}' has no connection for environment '{chosen}'"
                f"{did_you_mean(chosen, alias.environments)}",
                hint=f"environments: {', '.join(alias.environments)}", **alias.origin.location(),
            )
        return alias, alias.connections[chosen], chosen

    # --- resolution -----------------------------------------------------------------------

    def resolve(self, name: str, env: str | None = None) -> ResolvedConnection:
        alias, connection, chosen = self.connection(name, env)
        resolved = self.resolve_connection(connection, alias=alias.name, env=chosen,
                                           retry_policy=alias.retry_policy)
        if alias.rate_limit is None and alias.concurrency_limit is None:
            return resolved
        return attrs.evolve(resolved, rate_limit=alias.rate_limit, concurrency_limit=alias.concurrency_limit)

    def resolve_connection(self, connection: Connection, *, alias: str = "", env: str | None = None,
                           retry_policy: RetryPolicy = NO_RETRY) -> ResolvedConnection:
        """Resolve a connection that is not (or not yet) an alias: a step's inline connection.
        Its protocol_profile and credential are looked up in this registry."""
        records = self.records
        self._check_connection_references(connection)
        chosen = env
        profile = records.protocol_profiles[connection.protocol_profile] if connection.protocol_profile else None
        if profile is not None and profile.insecure_skip_verify:
            # Before any key material is read: a missing password must not hide the warning.
            self._report_insecure(InsecureUse(alias, profile))
        scheme, host, port, base_path = self.endpoint(connection, profile)
        credential = records.credentials.get(connection.credential) if connection.credential else None
        context: ssl.SSLContext | None = None
        identity: ClientIdentity | None = None
        if scheme == "https":
            context, identity = self.tls(profile)
        signing = self.signing_identity(credential, connection, profile) if credential is not None else None
        if credential is not None and credential.type == "aws_sigv4" and importlib.util.find_spec("botocore") is None:
            raise missing_aws_extra(credential)  # at resolution: validate and alias test say it too
        return ResolvedConnection(
            alias=alias, env=chosen, scheme=scheme, host=host, port=port, base_path=base_path,
            ssl_context=context, credential=credential, retry_policy=retry_policy,
            connect_timeout_s=connection.connect_timeout_s or min(connection.timeout_s, 10.0),
            read_timeout_s=connection.timeout_s, headers=dict(connection.headers), profile=profile,
            client_identity=identity, insecure=bool(profile and profile.insecure_skip_verify),
            connect_to=self.connect_to, proxy=self._proxy_for(connection),
            trusted_origins=frozenset(o for o in map(web_origin, connection.trusted_origins) if o is not None),
            signing_identity=signing,
        )

    def signing_identity(self, credential: Credential, connection: Connection,
                         profile: ProtocolProfile | None) -> ClientIdentity | None:
        """The identity a credential signs JWT assertions with: its ``keystore``, else the
        connection's mutual TLS keystore; None for credentials that sign nothing."""
        if credential.type not in SIGNED_JWT_TYPES or credential.assertion is not None:
            return None
        name = credential.keystore or (profile.keystore if profile is not None and connection.mutual_authentication
                                       else None)
        if name is None:
            raise SchemaError(f"credential '{credential.name}' ({credential.type}) signs its assertion with a "
                              "keystore, and names none while the connection has no mutual TLS keystore",
                              hint='add "keystore": "<keystore record name>" to the credential',
                              **credential.origin.location())
        keystore = self.records.keystores[name]
        _, load = identity_for(keystore, self._cache, self.records.trust_store_certs)
        try:
            identity = load()
        except KeyMaterialError as error:
            raise place(error, keystore.origin, f"keystore '{name}'") from None
        from flowrun._tls._jwt import algorithm_for

        algorithm_for(credential, identity)  # a key that cannot sign as asked fails here, not at the partner
        return identity

    def proxy_rules(self, connection: Connection) -> ProxyRules:
        """The connection's ``proxy``, else what HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY say now
        (in ``environ`` when the registry was given one, else the process environment)."""
        if connection.proxy is not None:
            return connection.proxy.rules()
        return rules_from_environment(os.environ if self._environ is None else self._environ)

    def _proxy_for(self, connection: Connection) -> ProxyRules:
        rules = self.proxy_rules(connection)
        if rules.any and self.connect_to:
            rules = attrs.evolve(rules, connect_to=tuple(sorted(self.connect_to.items())))
        return rules

    def _report_insecure(self, use: InsecureUse) -> None:
        key = (use.alias, use.profile.name)
        with self._insecure_lock:
            if key in self._insecure_reported:
                return
            self._insecure_reported.add(key)
        listener = self.on_insecure
        if listener is not None:
            listener(use)
        else:
            _LOG.warning("flowrun: warning: %s; %s", use.message, use.hint)

    def insecure_profile(self, alias: str | None, connection: Connection | None = None,
                         env: str | None = None) -> ProtocolProfile | None:
        """The protocol profile with ``insecure_skip_verify`` that a step's alias (or inline
        connection) goes through, else None. Never raises: an unknown name is the step's error."""
        if connection is None:
            if alias is None:
                return None
            try:
                _, connection, _ = self.connection(alias, env)
            except DefinitionError:
                return None
        if not connection.protocol_profile:
            return None
        profile = self.records.protocol_profiles.get(connection.protocol_profile)
        return profile if profile is not None and profile.insecure_skip_verify else None

    @staticmethod
    def endpoint(connection: Connection, profile: ProtocolProfile | None) -> tuple[str, str, int, str]:
        """The port rule: an explicit connection port wins; else the port of the protocol profile
        the connection names (with mutual authentication, or trust-only); else the scheme's default."""
        explicit = Registry.explicit_port(connection)
        if connection.url_builder:
            scheme: str = connection.protocol
            host = connection.host or ""
            base_path = connection.base_path
        else:
            parts = urllib.parse.urlsplit(connection.url or "")
            scheme = parts.scheme.lower()
            host = parts.hostname or ""
            base_path = parts.path
            if not host:
                raise DefinitionError(f"url {connection.url!r} has no host", **connection.origin.location())
        if explicit is not None:
            port = explicit
        elif profile is not None:
            port = profile.port
        else:
            port = _DEFAULT_PORTS[scheme]
        base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        return scheme, host, port, base_path

    @staticmethod
    def explicit_port(connection: Connection) -> int | None:
        """The port the connection itself names ("override default port"), if any."""
        if connection.url_builder:
            return connection.port
        try:
            return urllib.parse.urlsplit(connection.url or "").port
        except ValueError:
            raise DefinitionError(f"invalid port in url {connection.url!r}",
                                  **connection.origin.location()) from None

    def ssl_context(self, profile: ProtocolProfile | None) -> tuple[ssl.SSLContext, tuple[x509.Certificate, ...]]:
        """The context for a profile (or the default one for plain https), built once per content,
        and the chain it presents."""
        context, identity = self.tls(profile)
        return context, identity.chain if identity is not None else ()

    def tls(self, profile: ProtocolProfile | None) -> tuple[ssl.SSLContext, ClientIdentity | None]:
        """The context for a profile (or the default one for plain https), built once per content,
        and the identity it presents (certificates not decoded: see ``ClientIdentity``)."""
        if profile is None:
            return self._cache.context(None, None, (), tuple, TlsSettings()), None
        settings = TlsSettings(versions=profile.tls_versions, use_system_trust=profile.use_system_trust,
                               verify=not profile.insecure_skip_verify)
        identity_key, identity = (identity_for(self.records.keystores[profile.keystore], self._cache,
                                               self.records.trust_store_certs)
                                  if profile.keystore is not None else (None, None))
        trust_digests, trust = trust_der_for(
            [self.records.trust_store_certs[name] for name in profile.trust_store_certs], self._cache)
        try:
            context = self._cache.context(identity_key, identity, trust_digests, trust, settings)
        except TrustCertError as error:
            raise place(error, profile.origin, f"protocol profile '{profile.name}'") from None
        except KeyMaterialError as error:
            if profile.keystore is None:
                raise
            raise place(error, self.records.keystores[profile.keystore].origin,
                        f"keystore '{profile.keystore}'") from None
        return context, identity() if identity is not None else None

    def anonymous_ssl_context(self, profile: ProtocolProfile | None) -> ssl.SSLContext:
        """The profile's trust and TLS settings without its keystore: for requests that must not
        present our client certificate (a redirect to another origin)."""
        if profile is None or profile.keystore is None:
            return self.ssl_context(profile)[0]
        settings = TlsSettings(versions=profile.tls_versions, use_system_trust=profile.use_system_trust,
                               verify=not profile.insecure_skip_verify)
        trust_digests, trust = trust_der_for(
            [self.records.trust_store_certs[name] for name in profile.trust_store_certs], self._cache)
        try:
            return self._cache.context(None, None, trust_digests, trust, settings)
        except TrustCertError as error:
            raise place(error, profile.origin, f"protocol profile '{profile.name}'") from None

    def identity(self, keystore_name: str) -> ClientIdentity:
        _, load = identity_for(self.records.keystores[keystore_name], self._cache, self.records.trust_store_certs)
        return load()

    def trust_certificates(self, profile: ProtocolProfile) -> tuple[x509.Certificate, ...]:
        _, load = trust_for([self.records.trust_store_certs[n] for n in profile.trust_store_certs], self._cache)
        return load()

    def trust_store_cert(self, name: str) -> tuple[x509.Certificate, ...]:
        """The certificates of one trust store cert record."""
        _, load = trust_for([self.records.trust_store_certs[name]], self._cache)
        return load()

    # --- cross-checks ---------------------------------------------------------------------

    def _check_connection_references(self, connection: Connection, *, origins: bool = True) -> None:
        records = self.records
        if connection.protocol_profile and connection.protocol_profile not in records.protocol_profiles:
            raise _unknown("protocol_profile", connection.protocol_profile, records.protocol_profiles,
                           connection.origin.child("protocol_profile"), "protocol_profile")
        profile = records.protocol_profiles.get(connection.protocol_profile or "")
        if profile is not None and profile.keystore is not None and not connection.mutual_authentication:
            # The guard against a certificate silently not sent: a profile with a keystore is for mTLS.
            raise SchemaError(
                f"protocol_profile '{profile.name}' holds keystore '{profile.keystore}' but mutual_authentication "
                "is off: the client certificate would not be sent",
                hint='set "mutual_authentication": true; to trust the profile\'s certificates without sending one, '
                     "name a protocol profile without a keystore (a trust-only profile)",
                **connection.origin.location())
        if profile is not None and profile.keystore is None and connection.mutual_authentication:
            raise SchemaError(
                f"mutual_authentication is on but protocol_profile '{profile.name}' has no keystore: "
                "no client certificate would be sent",
                hint=f"add \"keystore\" to protocol profile '{profile.name}', or set \"mutual_authentication\": false "
                     "to use it for trust only", **connection.origin.location())
        if connection.credential and connection.credential not in records.credentials:
            raise _unknown("credential", connection.credential, records.credentials,
                           connection.origin.child("credential"), "credential")
        problem = self.plain_http_credential(connection) if origins else None
        if problem is not None:
            raise problem

    def plain_http_credential(self, connection: Connection) -> SchemaError | None:
        """The error for a connection that would send its credential over plain http, else None."""
        credential = self.records.credentials.get(connection.credential) if connection.credential else None
        if credential is None:
            return None
        scheme = (connection.protocol if connection.url_builder
                  else urllib.parse.urlsplit(connection.url or "").scheme.lower())
        if not credential_over_http(credential.type, scheme):
            return None
        return SchemaError(
            f"credential '{credential.name}' ({credential.type}) is used on a plain http connection: "
            "the secret would travel in clear text",
            hint="use the partner's https:// URL (or protocol https); flowrun never sends a credential over http",
            **connection.origin.child("credential").location())

    def origin_problems(self) -> list[SchemaError]:
        """Every alias connection that would send a credential over plain http (for ``validate``)."""
        return [problem for alias in self.records.aliases.values() for connection in alias.connections.values()
                if (problem := self.plain_http_credential(connection)) is not None]

    def _check_references(self, check_origins: bool) -> None:
        records = self.records
        for keystore in records.keystores.values():
            for index, item in enumerate(keystore.chain_certs):
                if isinstance(item, str) and item not in records.trust_store_certs:
                    error = _unknown("trust_store_cert", item, records.trust_store_certs,
                                     keystore.origin.child("chain_certs", index), "chain_certs")
                    error.hint += ("; a file is named with a folder part or a certificate suffix "
                                   "(./intermediate.pem)")
                    raise error
        for credential in records.credentials.values():
            if credential.keystore is not None and credential.keystore not in records.keystores:
                raise _unknown("keystore", credential.keystore, records.keystores,
                               credential.origin.child("keystore"), "keystore")
        for profile in records.protocol_profiles.values():
            if profile.keystore is not None and profile.keystore not in records.keystores:
                raise _unknown("keystore", profile.keystore, records.keystores, profile.origin.child("keystore"),
                               "keystore")
            for index, name in enumerate(profile.trust_store_certs):
                if name not in records.trust_store_certs:
                    raise _unknown("trust_store_cert", name, records.trust_store_certs,
                                   profile.origin.child("trust_store_certs", index), "trust_store_certs")
        for alias in records.aliases.values():
            for connection in alias.connections.values():
                self._check_connection_references(connection, origins=check_origins)
                scheme = (connection.protocol if connection.url_builder
                          else urllib.parse.urlsplit(connection.url or "").scheme.lower())
                if connection.mutual_authentication and scheme != "https":
                    # Plain http has no handshake: the client certificate would silently not be sent.
                    raise DefinitionError("mutual_authentication needs https: over http no client certificate "
                                          "is sent", hint="use an https:// URL (or protocol https)",
                                          **connection.origin.location())
                if connection.protocol_profile and scheme != "https":
                    raise DefinitionError(f"protocol_profile '{connection.protocol_profile}' needs https: over "
                                          "http there is no certificate to trust",
                                          hint="use an https:// URL (or protocol https), or remove protocol_profile",
                                          **connection.origin.location())


def _secret_sources(secrets: SecretSources | None) -> tuple[SecretSource | None, dict[str, SecretSource]]:
    if secrets is None:
        return None, {}
    if isinstance(secrets, SecretSource):
        return secrets, {}
    if not isinstance(secrets, Mapping):
        raise TypeError("secrets must be a SecretSource (an object with get_secret(name)) or a mapping of "
                        f"source names to them, not {type(secrets).__name__}")
    for name, source in secrets.items():
        if not isinstance(source, SecretSource):
            raise TypeError(f"secret source '{name}' has no get_secret(name) method ({type(source).__name__})")
    return None, dict(secrets)


def add_proxy_credentials(secrets: Secrets, proxy: ProxyRules) -> None:
    """Register the proxies' credentials in ``secrets``: they go out in Proxy-Authorization, and
    are masked like every other secret (a proxy's error page may quote the request it got)."""
    for username, password in proxy.credentials():
        try:
            value = password.reveal()
        except FlowrunError:
            continue  # building the proxied client reports it, with its own message
        secrets.basic(username, value)


class RegistryUser:
    """What every executor does with its registry: the one given, else the alias directory of
    ``FLOWRUN_ALIASES`` (default ``./aliases``) loaded on first use; a step's inline connection
    needs no alias directory at all.

    ``secrets`` holds every value the executor sent as a secret (``flowrun._models._redact``);
    executors that report together (a runner's, a command's) share one."""

    def __init__(self, registry: Registry | None = None, *, env: str | None = None,
                 secrets: Secrets | None = None) -> None:
        self._registry = registry
        self.env = env
        self.secrets = secrets if secrets is not None else Secrets()

    def masked(self, result: StepResult) -> StepResult:
        """``result`` with the secrets this executor sent masked in its errors (in place, so that
        ``str(error)`` is clean for embedders too), and ``to_dict`` masking its data. Only failures
        carry messages worth masking: the success path costs one attribute set."""
        # A frozen record's field set once, right after construction, before anyone else sees it.
        object.__setattr__(result, "secrets", self.secrets)
        if result.error is not None:
            self.secrets.mask_error(result.error)
        for attempt in result.attempts:
            if attempt.error is not None and attempt.error is not result.error:
                self.secrets.mask_error(attempt.error)
        if result.status == "failed" and result.assertions and len(self.secrets):
            mask = self.secrets.mask_data
            result = attrs.evolve(result, secrets=self.secrets, assertions=tuple(
                attrs.evolve(outcome, message=self.secrets.mask(outcome.message), expected=mask(outcome.expected),
                             actual=mask(outcome.actual)) for outcome in result.assertions))
        return result

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry.load()
        return self._registry

    @property
    def records_registry(self) -> Registry:
        """For inline connections: the registry given (its profiles and credentials), else none."""
        return self._registry if self._registry is not None else Registry.empty()

    def resolve_step(self, alias: str | None, connection: Connection | None) -> ResolvedConnection:
        if connection is not None:
            resolved = self.records_registry.resolve_connection(connection, env=self.env)
        else:
            assert alias is not None
            resolved = self.registry.resolve(alias, self.env)
        add_proxy_credentials(self.secrets, resolved.proxy)
        return resolved

