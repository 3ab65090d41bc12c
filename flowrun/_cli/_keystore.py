"""``flowrun keystore inspect``: what a keystore holds and whether it works as a client identity.

Offline: reads the file, lists entries the way ``keytool -list -v`` does, then runs the
diagnostics and prints a verdict. ``--json`` prints the stable shape documented in
``docs/keystore-inspect.md``. Exit 0 usable, 1 any error finding, 2 unreadable input or bad usage.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from flowrun._cli._common import non_negative_days
from flowrun._cli._output import Console
from flowrun._cli._passwords import (
    add_key_password_options,
    add_store_password_options,
    key_password,
    store_password,
)
from flowrun._errors import (
    KeyAlgorithmError,
    KeystoreNotFoundError,
    KeystorePasswordError,
    TrustCertError,
    UsageError,
)
from flowrun._tls._chain import serial_hex
from flowrun._tls._detect import detect_type, holds_plaintext_key
from flowrun._tls._diagnose import diagnose, is_usable
from flowrun._tls._keycheck import describe_key, key_type_and_size
from flowrun._tls._model import Finding, KeystoreContents, KeystoreEntry, KeystoreType
from flowrun._tls._read import (
    describe_path,
    permission_warnings,
    read_file_bytes,
    read_keystore,
    read_pem,
    read_trust_certs,
)

__all__ = ["inspect_json", "register", "run_inspect"]

_TYPES: tuple[KeystoreType, ...] = ("jks", "jceks", "pkcs12", "pem")
# Java stores keep their integrity only under the store password: reading them without it
# would show certificates nobody vouched for.
_PASSWORD_REQUIRED = frozenset({"jks", "jceks"})
_KIND_LABELS = {"private_key": "PrivateKeyEntry", "trusted_cert": "trustedCertEntry",
                "secret_key": "SecretKeyEntry"}
_SEVERITY_ORDER = (("error", "Errors", "red"), ("warning", "Warnings", "yellow"), ("info", "Info", "blue"))


def register(subparsers: Any, name: str, summary: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=summary, description=summary)
    commands = parser.add_subparsers(dest="keystore_command", metavar="SUBCOMMAND",
                                     parser_class=type(parser))
    inspect = commands.add_parser(
        "inspect",
        help="list a keystore's entries and diagnose it as a client identity (offline)",
        description="List the entries of a JKS, JCEKS, PKCS12 or PEM keystore like keytool -list -v, "
        "then check it as a client identity: private key entry, chain up to a root, key match, "
        "clientAuth usage, validity, key strength. Nothing is sent over the network.",
        epilog="Exit codes: 0 usable as a client identity, 1 a finding of severity error, "
        "2 unreadable input or bad usage. Passwords are never taken on the command line.",
    )
    inspect.add_argument("path", type=Path, metavar="PATH", help="the keystore file")
    inspect.add_argument("--type", type=str.lower, choices=_TYPES,
                         help="the store type (default: detected from the content, not the file name)")
    add_store_password_options(inspect)
    inspect.add_argument("--key-alias", metavar="ALIAS",
                         help="the private key entry to check (needed when the store holds several)")
    add_key_password_options(inspect)
    inspect.add_argument("--key-file", metavar="FILE", type=Path,
                         help="PEM only: the private key when it is in a file of its own (the key's password, "
                         "if any, is the store password option)")
    inspect.add_argument("--trust-cert", metavar="FILE", type=Path, action="append", default=[],
                         help="a PEM or DER certificate that may complete the chain and is checked for "
                         "expiry (repeatable)")
    inspect.add_argument("--chain-cert", metavar="FILE", type=Path, action="append", default=[],
                         help="a PEM or DER certificate (an intermediate) that completes the chain sent to "
                         "partners, as a keystore record's chain_certs does (repeatable)")
    inspect.add_argument("--within", metavar="DAYS", type=non_negative_days, default=30,
                         help="warn about certificates that expire within DAYS days (default 30)")
    inspect.add_argument("--json", action="store_true", help="print the stable JSON shape")
    inspect.set_defaults(handler=run_inspect)

    def missing_subcommand(args: argparse.Namespace, console: Console) -> int:
        raise UsageError(f"flowrun {name}: choose a sub-command", hint=f"see `flowrun {name} --help`")

    parser.set_defaults(handler=missing_subcommand)


_NO_PASSWORD_HINT = "pass it with --password-env VAR, --password-file FILE or --password-stdin"


def run_inspect(args: argparse.Namespace, console: Console) -> int:
    password = store_password(args)
    key_pass = key_password(args)
    path: Path = args.path
    data = read_file_bytes(path)
    found = detect_type(data, source=str(path))
    if password is None and found in _PASSWORD_REQUIRED:
        raise UsageError(
            f"{path}: a {found.upper()} keystore is read only with its store password, which checks "
            "its integrity", hint=_NO_PASSWORD_HINT,
        )
    if args.key_file is not None and found != "pem":
        raise UsageError(f"--key-file goes with a PEM certificate file; {path} is {found.upper()}",
                         hint="a JKS, JCEKS or PKCS12 store holds its keys itself")
    try:
        if args.key_file is not None:
            key_data = read_file_bytes(args.key_file, what="key")
            contents = read_pem(data, key_data, password=password, source=str(path),
                                key_source=str(args.key_file))
        else:
            key_data = data
            contents = read_keystore(data, password=password, type=args.type, source=str(path))
    except KeystorePasswordError as error:
        if password is None:
            error.message = f"{error.message} (no store password was given)"
            error.args = (error.message,)
            error.hint = _NO_PASSWORD_HINT
        raise
    except KeyAlgorithmError as error:
        # A key TLS cannot use whose certificate cannot even be read (keytool's DSA): a finding.
        contents = KeystoreContents(type=found, entries=(), source=str(path))
        findings = [Finding(code="key.dsa", severity="error", message=f"{error.message}: {error.hint}")]
        return _report(args, console, path, contents, findings, unreadable=True)
    trust = _load_certs(args.trust_cert, "trust store cert")
    chain_certs = _load_certs(args.chain_cert, "chain cert")
    findings = diagnose(contents, key_alias=args.key_alias, key_password=key_pass,
                        store_password=password, trust_certs=trust, chain_certs=chain_certs,
                        within_days=args.within)
    if password is None and not key_pass:
        findings = [_name_password_options(f) for f in findings]
    if contents.private_key_entries():
        findings += permission_warnings(args.key_file or path, what="private key" if args.key_file else "keystore",
                                        plaintext=holds_plaintext_key(key_data))
    return _report(args, console, path, contents, findings)


def _report(args: argparse.Namespace, console: Console, path: Path, contents: KeystoreContents,
            findings: list[Finding], *, unreadable: bool = False) -> int:
    if args.json:
        console.print_json(inspect_json(contents, findings))
    else:
        _print_report(console, path, contents, findings, unreadable=unreadable)
    return 0 if is_usable(findings) else 1


def _name_password_options(finding: Finding) -> Finding:
    """Without any password given, the way to give one is the command's options."""
    if finding.code != "key.wrong_password":
        return finding
    return attrs.evolve(finding, message=f"{finding.message.split(': no password was given')[0]}: no password "
                        f"was given; {_NO_PASSWORD_HINT} (a key with a password of its own: --key-password-env "
                        "VAR or --key-password-file FILE)")


