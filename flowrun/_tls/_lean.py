"""The lean path: a client identity from a JKS store or PEM files, and trust store certs, as DER for
OpenSSL, without importing ``cryptography`` (its x509 package is ~30 ms of every cold start).

Most runs use a store keytool wrote (one key entry whose chain ends in a self-signed root) or PEM
files OpenSSL wrote (an unencrypted PKCS#8 key, the chain leaf first), with an RSA or
P-256/384/521 key and a certificate that is not about to expire; and a PEM root as trust. For those
the few certificate fields the checks need (issuer and subject as encoded, validity end, key
algorithm) are read from the DER here, and OpenSSL checks the rest (it pairs the key with the
leaf, parses every certificate and refuses weak keys when the context loads them).

Anything else returns None and the caller takes the full path (``_read``), which decodes every
certificate with ``cryptography`` and words every problem: a wrong password, a damaged entry, a
placeholder certificate, a chain to complete from trusted entries, an expiring certificate (its
warning names the subject), a key type OpenSSL will not sign with. So the lean path never raises
and never decides anything the full path would word differently; tests compare the two on stores
keytool writes (tests/tls/test_lean_path.py).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re

import attrs

from flowrun._models._record import RecordRepr
from flowrun._tls import _der
from flowrun._tls._context import key_pairs_with
from flowrun._tls._jks import TAG_PRIVATE_KEY, read_jks_raw, recover_jks_key
from flowrun._tls._model import PEM_KEY_ALIAS, ClientIdentity

_RSA = "1.2.840.113549.1.1.1"
_EC = "1.2.840.10045.2.1"
# The curves OpenSSL signs TLS handshakes with (``_keycheck.TLS_CURVES``): P-256, P-384, P-521.
_TLS_CURVES = frozenset({"1.2.840.10045.3.1.7", "1.3.132.0.34", "1.3.132.0.35"})
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
# As ``_material.EXPIRY_WARNING_DAYS``: a certificate this close to its end takes the full path,
# whose warning names it.
_EXPIRY_MARGIN = datetime.timedelta(days=15)


@attrs.frozen(eq=False, repr=False)
class CertificateFields(RecordRepr):
    """What the lean checks read from a certificate. Names are compared as encoded: two encodings
    of the same name (PrintableString and UTF8String) differ here, and the full path decides."""

    issuer: bytes
    subject: bytes
    not_after: datetime.datetime
    key_algorithm: str
    key_parameter: str | None  # an EC key's named curve
    public_key: bytes  # the SubjectPublicKeyInfo as encoded

    @property
    def self_issued(self) -> bool:
        return self.issuer == self.subject

    @property
    def usable_key(self) -> bool:
        """RSA, or EC on a curve OpenSSL signs TLS handshakes with (``_keycheck.algorithm_problem``
        finds nothing wrong with these; OpenSSL refuses a too small RSA key when loading it)."""
        return self.key_algorithm == _RSA or (self.key_algorithm == _EC and self.key_parameter in _TLS_CURVES)


def _tbs_fields(der: bytes) -> list[_der.Tlv] | None:
    """serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ... of a DER
    certificate (the version dropped), or None when it is not that structure."""
    certificate = _der.parse(der).expect(_der.SEQUENCE).children()
    if len(certificate) != 3:
        return None
    tbs = certificate[0].expect(_der.SEQUENCE).children()
    fields = tbs[1:] if tbs[0].tag == _der.CONTEXT_0 else tbs
    return fields if len(fields) >= 6 else None


def certificate_fields(der: bytes) -> CertificateFields | None:
    """The fields of a DER certificate, or None when it is not the plain X.509 v1-v3 structure."""
    try:
        fields = _tbs_fields(der)
        if fields is None:
            return None
        issuer, validity, subject, spki = fields[2], fields[3], fields[4], fields[5]
        times = validity.expect(_der.SEQUENCE).children()
        algorithm = spki.expect(_der.SEQUENCE).children()[0].expect(_der.SEQUENCE).children()
        not_after = _time(times[1]) if len(times) == 2 else None
        if not_after is None:
            return None
        key_algorithm = _der.read_oid(algorithm[0])
        parameter = _der.read_oid(algorithm[1]) if len(algorithm) > 1 and algorithm[1].tag == _der.OID else None
        return CertificateFields(
            issuer=_der.encode(issuer.expect(_der.SEQUENCE).tag, issuer.value),
            subject=_der.encode(subject.expect(_der.SEQUENCE).tag, subject.value),
            not_after=not_after, key_algorithm=key_algorithm, key_parameter=parameter,
            public_key=_der.encode(spki.tag, spki.value),
        )
    except (_der.DerError, IndexError):
        return None


# As cryptography's ``Name.rfc4514_string`` writes them: these short names, the dotted OID otherwise.
_SHORT_NAMES = {"2.5.4.3": "CN", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
                "2.5.4.6": "C", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
                "0.9.2342.19200300.100.1.1": "UID"}
# UTF8String, PrintableString, IA5String: nearly every name. Others (BMPString, TeletexString,
# bit strings) are left to cryptography.
_TEXT_TAGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii"}


def subject_text(der: bytes) -> str | None:
    """A certificate's subject as ``cryptography``'s ``subject.rfc4514_string()`` writes it (the
    reports show subjects; importing ``cryptography.x509`` to write them is ~30 ms of a one-step
    run). None for a name this does not write exactly that way: the caller then asks cryptography.
    Tests compare the two on names with every escape."""
    try:
        fields = _tbs_fields(der)
    except (_der.DerError, IndexError, ValueError):
        return None
    rdns = _name_attributes(fields[4]) if fields is not None else None
    if rdns is None:
        return None
    return ",".join("+".join(f"{_SHORT_NAMES.get(oid, oid)}={_escaped(value)}" for oid, value in rdn)
                    for rdn in reversed(rdns))


def _name_attributes(name: _der.Tlv) -> list[list[tuple[str, str]]] | None:
    """Each RDN of a name as its (dotted OID, value) pairs, values decoded as cryptography decodes
    them; None for an empty RDN or a value of another string type (left to cryptography)."""
    try:
        rdns: list[list[tuple[str, str]]] = []
        for rdn in name.expect(_der.SEQUENCE).children():
            attributes: list[tuple[str, str]] = []
            for attribute in rdn.expect(_der.SET).children():
                oid, value = attribute.expect(_der.SEQUENCE).children()
                encoding = _TEXT_TAGS.get(value.tag)
                if encoding is None:
                    return None
                attributes.append((_der.read_oid(oid), value.value.decode(encoding)))
            if not attributes:
                return None
            rdns.append(attributes)
        return rdns
    except (_der.DerError, IndexError, ValueError):
        return None


NameKey = tuple[frozenset[tuple[str, str]], ...]


def name_key(name_der: bytes) -> NameKey | None:
    """A name as cryptography's ``Name.__eq__`` compares it (RDNs in order, the attributes of each
    as a set, values as text whatever their string type); None where that is not known here."""
    try:
        rdns = _name_attributes(_der.parse(name_der))
    except (_der.DerError, IndexError, ValueError):
        return None
    return tuple(frozenset(rdn) for rdn in rdns) if rdns is not None else None


def _escaped(value: str) -> str:
    # RFC 4514 section 2.4, character for character as cryptography's ``_escape_dn_value``.
    if not value:
        return ""
    for special, escaped in (("\\", "\\\\"), ('"', '\\"'), ("+", "\\+"), (",", "\\,"), (";", "\\;"),
                             ("<", "\\<"), (">", "\\>"), ("\0", "\\00")):
        value = value.replace(special, escaped)
    if value[0] == "#" or (value[0] == " " and len(value) > 1):
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value


_TIME_FORMATS = {_UTC_TIME: (re.compile(rb"\d{12}Z"), "%y%m%d%H%M%SZ"),
                 _GENERALIZED_TIME: (re.compile(rb"\d{14}Z"), "%Y%m%d%H%M%SZ")}


def _time(tlv: _der.Tlv) -> datetime.datetime | None:
    known = _TIME_FORMATS.get(tlv.tag)
    if known is None or not known[0].fullmatch(tlv.value):
        return None
    try:
        # UTCTime's two-digit years: 50-99 are 1950-1999 (RFC 5280), as strptime's %y does not say.
        parsed = datetime.datetime.strptime(tlv.value.decode("ascii"), known[1])
    except ValueError:
        return None
    if tlv.tag == _UTC_TIME and parsed.year >= 2050:
        parsed = parsed.replace(year=parsed.year - 100)
    return parsed.replace(tzinfo=datetime.UTC)


# --- the client identity from a JKS store ------------------------------------------------------


def lean_jks_identity(data: bytes, *, password: str | None, key_alias: str | None, key_password: str | None,
                      now: datetime.datetime | None = None) -> ClientIdentity | None:
    """The identity a clean JKS store holds, or None (take the full path)."""
    if password is None:
        return None
    entries = read_jks_raw(data, password)
    if entries is None:
        return None
    keys = [entry for entry in entries if entry[0] == TAG_PRIVATE_KEY]
    if key_alias is None:
        chosen = keys[0] if len(keys) == 1 else None
    else:
        chosen = next((entry for entry in keys if entry[1].lower() == key_alias.lower()), None)
    if chosen is None or not chosen[3]:
        return None
    _, alias, protected, chain = chosen
    parsed = [certificate_fields(der) for der in chain]
    # Every certificate of the store decodes on the full path, or the store is called damaged.
    others = [certificate_fields(der) for entry in entries if entry is not chosen for der in entry[3]]
    if any(fields is None for fields in (*parsed, *others)):
        return None
    leaf, last = parsed[0], parsed[-1]
    assert leaf is not None and last is not None
    if not last.self_issued or not leaf.usable_key:
        return None  # a chain to complete from the store's trusted entries, or a key to word
    if leaf.self_issued and any(fields is not None and fields.public_key == leaf.public_key for fields in others):
        return None  # the keytool placeholder mistake (``_chain.signed_certificate_entry``)
    if leaf.not_after - (now or datetime.datetime.now(datetime.UTC)) < _EXPIRY_MARGIN:
        return None
    pkcs8 = recover_jks_key(protected, key_password if key_password is not None else password)
    if pkcs8 is None or not key_pairs_with(pkcs8, chain[0]):
        return None
    return ClientIdentity(alias=alias, chain_der=chain, pkcs8=pkcs8, checked=True)


# --- the client identity from PEM files --------------------------------------------------------


def lean_pem_identity(data: bytes, key_data: bytes | None, *, now: datetime.datetime | None = None,
                      ) -> ClientIdentity | None:
    """The identity of PEM files (a certificate file and, or with, a key file) that hold one
    unencrypted PKCS#8 key (``PRIVATE KEY``, as ``openssl genpkey`` and ``openssl pkcs12 -nodes``
    write it) and its chain leaf first, each certificate followed by its issuer, as OpenSSL and
    most CAs write them; or None (take the full path, which orders the certificates itself)."""
    allowed = {_CERTIFICATE, _PRIVATE_KEY}
    blocks = _plain_blocks(data, allowed)
    key_blocks = _plain_blocks(key_data, allowed) if key_data is not None else []
    if blocks is None or key_blocks is None:
        return None
    keys = [der for label, der in (*blocks, *key_blocks) if label == _PRIVATE_KEY]
    # The key file's certificates come after the certificate file's, as on the full path.
    chain = [der for label, der in (*blocks, *key_blocks) if label == _CERTIFICATE]
    if len(keys) != 1 or not chain:
        return None
    parsed = [certificate_fields(der) for der in chain]
    if any(fields is None for fields in parsed):
        return None
    names = [(name_key(fields.issuer), name_key(fields.subject)) for fields in parsed if fields is not None]
    subjects = [subject for _, subject in names]
    if any(issuer is None or subject is None for issuer, subject in names) or len(set(subjects)) != len(subjects):
        return None  # a name this cannot compare, or two certificates for one name (renewed CAs)
    # Leaf first, each certificate issued by the next; the last one self-issued or issued by none
    # of them. The full path then picks the same leaf and builds the same chain, and none is left.
    for (issuer, subject), next_subject in zip(names, subjects[1:], strict=False):
        if issuer == subject or issuer != next_subject:
            return None
    last_issuer, last_subject = names[-1]
    if last_issuer != last_subject and last_issuer in subjects:
        return None
    leaf = parsed[0]
    assert leaf is not None
    if not leaf.usable_key or leaf.not_after - (now or datetime.datetime.now(datetime.UTC)) < _EXPIRY_MARGIN:
        return None
    if not key_pairs_with(keys[0], chain[0]):
        return None
    return ClientIdentity(alias=PEM_KEY_ALIAS, chain_der=tuple(chain), pkcs8=keys[0], checked=True)


# --- trust store certs ------------------------------------------------------------------------

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END ([A-Z0-9 ]+)-----", re.DOTALL)
_BEGIN = re.compile(rb"-----BEGIN ")


def lean_trust_certificates(data: bytes, format: str | None) -> tuple[bytes, ...] | None:
    """The DER of each certificate of a trust store cert that is plain PEM CERTIFICATE blocks or
    one DER certificate; None for anything else (PKCS#7, other blocks, headers, damage)."""
    is_pem = _BEGIN.search(data) is not None
    if not is_pem:
        if format == "pem" or certificate_fields(data) is None:
            return None
        return (data,)
    if format == "der":
        return None
    blocks = _plain_blocks(data, {_CERTIFICATE})
    if not blocks or any(certificate_fields(der) is None for _, der in blocks):
        return None
    return tuple(der for _, der in blocks)


_CERTIFICATE, _PRIVATE_KEY = b"CERTIFICATE", b"PRIVATE KEY"


def _plain_blocks(data: bytes, labels: set[bytes]) -> list[tuple[bytes, bytes]] | None:
    """(label, DER) of each PEM block, in file order, when every block has one of ``labels`` and
    is plain base64 (no headers); None otherwise."""
    blocks = _PEM_BLOCK.findall(data)
    if len(blocks) != len(_BEGIN.findall(data)):
        return None
    found: list[tuple[bytes, bytes]] = []
    for begin, body, end in blocks:
        if begin != end or begin not in labels:
            return None
        try:
            found.append((begin, base64.b64decode(b"".join(body.split()), validate=True)))
        except (binascii.Error, ValueError):
            return None
    return found
