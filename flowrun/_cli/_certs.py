"""``flowrun certs check``: when does each certificate the alias records name expire? Made for cron/CI.

Every keystore record (its chosen identity: leaf and chain) and every trust store cert record
of the alias directory is read through the same caches as resolution, then each certificate is
listed with its days to expiry, soonest first.

Exit codes:

* 0: every certificate was read and none expires within ``--within`` days;
* 1: a certificate has expired or expires within DAYS, or some record could not be read (the
  flows using it would fail too; its error is reported with the record);
* 2: nothing could be checked (no keystore or trust store cert records, or none readable), or
  bad usage / bad definitions.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from flowrun._cli._common import add_aliases_option, days_left, iso_utc, load_registry, non_negative_days
from flowrun._cli._output import Console
from flowrun._errors import FlowrunError, UsageError
from flowrun._models._record import ValueRecord
from flowrun._registry import Registry
from flowrun._tls._read import describe_path
from flowrun._wording import counted

__all__ = ["CertExpiry", "RecordFailure", "check_json", "collect", "register", "run_check"]

RecordKind = Literal["keystore", "trust_store_cert"]
Role = Literal["leaf", "chain", "trust"]
Status = Literal["expired", "expiring", "ok"]
DEFAULT_WITHIN_DAYS = 30


@attrs.frozen(eq=False, repr=False)
class CertExpiry(ValueRecord):
    record_kind: RecordKind
    record: str
    source: str  # the file, or "inline PEM"
    role: Role
    subject: str
    issuer: str
    not_after: datetime
    sha256: str

    def days_left(self, now: datetime) -> int:
        return days_left(self.not_after, now)

    def status(self, now: datetime, within_days: int) -> Status:
        if self.not_after <= now:
            return "expired"
        return "expiring" if self.not_after - now <= timedelta(days=within_days) else "ok"


@attrs.frozen(eq=False, repr=False)
class RecordFailure(ValueRecord):
    record_kind: RecordKind
    record: str
    error: FlowrunError


def register(subparsers: Any, name: str, summary: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=summary, description=summary)
    commands = parser.add_subparsers(dest="certs_command", metavar="SUBCOMMAND", parser_class=type(parser))
    check = commands.add_parser(
        "check", help="list every certificate the alias records name, soonest expiry first",
        description="Read every keystore (the identity's leaf and chain) and every trust store cert of "
        "the alias directory and list each certificate with its days to expiry, soonest first.",
        epilog="Exit codes: 0 all read and none expires within DAYS; 1 a certificate expired or expires "
        "within DAYS, or a record could not be read; 2 nothing could be checked, or bad usage.",
    )
    add_aliases_option(check)
    check.add_argument("--within", metavar="DAYS", type=non_negative_days, default=DEFAULT_WITHIN_DAYS,
                       help=f"fail when a certificate expires within DAYS days (default {DEFAULT_WITHIN_DAYS})")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(handler=run_check)

    def missing_subcommand(args: argparse.Namespace, console: Console) -> int:
        raise UsageError(f"flowrun {name}: choose a sub-command (check)", hint=f"see `flowrun {name} --help`")

    parser.set_defaults(handler=missing_subcommand)


def collect(registry: Registry) -> tuple[list[CertExpiry], list[RecordFailure]]:
    """Every certificate the records name, and the records that could not be read."""
    certificates: list[CertExpiry] = []
    failures: list[RecordFailure] = []
    records = registry.records
    for name, keystore in sorted(records.keystores.items()):
        try:
            chain = registry.identity(name).chain
        except FlowrunError as error:
            failures.append(RecordFailure("keystore", name, error))
            continue
        certificates += [_expiry("keystore", name, str(keystore.file), "leaf" if i == 0 else "chain", cert)
                         for i, cert in enumerate(chain)]
    for name, trust in sorted(records.trust_store_certs.items()):
        try:
            certs = registry.trust_store_cert(name)
        except FlowrunError as error:
            failures.append(RecordFailure("trust_store_cert", name, error))
            continue
        source = str(trust.file) if trust.file is not None else "inline PEM"
        certificates += [_expiry("trust_store_cert", name, source, "trust", cert) for cert in certs]
    certificates.sort(key=lambda c: (c.not_after, c.record_kind, c.record))
    return certificates, failures


def _expiry(kind: RecordKind, record: str, source: str, role: Role, cert: x509.Certificate) -> CertExpiry:
    return CertExpiry(
        record_kind=kind, record=record, source=source, role=role,
        subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc, sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def exit_code(certificates: Sequence[CertExpiry], failures: Sequence[RecordFailure], *, now: datetime,
              within_days: int) -> int:
    if not certificates:
        return 2
    if failures or any(c.status(now, within_days) != "ok" for c in certificates):
        return 1
    return 0


def run_check(args: argparse.Namespace, console: Console) -> int:
    registry = load_registry(args)
    now = datetime.now(UTC)
    certificates, failures = collect(registry)
    code = exit_code(certificates, failures, now=now, within_days=args.within)
    if args.json:
        console.print_json(check_json(certificates, failures, now=now, within_days=args.within, exit_code=code))
    else:
        _print_check(console, certificates, failures, now=now, within_days=args.within, exit_code=code)
    return code


def check_json(certificates: Sequence[CertExpiry], failures: Sequence[RecordFailure], *, now: datetime,
               within_days: int, exit_code: int) -> dict[str, Any]:
    return {
        "checked_at": iso_utc(now),
        "within_days": within_days,
        "status": {0: "ok", 1: "attention", 2: "nothing_checked"}[exit_code],
        "certificates": [
            {"record_kind": c.record_kind, "record": c.record, "source": c.source, "role": c.role,
             "subject": c.subject, "issuer": c.issuer, "not_after": iso_utc(c.not_after),
             "days_left": c.days_left(now), "status": c.status(now, within_days), "sha256": c.sha256}
            for c in certificates
        ],
        "errors": [{"record_kind": f.record_kind, "record": f.record, **f.error.to_dict()} for f in failures],
    }


_STATUS_STYLE = {"expired": ("red", "bold"), "expiring": ("yellow",), "ok": ("green",)}


def _print_check(console: Console, certificates: Sequence[CertExpiry], failures: Sequence[RecordFailure], *,
                 now: datetime, within_days: int, exit_code: int) -> None:
    for cert in certificates:
        status = cert.status(now, within_days)
        days = cert.days_left(now)
        when = f"expired {-days} days ago" if status == "expired" else f"{days} days left"
        label = console.style(f"{status:<8}", *_STATUS_STYLE[status])
        console.print(f"{label}  {iso_utc(cert.not_after)[:10]}  {when:<20}  {cert.record_kind} {cert.record} "
                      f"({cert.role})  {cert.subject}")
        shown = describe_path(Path(cert.source)) if cert.role != "chain" and cert.source != "inline PEM" else ""
        if " -> " in shown:
            console.print(f"          file {shown}")  # a symbolic link: the file read is its target
    for failure in failures:
        label = console.style("error   ", "red", "bold")
        console.print(f"{label}  {failure.record_kind} {failure.record}: [{failure.error.code}] {failure.error}")
        if failure.error.hint:
            console.print(f"          {console.style('hint', 'cyan')}: {failure.error.hint}")
    attention = sum(1 for c in certificates if c.status(now, within_days) != "ok")
    unread = f"; {counted(len(failures), 'record')} could not be read" if failures else ""
    summary = {
        0: f"ok: {counted(len(certificates), 'certificate')}, none expires within {within_days} days",
        1: f"attention: {attention} of {counted(len(certificates), 'certificate')} expire within {within_days} days or "
           f"have expired{unread}",
        2: "nothing checked: no keystore or trust store cert could be read" if failures
           else "nothing checked: the alias records name no keystore and no trust store cert",
    }[exit_code]
    console.print(console.style(summary, "bold"))
