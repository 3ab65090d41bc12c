"""Alias directory -> records. Each ``*.json`` file holds one record or a list of records.

A record names its ``kind``; an object without one is "not an alias record" (named as such, not
as a schema mismatch of some kind). A flow file left in the alias directory is skipped with a
warning (logger ``flowrun``, code ``aliases.flow_file``): it is clearly not meant as records."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from flowrun._errors import DefinitionError, DuplicateNameError, FlowrunError, SchemaError
from flowrun._load._json import JsonDocument, read_json_file
from flowrun._load._paths import resolve_path
from flowrun._load._schema import check, describe_type, iter_schema_errors
from flowrun._models._aliases import (
    Alias,
    ConcurrencyLimit,
    Connection,
    ConnectionProxy,
    Credential,
    Keystore,
    ProtocolProfile,
    RateLimit,
    RetryPolicy,
    TrustStoreCert,
)
from flowrun._models._origin import Origin
from flowrun._models._record import ValueRecord
from flowrun._models._secret import SecretRef

Record = Keystore | TrustStoreCert | ProtocolProfile | Credential | Alias
KINDS: dict[str, type[Record]] = {
    "keystore": Keystore,
    "trust_store_cert": TrustStoreCert,
    "protocol_profile": ProtocolProfile,
    "credential": Credential,
    "alias": Alias,
}


@attrs.frozen(eq=False, repr=False)
class AliasRecords(ValueRecord):
    """Every record of an alias directory, by kind and name."""

    keystores: Mapping[str, Keystore]
    trust_store_certs: Mapping[str, TrustStoreCert]
    protocol_profiles: Mapping[str, ProtocolProfile]
    credentials: Mapping[str, Credential]
    aliases: Mapping[str, Alias]
    files: tuple[Path, ...] = ()

    def of_kind(self, kind: str) -> Mapping[str, Any]:
        return {
            "keystore": self.keystores, "trust_store_cert": self.trust_store_certs,
            "protocol_profile": self.protocol_profiles, "credential": self.credentials, "alias": self.aliases,
        }[kind]


def alias_files(directory: Path) -> list[Path]:
    if not directory.exists():
        raise DefinitionError(f"alias directory {directory} does not exist",
                              hint="pass --aliases DIR or set FLOWRUN_ALIASES; `flowrun demo --keep DIR` writes a "
                              "working one (with its keystore) into DIR")
    if directory.is_file():
        return [directory]
    return sorted(p for p in directory.rglob("*.json") if p.is_file())


def load_alias_records(paths: Iterable[Path], *, aliases: Collection[str] | None = None) -> AliasRecords:
    """Every record of the files; or, with ``aliases`` given (what a run uses), only those aliases and
    the records they lead to.

    The second way is an index by kind and name: every file is parsed, but only the records needed
    are schema-checked and built, so a run's cost does not grow with aliases it never uses. Whenever
    the index cannot answer exactly as the full read would (an unnamed or duplicate record, a name
    it does not hold), everything is read, so errors stay the same."""
    files = list(paths)
    if aliases is not None:
        needed = _needed_records(files, set(aliases))
        if needed is not None:
            return needed
    return collect_records((record for path in files for record in records_from_document(read_json_file(path))),
                           files=files)


_Indexed = tuple[JsonDocument, str, dict[str, Any]]


def _needed_records(files: list[Path], aliases: set[str]) -> AliasRecords | None:
    index: dict[tuple[str, str], _Indexed] = {}
    for path in files:
        document = read_json_file(path)
        if is_flow_document(document):
            records_from_document(document)  # warns that a flow is not alias records
            continue
        try:
            items = _items(document)
        except SchemaError:
            return None
        for pointer, item in items:
            kind, name = (item.get("kind"), item.get("name")) if isinstance(item, dict) else (None, None)
            if not isinstance(kind, str) or kind not in KINDS or not isinstance(name, str) or (kind, name) in index:
                return None
            index[(kind, name)] = (document, pointer, item)
    built: dict[tuple[str, str], Record] = {}
    wanted = [("alias", name) for name in aliases]
    while wanted:
        key = wanted.pop()
        if key in built:
            continue
        if key not in index:
            return None
        document, pointer, item = index[key]
        record = built[key] = _record_at(document, pointer, item)
        wanted.extend(_references(record))
    return collect_records(built.values(), files=files)


def _references(record: Record) -> list[tuple[str, str]]:
    """The records that ``record`` names (what the registry looks up when it resolves it)."""
    found: list[tuple[str, str]] = []
    if isinstance(record, Alias):
        for connection in record.connections.values():
            if connection.protocol_profile:
                found.append(("protocol_profile", connection.protocol_profile))
            if connection.credential:
                found.append(("credential", connection.credential))
    elif isinstance(record, ProtocolProfile):
        if record.keystore is not None:
            found.append(("keystore", record.keystore))
        found += [("trust_store_cert", name) for name in record.trust_store_certs]
    elif isinstance(record, Keystore):
        found += [("trust_store_cert", item) for item in record.chain_certs if isinstance(item, str)]
    return found


def collect_records(records: Iterable[Record], *, files: Iterable[Path] = ()) -> AliasRecords:
    """Records (read from files or built in code) by kind and name; a name used twice is an error."""
    by_kind: dict[str, dict[str, Record]] = {kind: {} for kind in KINDS}
    for record in records:
        kind = _kind_of(record)
        existing = by_kind[kind].get(record.name)
        if existing is not None:
            first = existing.origin
            where = f" (first at {first.file}:{first.line})" if first.file is not None else ""
            raise DuplicateNameError(
                f"{kind.replace('_', ' ')} '{record.name}' is defined twice{where}",
                **record.origin.location(),
            )
        by_kind[kind][record.name] = record
    return AliasRecords(
        keystores=by_kind["keystore"],  # type: ignore[arg-type]
        trust_store_certs=by_kind["trust_store_cert"],  # type: ignore[arg-type]
        protocol_profiles=by_kind["protocol_profile"],  # type: ignore[arg-type]
        credentials=by_kind["credential"],  # type: ignore[arg-type]
        aliases=by_kind["alias"],  # type: ignore[arg-type]
        files=tuple(files),
    )


def _kind_of(record: Record) -> str:
    for kind, cls in KINDS.items():
        if isinstance(record, cls):
            return kind
    raise TypeError(f"not an alias record: {type(record).__name__} (expected one of "
                    f"{', '.join(cls.__name__ for cls in KINDS.values())})")


def is_flow_document(document: JsonDocument) -> bool:
    """A flow (an object with ``steps`` and no ``kind``) rather than alias records."""
    data = document.data
    return isinstance(data, dict) and "kind" not in data and isinstance(data.get("steps"), list)


_warned_flows: set[Path] = set()


def _skip_flow(document: JsonDocument) -> None:
    path = document.path
    if path is not None and path.resolve() in _warned_flows:
        return
    if path is not None:
        _warned_flows.add(path.resolve())
    logging.getLogger("flowrun").warning(
        "%s is a flow, not alias records: skipped (keep flows outside the alias directory)",
        path, extra={"code": "aliases.flow_file"})


def _check_kind(item: Any, document: JsonDocument, pointer: str) -> None:
    if isinstance(item, dict) and "kind" not in item:
        flow_like = "steps" in item or ("id" in item and "type" in item)
        looks = " (it looks like a flow or a flow step)" if flow_like else ""
        raise SchemaError(f"not an alias record: no 'kind' field{looks}",
                          hint=f"each record names its kind: {', '.join(KINDS)}; other JSON files do not belong "
                          "in the alias directory", file=document.path, pointer=pointer or None,
                          line=document.line(pointer))


def records_from_document(document: JsonDocument, *, problems: list[FlowrunError] | None = None) -> list[Record]:
    """The records of one alias file. Raises the first error, or with ``problems`` given, appends
    each record's error there and goes on with the next record. A flow file gives no records."""
    if is_flow_document(document):
        _skip_flow(document)
        return []
    records = []
    for pointer, item in _items(document):
        try:
            records.append(_record_at(document, pointer, item))
        except FlowrunError as error:
            if problems is None:
                raise
            problems.append(error)
    return records


