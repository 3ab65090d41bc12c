"""``flowrun alias list | show NAME | test NAME``: the Connection & Credential aliases of a directory.

``list`` and ``show`` read the records only (no key material, no network); ``show`` names each
secret by its reference and says whether it is available, never its value. ``test`` resolves the
alias, builds its SSL context, shakes hands with the partner and sends one lightweight request,
then reports what happened on the wire or the precise cause of the failure.
Output shapes (text and ``--json``) are documented in ``docs/aliases.md``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowrun._cli._common import add_aliases_option, add_env_option, aliases_dir, days_left, iso_utc, load_registry
from flowrun._cli._flow_options import add_connect_to_option, connect_to_mapping
from flowrun._cli._output import Console
from flowrun._errors import FlowrunError, UsageError
from flowrun._load._paths import is_file
from flowrun._models._aliases import Alias, Connection, Credential, Keystore, ProtocolProfile, RetryPolicy
from flowrun._models._redact import is_credential_header
from flowrun._models._secret import SecretRef
from flowrun._registry import Registry, ResolvedConnection, add_proxy_credentials, base_url

__all__ = ["describe_secret", "register", "run_list", "run_show", "run_test"]

_LABEL_WIDTH = 20
_METHODS = ("HEAD", "GET", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")


def register(subparsers: Any, name: str, summary: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=summary, description=summary)
    commands = parser.add_subparsers(dest="alias_command", metavar="SUBCOMMAND", parser_class=type(parser))

    listing = commands.add_parser("list", help="list the aliases with their URL, profile and credential",
                                  description="List the aliases of the alias directory (records only).")
    add_aliases_option(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=run_list)

    show = commands.add_parser(
        "show", help="show how an alias resolves (secrets shown by reference only)",
        description="Show an alias as it resolves: URL after the port rule, protocol profile, keystore, "
        "trust store certs, credential, timeouts, retry policy. Secrets appear as their reference "
        "(env NAME, file PATH) with whether they are available, never as values. Offline.",
    )
    show.add_argument("name", metavar="NAME")
    add_aliases_option(show)
    add_env_option(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=run_show)

    test = commands.add_parser(
        "test", help="connect through an alias: handshake, one request, precise cause on failure",
        description="Resolve the alias, build its SSL context, connect, shake hands and send one "
        "lightweight request (default HEAD of the base path). Reports the TLS version and cipher, the "
        "server's chain, the client certificate actually sent, and the HTTP status; on failure the "
        "precise cause with a hint. Any HTTP status after a good handshake counts as success, except "
        "nginx's answers that refuse the client certificate (its 400 pages, 495, 496).",
        epilog="Exit codes: 0 the request got an HTTP status back, 1 connection or TLS failure, "
        "2 bad usage, bad definitions or unusable key material.",
    )
    test.add_argument("name", metavar="NAME")
    add_aliases_option(test)
    add_env_option(test)
    test.add_argument("--path", metavar="P", default=None,
                      help="path relative to the alias's base path (default: the base path itself)")
    test.add_argument("--method", metavar="M", type=str.upper, choices=_METHODS, default="HEAD",
                      help="HTTP method (default HEAD)")
    test.add_argument("--timeout", metavar="S", type=_seconds, default=None,
                      help="connect and read timeout in seconds (default: the connection's)")
    add_connect_to_option(test)
    test.add_argument("--json", action="store_true", help="print JSON")
    test.set_defaults(handler=run_test)

    def missing_subcommand(args: argparse.Namespace, console: Console) -> int:
        raise UsageError(f"flowrun {name}: choose a sub-command (list, show, test)",
                         hint=f"see `flowrun {name} --help`")

    parser.set_defaults(handler=missing_subcommand)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("the timeout must be more than 0 and at most 3600 seconds")
    return value


# --- list -------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace, console: Console) -> int:
    registry = load_registry(args)
    listing: list[dict[str, Any]] = [
        {"name": alias.name, "description": alias.description or None, "default_env": alias.default_env,
         "connections": [_connection_summary(registry, alias, env, connection)
                         for env, connection in alias.connections.items()]}
        for alias in (registry.alias(name) for name in registry.alias_names())
    ]
    if args.json:
        console.print_json({"aliases": listing})
        return 0
    if not listing:
        console.print("no aliases defined")
        return 0
    table = [["ALIAS", "ENV", "URL", "MUTUAL TLS", "CREDENTIAL"]]
    for entry in listing:
        for row in entry["connections"]:
            env = row["env"] or "-"
            if env == entry["default_env"]:
                env += " (default)"
            credential = f"{row['credential']} ({row['credential_type']})" if row["credential"] else "-"
            mutual = row["protocol_profile"] if row["mutual_authentication"] else (
                f"off (trusts {row['protocol_profile']})" if row["protocol_profile"] else "off")
            table.append([entry["name"], env, row["url"], mutual, credential])
    _print_table(console, table)
    return 0


def _connection_summary(registry: Registry, alias: Alias, env: str, connection: Connection) -> dict[str, Any]:
    profile = _profile(registry, connection)
    credential = registry.records.credentials.get(connection.credential or "")
    return {
        "alias": alias.name,
        "env": env or None,
        "url": _base_url(connection, profile),
        "mutual_authentication": connection.mutual_authentication,
        "protocol_profile": connection.protocol_profile,
        "credential": connection.credential,
        "credential_type": credential.type if credential is not None else None,
    }


def _print_table(console: Console, rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        console.print(console.style(line, "bold") if index == 0 else line)


# --- show -------------------------------------------------------------------------------------


def run_show(args: argparse.Namespace, console: Console) -> int:
    registry = load_registry(args)
    alias = registry.alias(args.name)
    if args.env is not None or alias.default_env is not None or Alias.SINGLE in alias.connections:
        _, _, chosen = registry.connection(alias.name, args.env)
        envs = [chosen or Alias.SINGLE]
    else:
        envs = list(alias.connections)
    view = show_json(registry, alias, envs)
    if args.json:
        console.print_json(view)
    else:
        _print_show(console, view)
    return 0


def show_json(registry: Registry, alias: Alias, envs: Sequence[str]) -> dict[str, Any]:
    """The resolved view of ``alias`` for the environments ``envs`` (no key material is read)."""
    return {
        "name": alias.name,
        "description": alias.description or None,
        "defined_at": _where(alias.origin.file, alias.origin.line),
        "default_env": alias.default_env,
        "environments": list(alias.environments),
        "connections": [_connection_view(registry, env, alias.connections[env]) for env in envs],
        "retry_policy": _retry_view(alias.retry_policy),
        "rate_limit": ({"per_second": alias.rate_limit.per_second, "burst": alias.rate_limit.burst}
                       if alias.rate_limit is not None else None),
        "concurrency_limit": ({"max_in_flight": alias.concurrency_limit.max_in_flight,
                               "wait_s": alias.concurrency_limit.wait_s}
                              if alias.concurrency_limit is not None else None),
    }


def _connection_view(registry: Registry, env: str, connection: Connection) -> dict[str, Any]:
    profile = _profile(registry, connection)
    scheme, host, port, base_path = Registry.endpoint(connection, profile)
    credential = registry.records.credentials.get(connection.credential or "")
    connect_timeout = connection.connect_timeout_s or min(connection.timeout_s, 10.0)
    return {
        "env": env or None,
        "url": base_url(scheme, host, port, base_path),
        "scheme": scheme,
        "host": host,
        "port": port,
        "port_from": _port_source(connection, profile),
        "base_path": base_path,
        "mutual_authentication": connection.mutual_authentication,
        "protocol_profile": _profile_view(registry, profile) if profile is not None else None,
        "credential": _credential_view(credential) if credential is not None else None,
        "timeouts": {"connect_s": connect_timeout, "read_s": connection.timeout_s},
        "headers": {name: _header_value(name, value) for name, value in connection.headers.items()},
        "trusted_origins": list(connection.trusted_origins),
        "proxy": _proxy_view(registry, connection, scheme, host, port),
    }


def _proxy_view(registry: Registry, connection: Connection, scheme: str, host: str, port: int) -> dict[str, Any]:
    """The proxy requests to the connection's URL go through now (the environment as it is),
    and why; credentials by reference only."""
    rules = registry.proxy_rules(connection)
    endpoint = rules.for_url(scheme, host, port)
    view: dict[str, Any] = {"source": rules.source, "url": endpoint.url if endpoint is not None else None,
                            "from": endpoint.source if endpoint is not None else None}
    if endpoint is None and rules.any:
        view["bypassed_by"] = rules.bypass_entry(host, port)
        view["no_proxy_from"] = rules.no_proxy_source or "the connection's proxy no_proxy"
    if connection.proxy is not None and connection.proxy.username is not None:
        view["username"] = connection.proxy.username
        view["password"] = describe_secret(connection.proxy.password)
    elif endpoint is not None and endpoint.username is not None:
        view["credentials"] = f"in {endpoint.source} (hidden)"
    return view


def _proxy_words(view: dict[str, Any]) -> str:
    """One line for ``alias show``: the proxy in use and where it comes from, never credentials."""
    if view["url"] is not None:
        origin = "the connection's proxy" if view["from"] == "connection" else view["from"]
        return f"{view['url']} (from {origin})"
    if view.get("bypassed_by") is not None:
        return f"none: {view['no_proxy_from']} entry '{view['bypassed_by']}' matches"
    if view["source"] == "connection":
        return 'none (the connection\'s proxy is "none")'
    if view["source"] == "environment":
        return "none (no proxy variable for this scheme)"
    return "none (no proxy variable is set)"


def _profile_view(registry: Registry, profile: ProtocolProfile) -> dict[str, Any]:
    keystore = registry.records.keystores.get(profile.keystore or "")
    trust = [registry.records.trust_store_certs[name] for name in profile.trust_store_certs]
    return {
        "name": profile.name,
        "trust_only": profile.trust_only,
        "port": profile.port,
        "tls_versions": list(profile.tls_versions),
        "use_system_trust": profile.use_system_trust,
        "insecure_skip_verify": profile.insecure_skip_verify,
        "keystore": _keystore_view(keystore) if keystore is not None else None,
        "trust_store_certs": [
            {"name": t.name, "format": t.format, "file": _path_or_none(t.file),
             "file_exists": is_file(t.file) if t.file is not None else None, "inline_pem": t.pem is not None}
            for t in trust
        ],
    }


def _keystore_view(keystore: Keystore) -> dict[str, Any]:
    return {
        "name": keystore.name,
        "type": keystore.type or "detected from content",
        "file": str(keystore.file),
        "file_exists": is_file(keystore.file),
        "key_file": _path_or_none(keystore.key_file),
        "password": describe_secret(keystore.password),
        "key_alias": keystore.key_alias,
        "key_password": (describe_secret(keystore.key_password) if keystore.key_password is not None
                         else "the store password"),
        "chain_certs": [str(item) for item in keystore.chain_certs],
    }


_CREDENTIAL_FIELDS = ("username", "header", "query", "prefix", "token_url", "client_id", "scope", "audience",
                      "client_auth")
_CREDENTIAL_SECRETS = ("password", "token", "key", "client_secret", "assertion", "access_key_id",
                       "secret_access_key", "session_token")
_SIGNING_FIELDS = ("keystore", "kid", "algorithm", "assertion_audience")
# Fields with defaults shown only for the types they belong to.
_TYPE_FIELDS = {
    "oauth2_private_key_jwt": _SIGNING_FIELDS,
    "oauth2_jwt_bearer": ("issuer", "subject", *_SIGNING_FIELDS),
    "hmac": ("algorithm", "key_id", "canonical", "header_format", "date_header", "date_format", "encoding",
             "key_encoding"),
    "aws_sigv4": ("service", "region"),
}


def _credential_view(credential: Credential) -> dict[str, Any]:
    view: dict[str, Any] = {"name": credential.name, "type": credential.type}
    for field in (*_CREDENTIAL_FIELDS, *_TYPE_FIELDS.get(credential.type, ())):
        value = getattr(credential, field)
        if value and not (field == "client_auth" and credential.client_secret is None):
            view[field] = value
    for field in _CREDENTIAL_SECRETS:
        secret: SecretRef | None = getattr(credential, field)
        if secret is not None:
            view[field] = describe_secret(secret)
    return view


def _retry_view(policy: RetryPolicy) -> dict[str, Any]:
    if policy.strategy == "none":
        return {"strategy": "none"}
    return {"strategy": policy.strategy, "count": policy.count, "interval_s": policy.interval_s,
            "max_interval_s": policy.max_interval_s, "max_elapsed_s": policy.max_elapsed_s,
            "on_status": list(policy.on_status), "on_transport_errors": policy.on_transport_errors,
            "retry_non_idempotent": policy.retry_non_idempotent}


def _header_value(name: str, value: str) -> str:
    # Headers are plain strings in the records; some people put credentials there anyway.
    if is_credential_header(name):
        return "(hidden: may hold a credential)"
    return value


def describe_secret(secret: SecretRef | None) -> str:
    """A secret by its reference and availability, e.g. ``env BANK_API_KEY (set)``; never its value."""
    if secret is None:
        return "none"
    if secret.env is not None:
        return f"env {secret.env} ({'set' if secret.env in os.environ else 'not set'})"
    if secret.file is not None:
        state = "readable" if is_file(secret.file) and os.access(secret.file, os.R_OK) else "not readable"
        return f"file {secret.file} ({state})"
    if secret.name is not None:
        return f"{secret.describe()} (read in Python through Registry(..., secrets=...))"
    return "a literal value in the alias file (move it to an environment variable or a file)"


def _path_or_none(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _missing(path: str | None) -> str:
    return " (missing)" if path is not None and not is_file(Path(path)) else ""


def _where(file: Any, line: int | None) -> str | None:
    if file is None:
        return None
    return f"{file}:{line}" if line is not None else str(file)


def _profile(registry: Registry, connection: Connection) -> ProtocolProfile | None:
    if connection.protocol_profile:
        return registry.records.protocol_profiles[connection.protocol_profile]
    return None


def _base_url(connection: Connection, profile: ProtocolProfile | None) -> str:
    return base_url(*Registry.endpoint(connection, profile))


def _port_source(connection: Connection, profile: ProtocolProfile | None) -> str:
    if Registry.explicit_port(connection) is not None:
        return "connection"
    if profile is not None:
        return f"protocol_profile {profile.name}"
    return "scheme default"


def _port_words(connection: dict[str, Any]) -> str:
    source: str = connection["port_from"]
    if source == "connection":
        return "from the connection"
    if source.startswith("protocol_profile "):
        return f"from protocol profile {source.split(' ', 1)[1]}"
    return f"default for {connection['scheme']}"


def _print_show(console: Console, view: dict[str, Any]) -> None:
    head = f"alias {console.style(view['name'], 'bold')}"
    console.print(head + (f"  ({view['defined_at']})" if view["defined_at"] else ""))
    if view["description"]:
        console.print(f"  {view['description']}")
    if view["environments"]:
        default = f", default {view['default_env']}" if view["default_env"] else ""
        console.print(f"  environments: {', '.join(view['environments'])}{default}")
    for connection in view["connections"]:
        title = f"connection [{connection['env']}]" if connection["env"] else "connection"
        console.print(f"  {console.style(title, 'bold')}")
        _field(console, "url", f"{connection['url']}  (port {connection['port']} {_port_words(connection)})")
        _field(console, "timeouts", f"connect {connection['timeouts']['connect_s']:g} s, "
               f"read {connection['timeouts']['read_s']:g} s")
        for header, value in connection["headers"].items():
            _field(console, "header", f"{header}: {value}")
        # Who else gets the credential and client certificate (the origin rule).
        _field(console, "credential for", ", ".join([f"{connection['scheme']}://{connection['host']}:"
                                                         f"{connection['port']}", *connection["trusted_origins"]]))
        _field(console, "proxy", _proxy_words(connection["proxy"]))
        if "password" in connection["proxy"]:
            _field(console, "proxy user", connection["proxy"]["username"], indent=6)
            _field(console, "proxy password", connection["proxy"]["password"], indent=6)
        profile = connection["protocol_profile"]
        if profile is None:
            _field(console, "mutual TLS", "off (no client certificate is sent)")
        elif not connection["mutual_authentication"]:
            _field(console, "mutual TLS", "off (no client certificate is sent)")
            _field(console, "trust", f"trust-only protocol profile {profile['name']} (port {profile['port']})")
        else:
            _field(console, "mutual TLS", f"on, protocol profile {profile['name']} (port {profile['port']})")
        if profile is not None:
            _field(console, "TLS versions", ", ".join(profile["tls_versions"]), indent=6)
            trust = "system CAs and the trust store certs" if profile["use_system_trust"] else \
                "the trust store certs only"
            _field(console, "trusts", trust, indent=6)
            if profile["insecure_skip_verify"]:
                _field(console, "INSECURE", "the partner's certificate is NOT verified", indent=6)
            keystore = profile["keystore"]
            if keystore is not None:
                _field(console, "keystore", f"{keystore['name']} ({keystore['type']}) {keystore['file']}"
                       f"{_missing(keystore['file'])}", indent=6)
                if keystore["key_file"]:
                    _field(console, "key file", keystore["key_file"] + _missing(keystore["key_file"]), indent=8)
                _field(console, "password", keystore["password"], indent=8)
                _field(console, "key alias", keystore["key_alias"] or "the only private key entry", indent=8)
                _field(console, "key password", keystore["key_password"], indent=8)
                for chain_cert in keystore["chain_certs"]:
                    is_path = Path(chain_cert).is_absolute()
                    _field(console, "chain cert", chain_cert + (_missing(chain_cert) if is_path else ""), indent=8)
            for trust_cert in profile["trust_store_certs"]:
                where = trust_cert["file"] + _missing(trust_cert["file"]) if trust_cert["file"] else "inline PEM"
                _field(console, "trust cert", f"{trust_cert['name']} ({trust_cert['format']}) {where}", indent=6)
        credential = connection["credential"]
        if credential is None:
            _field(console, "credential", "none")
        else:
            _field(console, "credential", f"{credential['name']} ({credential['type']})")
            for key, value in credential.items():
                if key not in ("name", "type"):
                    _field(console, key.replace("_", " "), str(value), indent=6)
    retry = view["retry_policy"]
    if retry["strategy"] == "none":
        _field(console, "retry policy", "none", indent=2)
    else:
        statuses = ", ".join(str(s) for s in retry["on_status"]) or "none"
        _field(console, "retry policy", f"{retry['strategy']}, {retry['count']} retries, interval "
               f"{retry['interval_s']:g} s, on status {statuses}", indent=2)
    rate = view.get("rate_limit")
    _field(console, "rate limit", "none" if rate is None else
           f"{rate['per_second']:g} requests/s, burst {rate['burst']}", indent=2)
    cap = view.get("concurrency_limit")
    if cap is not None:
        _field(console, "concurrency limit", f"{cap['max_in_flight']} in flight, a request waits up to "
               f"{cap['wait_s']:g} s for a slot", indent=2)


def _field(console: Console, label: str, value: str, *, indent: int = 4) -> None:
    console.print(f"{' ' * indent}{label.ljust(_LABEL_WIDTH - indent)}  {value}")


# --- test -------------------------------------------------------------------------------------


def run_test(args: argparse.Namespace, console: Console) -> int:
    from flowrun._transport._probe import probe

    try:
        registry = Registry.load(aliases_dir(args), connect_to=connect_to_mapping(args.connect_to))
        resolved = registry.resolve(args.name, args.env)
    except FlowrunError as error:
        if not args.json:
            raise
        console.print_json({"alias": args.name, "env": args.env, "ok": False, "error": error.to_dict()})
        return error.exit_code
    # The probe sends the alias's own headers: credential-looking ones are masked in what it prints.
    console.secrets.add_all(value for name, value in resolved.headers.items() if is_credential_header(name))
    add_proxy_credentials(console.secrets, resolved.proxy)
    result = probe(resolved, path=args.path, method=args.method, timeout_s=args.timeout)
    token = _token_call(registry, resolved, console) if result.error is None else None
    if args.json:
        console.print_json({**test_json(resolved, result), "token": _token_json(token)})
    else:
        _print_test(console, resolved, result)
        _print_token(console, token)
    return 0 if result.ok and (token is None or token.ok) else 1


def _token_call(registry: Registry, resolved: ResolvedConnection, console: Console) -> Any:
    """The OAuth2 token call of the alias's credential, over the client the steps would use."""
    from flowrun._transport._auth import check_token

    credential = resolved.credential
    if credential is None or credential.token_url is None or resolved.ssl_context is None:
        return None
    trusted = resolved.origin_rule.trusts_url(credential.token_url)
    context = (resolved.ssl_context if trusted or resolved.client_certificate is None
               else registry.anonymous_ssl_context(resolved.profile))
    return check_token(resolved, context, with_certificate=trusted and resolved.client_certificate is not None,
                       secrets=console.secrets)