def _load_certs(paths: Sequence[Path], what: str) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for path in paths:
        try:
            data = read_file_bytes(path, what=what)
        except KeystoreNotFoundError as error:
            raise TrustCertError(error.message, file=path) from None
        certs.extend(read_trust_certs(data, format=None, source=str(path)))
    return certs


# --- JSON ----------------------------------------------------------------------------------


def inspect_json(contents: KeystoreContents, findings: Sequence[Finding]) -> dict[str, Any]:
    """The documented shape: {"type", "entries": [...], "findings": [...]}."""
    return {
        "type": contents.type,
        "entries": [
            {"alias": entry.alias, "kind": entry.kind, "chain": [_cert_json(c) for c in entry.certificates]}
            for entry in contents.entries
        ],
        "findings": [{"code": f.code, "severity": f.severity, "message": f.message} for f in findings],
    }


def _cert_json(cert: x509.Certificate) -> dict[str, Any]:
    key_type, key_size = key_type_and_size(cert)
    return {
        "key_type": key_type,
        "key_size": key_size,
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": serial_hex(cert),
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- text ----------------------------------------------------------------------------------


def _print_report(console: Console, path: Path, contents: KeystoreContents, findings: Sequence[Finding], *,
                  unreadable: bool = False) -> None:
    count = len(contents.entries)
    console.print(f"{console.style('Keystore:', 'bold')} {describe_path(path)}")
    if unreadable:
        console.print(f"Type: {contents.type.upper()}, entries not listed (a certificate cannot be read)")
    else:
        console.print(f"Type: {contents.type.upper()}, {count} entr{'y' if count == 1 else 'ies'}")
    for entry in contents.entries:
        console.print()
        _print_entry(console, entry)
    console.print()
    _print_findings(console, findings)
    console.print()
    console.print(_verdict(console, findings))


def _print_entry(console: Console, entry: KeystoreEntry) -> None:
    console.print(f"{console.style('Alias:', 'bold')} {entry.alias}")
    console.print(f"  Kind: {_KIND_LABELS[entry.kind]}")
    if entry.kind == "secret_key":
        if entry.secret_key_algorithm:
            console.print(f"  Algorithm: {entry.secret_key_algorithm}")
        return
    if entry.kind == "private_key":
        console.print(f"  Chain length: {len(entry.certificates)}")
    for number, cert in enumerate(entry.certificates, start=1):
        label = f"Certificate [{number}]" if entry.kind == "private_key" else "Certificate"
        console.print(f"  {label}:")
        for line in _cert_lines(cert):
            console.print(f"    {line}")


def _cert_lines(cert: x509.Certificate) -> list[str]:
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    return [
        f"Subject:   {cert.subject.rfc4514_string()}",
        f"Issuer:    {cert.issuer.rfc4514_string()}",
        f"Serial:    {serial_hex(cert)}",
        f"Valid:     {_iso(cert.not_valid_before_utc)} until {_iso(cert.not_valid_after_utc)}",
        f"SHA-256:   {fingerprint}",
        f"Key:       {describe_key(cert)}",
    ]


def _print_findings(console: Console, findings: Sequence[Finding]) -> None:
    console.print(console.style("Findings:", "bold"))
    if not findings:
        console.print("  none")
    for severity, title, colour in _SEVERITY_ORDER:
        group = [f for f in findings if f.severity == severity]
        if not group:
            continue
        console.print(f"  {console.style(f'{title} ({len(group)})', colour, 'bold')}")
        for finding in group:
            console.print(f"    {console.style(finding.code, colour)}: {finding.message}")


def _verdict(console: Console, findings: Sequence[Finding]) -> str:
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = sum(1 for f in findings if f.severity == "warning")
    if errors:
        return console.style(f"NOT usable: {errors} error{'s' if errors != 1 else ''}", "red", "bold")
    tail = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
    return console.style(f"usable as a client identity{tail}", "green", "bold")