def _record_at(document: JsonDocument, pointer: str, item: Any) -> Record:
    _check_kind(item, document, pointer)
    check(item, document, schema_name="aliases", definition="record", pointer=pointer)
    origin = Origin(document.path, pointer, document.line(pointer))
    return _build(item, origin, document)


def schema_problems(document: JsonDocument) -> list[SchemaError]:
    """Every schema error of an alias file, not just the first (``flowrun validate``)."""
    from flowrun._load._fast_schema import accepts
    from flowrun._load._schema import schema

    if is_flow_document(document):
        return []
    try:
        items = _items(document)
    except SchemaError as error:
        return [error]
    record = {"$ref": "#/$defs/record"}
    problems: list[SchemaError] = []
    for pointer, item in items:
        try:
            _check_kind(item, document, pointer)
        except SchemaError as error:
            problems.append(error)
            continue
        if not accepts(item, record, schema("aliases")):
            problems.extend(iter_schema_errors(item, document, schema_name="aliases", definition="record",
                                               pointer=pointer))
    return problems


def _items(document: JsonDocument) -> list[tuple[str, Any]]:
    data = document.data
    if isinstance(data, dict):
        return [("", data)]
    if isinstance(data, list):
        return [(f"/{i}", item) for i, item in enumerate(data)]
    raise SchemaError(f"expected a record or a list of records, found {describe_type(data)}",
                      file=document.path, line=1)