def _token_json(token: Any) -> dict[str, Any] | None:
    if token is None:
        return None
    return {"url": token.url, "ok": token.ok, "client_certificate": token.with_certificate,
            "expires_in_s": token.expires_in_s, "error": token.error.to_dict() if token.error is not None else None}


def _print_token(console: Console, token: Any) -> None:
    if token is None:
        return
    certificate = "with our client certificate" if token.with_certificate else "without a client certificate"
    _field(console, "token call", f"POST {token.url} ({certificate})", indent=2)
    if token.ok:
        lifetime = f", expires in {token.expires_in_s:g} s" if token.expires_in_s is not None else ""
        console.print(console.style(f"ok: a token was issued{lifetime}", "green", "bold"))
        return
    console.print(f"{console.style(f'FAILED [{token.error.code}]', 'red', 'bold')}: {token.error.message}")
    if token.error.hint:
        console.print(f"  {console.style('hint', 'cyan')}: {token.error.hint}")


def test_json(resolved: ResolvedConnection, result: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "alias": resolved.alias,
        "env": resolved.env,
        "url": result.url,
        "method": result.method,
        "dialled": _dialled(resolved),
        "ok": result.ok,
        "insecure": resolved.insecure,
        "tls": ({"version": result.tls_version, "cipher": result.cipher}
                if result.tls_version is not None else None),
        "server_chain": [_cert_json(c, now) for c in result.server_chain],
        "server_chain_source": result.server_chain_source,
        "client_certificate": {
            "configured": _cert_json_x509(resolved, now),
            "requested": result.client_cert_requested,
            "sent": _cert_json(result.client_cert_sent, now) if result.client_cert_sent is not None else None,
            "outcome": result.client_cert_outcome,
            "observed": result.handshake_observed,
        },
        "http_status": result.status,
        "proxy": _proxy_json(resolved, result.url),
        "error": result.error.to_dict() if result.error is not None else None,
    }


