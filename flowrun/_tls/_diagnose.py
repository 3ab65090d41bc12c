"""Offline diagnostics of a keystore as a client identity: what will go wrong, and what to do.

``diagnose`` never touches the network and never raises for a problem in the keystore: every
problem is a ``Finding`` with a stable code, a severity and a message that says what to do.

Finding codes (stable: scripts match on them; ``docs/keystore-findings.md`` explains each one)::

    store.no_private_key        error    no PrivateKeyEntry: only trusted certificates (or secret keys)
    store.secret_keys           info     secret key entries (JCEKS) are ignored
    key_alias.ambiguous         error    several private keys and no key alias chosen
    key_alias.not_found         error    the key alias names no entry
    key_alias.not_private_key   error    the key alias names a trusted certificate or secret key entry
    key.wrong_password          error    the private key cannot be decrypted with the password given
    key.unreadable              error    the private key cannot be decoded
    key.mismatch                error    the private key does not belong to the leaf certificate
    key.too_small               error    RSA or DSA key under 2048 bits, EC key under 256 bits
    key.below_3072              info     RSA key of 2048 bits: fine today, use 3072 at the next renewal
    key.rsa_pss                 error    RSA-PSS key: OpenSSL does not present it (NO_CERTIFICATE_ASSIGNED)
    key.dsa                     error    DSA key: TLS 1.3 has no DSA and most servers refuse it
    key.uncommon_curve          error    EC curve other than P-256, P-384, P-521: OpenSSL does not sign with it
    key.uncommon_type           warning  Ed25519 / Ed448: TLS 1.3 only, few servers accept them
    chain.self_signed           error    the leaf is self-signed: the CSR was never signed and imported
    chain.placeholder           error    the self-signed placeholder is the key's chain and a trustedCertEntry
                                         holds the CA-signed certificate for the same key
    chain.incomplete            error    the private key entry has no certificate
    chain.leaf_only             warning  only the leaf is sent: the partner must hold its issuer(s)
    chain.root_not_included     info     the chain stops at an intermediate: the partner holds the root
    chain.not_sent              warning  an intermediate needed by the partner is not in the entry's chain
    chain.order                 error    a certificate in the entry's chain is not issued by the next one
    chain.bad_signature         error    a certificate's signature does not verify with its issuer's key
    cert.expired                error    a certificate of the chain has expired
    cert.not_yet_valid          error    a certificate of the chain is not valid yet
    cert.expiring               warning  a certificate of the chain expires within the given days
    cert.no_client_auth         error    the leaf has an extendedKeyUsage without clientAuth
    cert.key_usage              warning  the leaf has a keyUsage without digitalSignature
    cert.sha1_signature         warning  a non-root certificate is signed with SHA-1
    cert.md5_signature          error    a non-root certificate is signed with MD5
    trust_cert.expired          error    a given trust certificate has expired
    trust_cert.not_yet_valid    error    a given trust certificate is not valid yet
    trust_cert.expiring         warning  a given trust certificate expires within the given days
    identity.summary            info     the identity that would be presented, in one line
    file.permissions            warning  a plaintext key file is readable by group or others; for a password-
                                         encrypted store the same code comes as info (``permission_warnings``)

A keystore is usable as a client identity when no finding has severity ``error``.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from flowrun._errors import KeyMaterialError, KeyPasswordError
from flowrun._models._record import RecordRepr
from flowrun._tls._chain import complete_chain, key_mismatch_words, placeholder_message, signed_certificate_entry
from flowrun._tls._dsa import is_dsa_public_key
from flowrun._tls._keycheck import algorithm_problem, describe_key, security_level
from flowrun._tls._model import Finding, KeystoreContents, KeystoreEntry, Severity
from flowrun._tls._pem import PEM_PASSPHRASE_HINT

__all__ = ["CHAIN_HINT", "FINDING_CODES", "diagnose", "is_usable"]

FINDING_CODES: dict[str, Severity] = {
    "store.no_private_key": "error",
    "store.secret_keys": "info",
    "key_alias.ambiguous": "error",
    "key_alias.not_found": "error",
    "key_alias.not_private_key": "error",
    "key.wrong_password": "error",
    "key.unreadable": "error",
    "key.mismatch": "error",
    "key.too_small": "error",
    "key.below_3072": "info",
    "key.rsa_pss": "error",
    "key.dsa": "error",
    "key.uncommon_curve": "error",
    "key.uncommon_type": "warning",
    "chain.self_signed": "error",
    "chain.placeholder": "error",
    "chain.incomplete": "error",
    "chain.leaf_only": "warning",
    "chain.root_not_included": "info",
    "chain.not_sent": "warning",
    "chain.order": "error",
    "chain.bad_signature": "error",
    "cert.expired": "error",
    "cert.not_yet_valid": "error",
    "cert.expiring": "warning",
    "cert.no_client_auth": "error",
    "cert.key_usage": "warning",
    "cert.sha1_signature": "warning",
    "cert.md5_signature": "error",
    "trust_cert.expired": "error",
    "trust_cert.not_yet_valid": "error",
    "trust_cert.expiring": "warning",
    "identity.summary": "info",
    "file.permissions": "warning",
}

CHAIN_HINT = (
    "import root and intermediate with keytool -importcert -trustcacerts, "
    "then the signed certificate under the key's alias"
)
_CHAIN_CERTS = "or name the intermediate certificate files in chain_certs on the keystore record (--chain-cert)"


def chain_hint(store_type: str) -> str:
    """How to add the missing intermediates to a store of this type."""
    if store_type == "pkcs12":
        return ("rebuild the PKCS12 file with its intermediates (openssl pkcs12 -export -in client.crt -inkey "
                f"client.key -certfile intermediates.pem -out client.p12), {_CHAIN_CERTS}")
    if store_type == "pem":
        return f"append the intermediate certificates to the PEM file after the client certificate, {_CHAIN_CERTS}"
    return f"{CHAIN_HINT}, {_CHAIN_CERTS}"

def _self_signed_advice(store_type: str) -> str:
    """What a self-signed client certificate means for a store of this type, and the way out."""
    if store_type in ("jks", "jceks"):
        return ("it is keytool -genkeypair's placeholder, so the CSR was never signed or the signed reply never "
                f"imported. Make a CSR with keytool -certreq, have the CA sign it, then {CHAIN_HINT}")
    return ("a partner that checks client certificates against its CAs refuses it. Make a CSR from this key "
            "(openssl req -new -key client.key -out client.csr), have the CA sign it, then "
            + ("rebuild the PKCS12 file with the signed certificate and its intermediates (openssl pkcs12 -export "
               "-in client.crt -inkey client.key -certfile intermediates.pem -out client.p12)"
               if store_type == "pkcs12" else
               "replace the certificate in the PEM file with the signed one, followed by its intermediates"))


_E = TypeVar("_E", bound=x509.ExtensionType)

# A chain longer than this is a loop or garbage, not a PKI.
_MAX_CHAIN = 16


def is_usable(findings: Iterable[Finding]) -> bool:
    return not any(f.severity == "error" for f in findings)


def diagnose(
    contents: KeystoreContents,
    *,
    key_alias: str | None = None,
    key_password: str | None = None,
    store_password: str | None = None,
    trust_certs: Sequence[x509.Certificate] = (),
    chain_certs: Sequence[x509.Certificate] = (),
    within_days: int = 30,
    now: datetime | None = None,
) -> list[Finding]:
    """Check ``contents`` as a client identity; return findings, most important first in each check.

    ``key_password`` decrypts the chosen key (``None``: the store password, as keytool does);
    ``trust_certs`` are extra certificates that may complete the chain (and are checked for expiry);
    ``chain_certs`` complete the chain that is sent (a keystore record's ``chain_certs``);
    ``now`` is for tests.
    """
    check = _Diagnosis(
        contents=contents,
        trust_certs=tuple(trust_certs),
        chain_certs=tuple(chain_certs),
        within=timedelta(days=within_days),
        within_days=within_days,
        now=now if now is not None else datetime.now(UTC),
    )
    entry = check.select_entry(key_alias)
    path: list[x509.Certificate] = []
    if entry is not None:
        check.check_key(entry, key_password=key_password, store_password=store_password)
        path = check.check_chain(entry)
        check.check_leaf(entry)
        check.summarise(entry, path)
    check.check_trust_certs(skip=path)
    return check.findings


@attrs.define(repr=False)
class _Diagnosis(RecordRepr):
    contents: KeystoreContents
    trust_certs: tuple[x509.Certificate, ...]
    chain_certs: tuple[x509.Certificate, ...]
    within: timedelta
    within_days: int
    now: datetime
    findings: list[Finding] = attrs.field(factory=list)

    def add(self, code: str, message: str, alias: str | None = None) -> None:
        self.findings.append(Finding(code=code, severity=FINDING_CODES[code], message=message, alias=alias))

    # --- which entry --------------------------------------------------------------------

    def select_entry(self, key_alias: str | None) -> KeystoreEntry | None:
        entries = self.contents.entries
        keys = self.contents.private_key_entries()
        secret = [e.alias for e in entries if e.kind == "secret_key"]
        if secret:
            self.add("store.secret_keys",
                     f"secret key entries are not used for TLS and are ignored: {_names(secret)}")
        if not keys:
            self.add("store.no_private_key", _no_private_key_message(entries))
            return None
        if key_alias is None or (self.contents.type == "pem" and len(keys) == 1):
            # A PEM identity has one key and no real alias: select_identity ignores key_alias there.
            if len(keys) == 1:
                return keys[0]
            self.add("key_alias.ambiguous",
                     f"the store holds {len(keys)} private keys ({_names(e.alias for e in keys)}) and no "
                     "key alias was chosen: set key_alias (--key-alias) to the one to present")
            return None
        found = _find_alias(entries, key_alias)
        if found is None:
            close = difflib.get_close_matches(key_alias.lower(), [e.alias.lower() for e in keys], n=1)
            suggestion = f" (did you mean '{close[0]}'?)" if close else ""
            self.add("key_alias.not_found",
                     f"no entry is named '{key_alias}'{suggestion}; private key entries: "
                     f"{_names(e.alias for e in keys)}")
            return None
        if found.kind != "private_key":
            kind = "trustedCertEntry" if found.kind == "trusted_cert" else "SecretKeyEntry"
            self.add("key_alias.not_private_key",
                     f"'{found.alias}' is a {kind}, not a PrivateKeyEntry; private key entries: "
                     f"{_names(e.alias for e in keys)}. Import the signed certificate under the alias of "
                     "the key pair (keytool -importcert -alias <key alias>)", alias=found.alias)
            return None
        return found

    # --- the private key ----------------------------------------------------------------

    def check_key(
        self, entry: KeystoreEntry, *, key_password: str | None, store_password: str | None
    ) -> None:
        if entry.decrypt_key is None or not entry.certificates:
            return
        password = key_password if key_password is not None else store_password
        try:
            key = entry.decrypt_key(password)
        except KeyPasswordError:
            given = "no password was given" if password is None else "the key password is wrong"
            if self.contents.type == "pem":
                self.add("key.wrong_password",
                         f"the private key in {entry.key_source or self.contents.source} cannot be decrypted: "
                         f"{given}; {PEM_PASSPHRASE_HINT}", alias=entry.alias)
                return
            self.add("key.wrong_password",
                     f"the private key of '{entry.alias}' cannot be decrypted: {given}. A key may have its "
                     "own password (keytool's -keypass): pass it as key_password (--key-password-env)",
                     alias=entry.alias)
            return
        except KeyMaterialError as error:
            self.add("key.unreadable",
                     f"the private key of '{entry.alias}' cannot be read: {error.message}", alias=entry.alias)
            return
        if not _key_matches(key, entry.certificates[0]):
            message, hint = key_mismatch_words(self.contents, entry, _subject(entry.certificates[0]))
            self.add("key.mismatch", f"{message}: {hint}", alias=entry.alias)

    # --- the chain ----------------------------------------------------------------------

    def check_chain(self, entry: KeystoreEntry) -> list[x509.Certificate]:
        """Check order and signatures of the entry's chain, then build the path to a root."""
        alias = entry.alias
        chain = entry.certificates
        if not chain:
            self.add("chain.incomplete",
                     f"the private key entry '{alias}' has no certificate: {CHAIN_HINT}", alias=alias)
            return []
        for position, (cert, issuer) in enumerate(itertools.pairwise(chain), start=1):
            problem = _issued_by(cert, issuer)
            if problem == "name":
                self.add("chain.order",
                         f"in the chain of '{alias}', certificate #{position + 1} ({_subject(issuer)}) "
                         f"did not issue #{position} ({_subject(cert)}, issued by {_issuer(cert)}): the "
                         f"chain is out of order or holds an unrelated certificate; {CHAIN_HINT}",
                         alias=alias)
            elif problem == "signature":
                self.add("chain.bad_signature",
                         f"in the chain of '{alias}', the signature of #{position} ({_subject(cert)}) does "
                         f"not verify with the key of #{position + 1} ({_subject(issuer)}): the issuer was "
                         "re-keyed or the certificate is damaged; import the CA's current certificates",
                         alias=alias)

        leaf = chain[0]
        path, missing = self._path_to_root(leaf, chain)
        hint = chain_hint(self.contents.type)
        if len(path) == 1 and missing is None:
            holder = self._signed_elsewhere(leaf)
            if holder is not None:
                self.add("chain.placeholder", placeholder_message(alias, holder, self.contents), alias=alias)
            else:
                self.add("chain.self_signed",
                         f"the certificate of '{alias}' is self-signed ({_subject(leaf)}): "
                         f"{_self_signed_advice(self.contents.type)}", alias=alias)
        elif missing is not None and len(path) == 1:
            self.add("chain.leaf_only",
                     f"only the certificate of '{alias}' itself is sent, not its issuer {missing}: the partner "
                     "must hold that CA (fine when the partner issued the certificate or trusts that CA "
                     f"directly); if {missing} is an intermediate the partner does not hold, {hint}", alias=alias)
        elif missing is not None:
            self.add("chain.root_not_included",
                     f"the chain of '{alias}' ends at {_subject(path[-1])}, issued by {missing}, which is not in "
                     "the store: the partner holds its trusted roots, so this is the usual chain to send",
                     alias=alias)
        # What select_identity presents: the entry's chain completed from the store's trusted
        # certificates and the record's chain_certs. The partner knows its roots, not our
        # intermediates: those must be in it.
        sent = {_fingerprint(c) for c in complete_chain(
            chain, [*self.contents.trusted_certificates(), *self.chain_certs])}
        for cert in path[1:]:
            if not _is_self_signed(cert) and _fingerprint(cert) not in sent:
                self.add("chain.not_sent",
                         f"the intermediate {_subject(cert)} is not in the keystore (found only among the "
                         f"given trust certs), so it is not sent with the certificate of '{alias}' and the "
                         f"partner may not know it; {hint}", alias=alias)
        for cert in path:
            self._check_validity(cert, alias=alias, prefix="cert")
            self._check_signature_hash(cert, alias=alias)
            if cert is not leaf:
                self._check_ca_key_size(cert, alias=alias)
        return path

    def _path_to_root(
        self, leaf: x509.Certificate, chain: Sequence[x509.Certificate]
    ) -> tuple[list[x509.Certificate], str | None]:
        """Path leaf -> root, and the issuer name where it stops (None when it reaches a root)."""
        pool = _unique([*chain[1:], *self.contents.trusted_certificates(), *self.chain_certs, *self.trust_certs])
        path = [leaf]
        seen = {_fingerprint(leaf)}
        current = leaf
        while not _is_self_signed(current):
            if len(path) >= _MAX_CHAIN:
                return path, _issuer(current)
            issuer = next((c for c in pool if _fingerprint(c) not in seen and _issued_by(current, c) is None),
                          None)
            if issuer is None:
                return path, _issuer(current)
            path.append(issuer)
            seen.add(_fingerprint(issuer))
            current = issuer
        return path, None

    def _signed_elsewhere(self, leaf: x509.Certificate) -> KeystoreEntry | None:
        return signed_certificate_entry(self.contents, leaf)

    def _check_validity(self, cert: x509.Certificate, *, alias: str | None, prefix: str) -> None:
        label = "certificate" if prefix == "cert" else "trust cert"
        where = f" in the chain of '{alias}'" if alias is not None else ""
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        if self.now < not_before:
            self.add(f"{prefix}.not_yet_valid",
                     f"the {label} {_subject(cert)}{where} is not valid before {_date(not_before)}: "
                     "check the clock, or wait", alias=alias)
        elif self.now > not_after:
            days = (self.now - not_after).days
            then = " and import the new one under the key's alias" if prefix == "cert" else ""
            self.add(f"{prefix}.expired",
                     f"the {label} {_subject(cert)}{where} expired on {_date(not_after)} ({days} days ago): "
                     f"renew it{then}", alias=alias)
        elif not_after - self.now <= self.within:
            days_left = math.floor((not_after - self.now).total_seconds() / 86400)
            self.add(f"{prefix}.expiring",
                     f"the {label} {_subject(cert)}{where} expires on {_date(not_after)} ({days_left} days "
                     f"left, within {self.within_days}): renew it before then", alias=alias)

    def _check_signature_hash(self, cert: x509.Certificate, *, alias: str) -> None:
        if _is_self_signed(cert):
            return  # a root's own signature is never checked by TLS peers
        try:
            algorithm = cert.signature_hash_algorithm
        except UnsupportedAlgorithm:
            return
        if isinstance(algorithm, hashes.SHA1):
            self.add("cert.sha1_signature",
                     f"{_subject(cert)} in the chain of '{alias}' is signed with SHA-1, which current TLS "
                     "stacks refuse at their default security level: have it re-issued with SHA-256",
                     alias=alias)
        elif isinstance(algorithm, hashes.MD5):
            self.add("cert.md5_signature",
                     f"{_subject(cert)} in the chain of '{alias}' is signed with MD5, which no TLS stack "
                     "accepts: have it re-issued with SHA-256", alias=alias)

    def _check_ca_key_size(self, cert: x509.Certificate, *, alias: str) -> None:
        bits = _weak_key_bits(cert.public_key())
        if bits is not None:
            self.add("key.too_small",
                     f"the CA certificate {_subject(cert)} in the chain of '{alias}' has a {bits}-bit key, "
                     "which TLS stacks refuse: the CA must re-issue with a stronger key", alias=alias)

    # --- the leaf -----------------------------------------------------------------------

    def check_leaf(self, entry: KeystoreEntry) -> None:
        if not entry.certificates:
            return
        alias = entry.alias
        leaf = entry.certificates[0]
        key = leaf.public_key()
        description = describe_key(leaf)
        bits = _weak_key_bits(key)
        if bits is not None:
            self.add("key.too_small",
                     f"the key of '{alias}' is {description}, which OpenSSL refuses (EE_KEY_TOO_SMALL) at its "
                     f"security level {security_level()} on this machine, as do partners' TLS stacks: make a "
                     "new key pair (keytool -genkeypair -keyalg RSA -keysize 3072, or -keyalg EC -groupname "
                     "secp256r1) and have it certified", alias=alias)
        elif isinstance(key, rsa.RSAPublicKey) and key.key_size < 3072 and algorithm_problem(leaf) is None:
            self.add("key.below_3072",
                     f"the key of '{alias}' is {description}: accepted today; use 3072 bits or EC P-256 at "
                     "the next renewal", alias=alias)
        problem = algorithm_problem(leaf)
        if problem is not None:
            self.add(problem.code, problem.message(alias), alias=alias)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            self.add("key.uncommon_type",
                     f"the key of '{alias}' is {description}: only TLS 1.3 supports it and few servers "
                     "accept it; prefer RSA or EC P-256 unless the partner asked for it", alias=alias)

        try:
            extensions = leaf.extensions
        except ValueError:
            return  # undecodable extensions: the signature and validity checks still hold
        eku = _extension(extensions, x509.ExtendedKeyUsage)
        if eku is not None and not {ExtendedKeyUsageOID.CLIENT_AUTH,
                                    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(eku):
            usages = ", ".join(_oid_name(oid) for oid in eku) or "none"
            self.add("cert.no_client_auth",
                     f"the certificate of '{alias}' is not for client authentication: its extendedKeyUsage "
                     f"lists {usages} but not clientAuth, so servers refuse it; ask the CA for a certificate "
                     "with clientAuth (keytool -certreq -ext EKU=clientAuth)", alias=alias)
        key_usage = _extension(extensions, x509.KeyUsage)
        if key_usage is not None and not key_usage.digital_signature:
            self.add("cert.key_usage",
                     f"the certificate of '{alias}' has a keyUsage without digitalSignature, which a TLS "
                     "client certificate needs to sign the handshake; ask the CA for digitalSignature "
                     "(keytool -certreq -ext KU=digitalSignature)", alias=alias)

    def summarise(self, entry: KeystoreEntry, path: Sequence[x509.Certificate]) -> None:
        if not entry.certificates:
            return
        leaf = entry.certificates[0]
        days_left = math.floor((leaf.not_valid_after_utc - self.now).total_seconds() / 86400)
        if path and len(path) > 1 and _is_self_signed(path[-1]):
            reach = f"chain of {len(path)} up to root {_subject(path[-1])}"
        elif len(path) == 1 and _is_self_signed(leaf):
            reach = "self-signed"
        else:
            reach = f"chain of {len(path)}, root not found"
        self.add("identity.summary",
                 f"client identity '{entry.alias}': {_subject(leaf)} "
                 f"({describe_key(leaf)}), "
                 f"issued by {_issuer(leaf)}, valid until {_date(leaf.not_valid_after_utc)} "
                 f"({days_left} days), {reach}", alias=entry.alias)

    # --- the partner's certificates -----------------------------------------------------

    def check_trust_certs(self, *, skip: Sequence[x509.Certificate]) -> None:
        skipped = {_fingerprint(c) for c in skip}
        for cert in _unique(self.trust_certs):
            if _fingerprint(cert) not in skipped:
                self._check_validity(cert, alias=None, prefix="trust_cert")


# --- certificate helpers --------------------------------------------------------------------


def _weak_key_bits(key: CertificatePublicKeyTypes) -> int | None:
    if (isinstance(key, rsa.RSAPublicKey) or is_dsa_public_key(key)) and key.key_size < 2048:
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 256:
        return key.curve.key_size
    return None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """None when ``issuer`` issued ``cert``; else 'name' or 'signature'."""
    if cert.issuer != issuer.subject:
        return "name"
    try:
        cert.verify_directly_issued_by(issuer)
    except ValueError:
        # The names match, so the algorithm is one cryptography refuses here (SHA-1, MD5): those
        # certificates still exist and deserve their own finding, not "bad signature".
        return None if _verify_legacy_signature(cert, issuer) else "signature"
    except (InvalidSignature, TypeError, UnsupportedAlgorithm):
        return "signature"
    return None


def _verify_legacy_signature(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    try:
        algorithm = cert.signature_hash_algorithm
        parameters = cert.signature_algorithm_parameters
        if algorithm is None:
            return False
        if isinstance(key, rsa.RSAPublicKey) and isinstance(parameters, padding.PKCS1v15 | padding.PSS):
            key.verify(cert.signature, cert.tbs_certificate_bytes, parameters, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        elif is_dsa_public_key(key):
            key.verify(cert.signature, cert.tbs_certificate_bytes, algorithm)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _is_self_signed(cert: x509.Certificate) -> bool:
    return _issued_by(cert, cert) is None


def _key_matches(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        return bool(key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


def _unique(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[bytes] = set()
    unique: list[x509.Certificate] = []
    for cert in certs:
        fingerprint = _fingerprint(cert)
        if fingerprint not in seen:
            seen.add(fingerprint)
            unique.append(cert)
    return unique


def _extension(extensions: x509.Extensions, kind: type[_E]) -> _E | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = oid._name
    return oid.dotted_string if name == "Unknown OID" else name


def _subject(cert: x509.Certificate) -> str:
    return f"'{cert.subject.rfc4514_string() or '(empty subject)'}'"


def _issuer(cert: x509.Certificate) -> str:
    return f"'{cert.issuer.rfc4514_string() or '(empty issuer)'}'"


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _names(aliases: Iterable[str]) -> str:
    return ", ".join(f"'{a}'" for a in aliases)


def _find_alias(entries: Sequence[KeystoreEntry], alias: str) -> KeystoreEntry | None:
    exact = [e for e in entries if e.alias == alias]
    if exact:
        return exact[0]
    # JKS stores aliases lower-cased; PKCS12 friendly names keep their case.
    folded = [e for e in entries if e.alias.casefold() == alias.casefold()]
    return folded[0] if len(folded) == 1 else None


def _no_private_key_message(entries: Sequence[KeystoreEntry]) -> str:
    if not entries:
        return "the store is empty: it holds no PrivateKeyEntry to present as a client identity"
    trusted = [e.alias for e in entries if e.kind == "trusted_cert"]
    held = f"only trustedCertEntry ({_names(trusted)})" if trusted else "only secret keys"
    return (f"the store holds {held} and no PrivateKeyEntry, so it has no client identity: import the signed "
            "certificate under the alias of the key pair made by keytool -genkeypair (keytool -importcert "
            "-alias <key alias>), not under a new alias")
