"""What every importer shares: names flowrun accepts, secret references, alias records, and the
result an importer hands to the writer."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import attrs

from flowrun._models._web_origin import credential_over_http

__all__ = ["AliasBook", "ImportResult", "Untranslated", "env_name", "identifier", "record_name", "slug"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def identifier(text: str, *, fallback: str = "value") -> str:
    """A data-pill name (letters, digits, ``_``; not starting with a digit) made from ``text``."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text.strip()).strip("_")
    if not name:
        name = fallback
    if name[0].isdigit():
        name = "_" + name
    return name


def slug(text: str, *, fallback: str = "item") -> str:
    """A lowercase identifier for file names and step ids."""
    return identifier(text, fallback=fallback).lower()


def record_name(text: str) -> str:
    """A record name (letters, digits, ``_ . -``, starting with a letter or ``_``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text.strip()).strip("_.-")
    if not name:
        return "imported"
    return name if re.match(r"[A-Za-z_]", name[0]) else "_" + name


def env_name(*parts: str) -> str:
    """An environment variable name: ``BANK_API_KEY``."""
    return "_".join(identifier(p).upper() for p in parts if p)


def unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}_{n}"
        n += 1
    taken.add(candidate)
    return candidate


@attrs.frozen
class Untranslated:
    """A part of the source with no flowrun equivalent: kept, listed, never dropped silently."""

    pointer: str
    text: str
    reason: str

    def line(self) -> str:
        return f"{self.pointer}: {self.text}  ({self.reason})"


@attrs.define
class ImportResult:
    """Files to write (relative POSIX path -> JSON value), and what the user must know."""

    source: str
    files: dict[str, Any] = attrs.field(factory=dict)
    env_vars: dict[str, str] = attrs.field(factory=dict)  # NAME -> what it holds
    not_translated: list[Untranslated] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)

    def need_env(self, name: str, why: str) -> dict[str, str]:
        self.env_vars.setdefault(name, why)
        return {"env": name}

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "files": sorted(self.files), "env_vars": self.env_vars,
                "not_translated": [attrs.asdict(u) for u in self.not_translated], "notes": self.notes}


@attrs.define
class AliasBook:
    """Alias records, one alias per base URL and credential: ``aliases/<name>.json`` each."""

    result: ImportResult
    _by_key: dict[str, str] = attrs.field(factory=dict)
    _names: set[str] = attrs.field(factory=set)

    def alias(self, base_url: str, *, hint: str, credential: dict[str, Any] | None = None,
              mtls: dict[str, Any] | None = None, extra_connection: dict[str, Any] | None = None,
              environments: dict[str, str] | None = None) -> str:
        """The alias name for ``base_url`` with ``credential``; the records are added on first use.

        ``credential`` holds the credential record without ``kind``/``name``; ``mtls`` holds
        ``keystore`` (record fields; without it the profile is trust-only), optional ``trust`` (list
        of trust_store_cert fields) and ``profile`` (extra protocol_profile fields).
        ``environments`` (name -> base URL, the first the default) gives one connection per
        environment instead of ``base_url``'s.
        """
        key = repr((base_url, sorted((credential or {}).items()), repr(mtls), repr(extra_connection),
                    repr(environments)))
        if key in self._by_key:
            return self._by_key[key]
        name = unique(record_name(hint), self._names)
        self._by_key[key] = name
        description = ""
        urls = list((environments or {}).values()) or [base_url]
        if credential is not None and any(credential_over_http(credential.get("type"), urlsplit(u).scheme)
                                          for u in urls):
            # flowrun never sends a credential over plain http: say so rather than write what cannot load.
            written = repr(self.result.files)
            for value in credential.values():
                if isinstance(value, dict) and "env" in value and repr(value) not in written:
                    self.result.env_vars.pop(value["env"], None)
            dropped = Untranslated(
                f"aliases/{name}.json", f"{credential.get('type')} credential for {base_url}",
                "flowrun never sends a credential over plain http: the alias has none; use the partner's https "
                "URL and add the credential")
            self.result.not_translated.append(dropped)
            description = "Not translated: " + dropped.line()
            credential = None
        records: list[dict[str, Any]] = []
        connection: dict[str, Any] = {"url": base_url}
        if credential is not None:
            records.append({"kind": "credential", "name": name, **credential})
            connection["credential"] = name
        if mtls is not None:
            if "keystore" in mtls:
                records.append({"kind": "keystore", "name": name, **mtls["keystore"]})
            trust_names: list[str] = []
            for index, trust in enumerate(mtls.get("trust", [])):
                trust_name = name if index == 0 else f"{name}_{index + 1}"
                records.append({"kind": "trust_store_cert", "name": trust_name, **trust})
                trust_names.append(trust_name)
            # Without a keystore the profile is trust-only: the partner's CA, no client certificate.
            profile_name = f"{name}_mtls" if "keystore" in mtls else f"{name}_trust"
            profile: dict[str, Any] = {"kind": "protocol_profile", "name": profile_name}
            if "keystore" in mtls:
                profile["keystore"] = name
            if trust_names:
                profile["trust_store_certs"] = trust_names
            profile.update(mtls.get("profile", {}))
            records.append(profile)
            if "keystore" in mtls:
                connection["mutual_authentication"] = True
            connection["protocol_profile"] = profile_name
        connection.update(extra_connection or {})
        alias: dict[str, Any] = {"kind": "alias", "name": name}
        if description:
            alias["description"] = description
        if environments:
            alias["default_env"] = next(iter(environments))
            alias["connections"] = {env: {**connection, "url": url} for env, url in environments.items()}
        else:
            alias["connection"] = connection
        records.append(alias)
        self.result.files[f"aliases/{name}.json"] = records
        return name