def _dialled(resolved: ResolvedConnection) -> dict[str, Any] | None:
    """The address --connect-to dials instead of the alias's host and port."""
    target = resolved.connect_to.get((resolved.host.lower(), resolved.port))
    return {"host": target[0], "port": target[1]} if target is not None else None


def _proxy_json(resolved: ResolvedConnection, url: str) -> dict[str, Any] | None:
    from flowrun._transport._proxy import proxy_for_url

    endpoint = proxy_for_url(resolved.proxy, url)
    if endpoint is None:
        return None
    return {"url": endpoint.url, "from": endpoint.source, "authenticated": endpoint.username is not None}


def _cert_json(cert: Any, now: datetime) -> dict[str, Any]:
    return {"subject": cert.subject, "issuer": cert.issuer, "not_after": iso_utc(cert.not_after),
            "days_left": days_left(cert.not_after, now), "sha256": cert.sha256}


def _cert_json_x509(resolved: ResolvedConnection, now: datetime) -> dict[str, Any] | None:
    leaf = resolved.client_certificate
    if leaf is None:
        return None
    return {"subject": leaf.subject.rfc4514_string(), "issuer": leaf.issuer.rfc4514_string(),
            "not_after": iso_utc(leaf.not_valid_after_utc), "days_left": days_left(leaf.not_valid_after_utc, now),
            "sha256": resolved.client_cert_sha256}