def _build(item: dict[str, Any], origin: Origin, document: JsonDocument) -> Record:
    base = origin.directory
    fields = {k: v for k, v in item.items() if k != "kind"}
    kind = item["kind"]

    def path_at(key: str, value: str) -> Path:
        return _placed_path(base, value, origin.child(*key.split("/")), document)

    def secret(key: str) -> SecretRef | None:
        raw = fields.get(key)
        if raw is None:
            return None
        sub = origin.child(key)
        sub = attrs.evolve(sub, line=document.line(sub.pointer))
        if isinstance(raw, str):
            return SecretRef(literal=raw, origin=sub)
        if "env" in raw:
            return SecretRef(env=raw["env"], origin=sub)
        if "source" in raw:
            return SecretRef(source=raw["source"], name=raw["name"], origin=sub)
        return SecretRef(file=path_at(f"{key}/file", raw["file"]), origin=sub)

    if kind == "keystore":
        return Keystore(
            name=fields["name"], file=path_at("file", fields["file"]), type=fields.get("type"),
            password=secret("password"), key_alias=fields.get("key_alias"),
            key_password=secret("key_password"),
            key_file=path_at("key_file", fields["key_file"]) if "key_file" in fields else None,
            chain_certs=tuple(path_at(f"chain_certs/{i}", value) if looks_like_path(value) else value
                              for i, value in enumerate(fields.get("chain_certs", ()))),
            origin=origin,
        )
    if kind == "trust_store_cert":
        return TrustStoreCert(
            name=fields["name"], format=fields.get("format", "pem"),
            file=path_at("file", fields["file"]) if "file" in fields else None, pem=fields.get("pem"),
            origin=origin,
        )
    if kind == "protocol_profile":
        return ProtocolProfile(
            name=fields["name"], keystore=fields.get("keystore"), port=fields.get("port", 443),
            trust_store_certs=tuple(fields.get("trust_store_certs", ())),
            use_system_trust=fields.get("use_system_trust", True),
            tls_versions=tuple(sorted(fields.get("tls_versions", ("1.2", "1.3")))),
            insecure_skip_verify=fields.get("insecure_skip_verify", False), origin=origin,
        )
    if kind == "credential":
        secret_fields = ("password", "token", "key", "client_secret", "assertion", "access_key_id",
                         "secret_access_key", "session_token")
        plain: dict[str, Any] = {k: v for k, v in fields.items() if k not in (*secret_fields, "description")}
        plain.update({name: secret(name) for name in secret_fields})
        return Credential(**plain, origin=origin)
    connections: dict[str, Connection] = {}
    if "connection" in fields:
        connections[Alias.SINGLE] = connection_from(fields["connection"], origin.child("connection"), document)
    for env, raw in fields.get("connections", {}).items():
        connections[env] = connection_from(raw, origin.child("connections", env), document)
    retry = fields.get("retry_policy")
    return Alias(
        name=fields["name"], connections=connections, default_env=fields.get("default_env"),
        retry_policy=retry_policy_from(retry) if retry is not None else RetryPolicy(),
        description=fields.get("description", ""), origin=origin,
        rate_limit=(RateLimit(**fields["rate_limit"], origin=origin.child("rate_limit"))
                    if "rate_limit" in fields else None),
        concurrency_limit=(ConcurrencyLimit(**fields["concurrency_limit"], origin=origin.child("concurrency_limit"))
                           if "concurrency_limit" in fields else None),
    )


_CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der", ".p7b", ".p7c")


def looks_like_path(value: str) -> bool:
    """A chain_certs entry is a file when it has a folder part or a certificate file suffix, else the
    name of a trust_store_cert record."""
    return "/" in value or "\\" in value or value.lower().endswith(_CERT_SUFFIXES)


def retry_policy_from(raw: Mapping[str, Any]) -> RetryPolicy:
    values = dict(raw)
    if "on_status" in values:
        values["on_status"] = tuple(values["on_status"])
    return RetryPolicy(**values)


def connection_from(raw: dict[str, Any], origin: Origin, document: JsonDocument) -> Connection:
    """A connection record (an alias's, or a step's inline one) with its proxy and its secret."""
    origin = attrs.evolve(origin, line=document.line(origin.pointer))
    fields = dict(raw)
    if "trusted_origins" in fields:
        fields["trusted_origins"] = tuple(fields["trusted_origins"])
    if "proxy" in fields:
        fields["proxy"] = _proxy(fields["proxy"], origin.child("proxy"), document)
    return Connection(**fields, origin=origin)


def _proxy(raw: str | dict[str, Any], origin: Origin, document: JsonDocument) -> ConnectionProxy:
    origin = attrs.evolve(origin, line=document.line(origin.pointer))
    if isinstance(raw, str):  # "none", the only string the schema lets through
        return ConnectionProxy(url=None, origin=origin)
    password = raw.get("password")
    secret: SecretRef | None = None
    if password is not None:
        where = attrs.evolve(origin.child("password"), line=document.line(origin.child("password").pointer))
        if isinstance(password, str):
            secret = SecretRef(literal=password, origin=where)
        elif "env" in password:
            secret = SecretRef(env=password["env"], origin=where)
        elif "source" in password:
            secret = SecretRef(source=password["source"], name=password["name"], origin=where)
        else:
            path = _placed_path(origin.directory, password["file"], where.child("file"), document)
            secret = SecretRef(file=path, origin=where)
    return ConnectionProxy(url=raw["url"], username=raw.get("username"), password=secret,
                           no_proxy=tuple(raw.get("no_proxy", ())), origin=origin)


def _placed_path(base: Path, value: str, origin: Origin, document: JsonDocument) -> Path:
    try:
        return resolve_path(base, value)
    except FlowrunError as error:
        error.file, error.pointer = (str(document.path) if document.path else None), origin.pointer
        error.line = document.line(origin.pointer)
        raise