_CHAIN_SOURCES = {
    "handshake": "as the server sent it",
    "verified_chain": "as verified (the handshake messages could not be observed on this Python)",
    "leaf_only": "leaf only: this Python exposes neither the handshake nor the verified chain",
    "none": "not received",
}


def _print_test(console: Console, resolved: ResolvedConnection, result: Any) -> None:
    now = datetime.now(UTC)
    env = f" [{resolved.env}]" if resolved.env else ""
    console.print(f"alias {console.style(resolved.alias, 'bold')}{env}: {result.method} {result.url}")
    dialled = _dialled(resolved)
    if dialled is not None:
        _field(console, "dialled", f"{dialled['host']}:{dialled['port']} (--connect-to)", indent=2)
    if resolved.insecure:
        console.print(console.style("  INSECURE: the protocol profile turns certificate verification off",
                                    "red", "bold"))
    from flowrun._transport._proxy import proxy_for_url

    endpoint = proxy_for_url(resolved.proxy, result.url)
    _field(console, "proxy", endpoint.display if endpoint is not None else "none (direct connection)", indent=2)
    if resolved.scheme == "https":
        tls = f"{result.tls_version}, {result.cipher}" if result.tls_version else "no TLS session established"
        _field(console, "TLS", tls, indent=2)
        _field(console, "server chain", _CHAIN_SOURCES[result.server_chain_source], indent=2)
        for index, cert in enumerate(result.server_chain):
            console.print(f"    {index}  {cert.subject}")
            console.print(f"       issued by {cert.issuer}; expires {iso_utc(cert.not_after)[:10]} "
                          f"({days_left(cert.not_after, now)} days)")
        console.print("  client certificate")
        for line in _client_cert_lines(resolved, result):
            console.print(f"    {line}")
    if result.status is not None:
        _field(console, "HTTP", f"{result.status} {result.reason or ''}".rstrip(), indent=2)
    if result.error is None:
        what = "the TLS path works" if resolved.scheme == "https" else "the connection works"
        console.print(console.style(f"ok: {what} (HTTP {result.status})", "green", "bold"))
        return
    label = console.style(f"FAILED [{result.error.code}]", "red", "bold")
    console.print(f"{label}: {result.error.message}")
    if result.error.hint:
        console.print(f"  {console.style('hint', 'cyan')}: {result.error.hint}")


_OUTCOME_WORDS = {
    "none_sent": "NONE: the server asked for a client certificate and none was sent",
    "not_requested": "nothing: the server did not ask for a client certificate",
    "not_reached": "nothing yet: the handshake stopped before the client's turn",
    "not_connected": "nothing: no connection was made (see below)",
    "not_observed": "not observed (this Python does not expose the handshake messages)",
}


def _client_cert_lines(resolved: ResolvedConnection, result: Any) -> list[str]:
    leaf = resolved.client_certificate
    if leaf is not None:
        configured = f"{leaf.subject.rfc4514_string()} (sha256 {resolved.client_cert_sha256})"
    elif resolved.profile is not None:
        configured = f"none (trust-only protocol profile {resolved.profile.name}: no keystore)"
    else:
        configured = "none (mutual_authentication is off)"
    lines = [f"configured  {configured}"]
    if result.client_cert_requested is not None:
        lines.append(f"requested   {'yes' if result.client_cert_requested else 'no'}")
    sent = result.client_cert_sent
    if sent is not None:
        lines.append(f"sent        {sent.subject} (sha256 {sent.sha256})")
    else:
        lines.append(f"sent        {_OUTCOME_WORDS[result.client_cert_outcome]}")
    return lines
