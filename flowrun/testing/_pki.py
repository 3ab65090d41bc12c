"""A throwaway PKI for tests and the demo: root CA, intermediate CA, partner server, client.

Everything is made in memory with ``cryptography``. Files are written only on request
(``Pki.write``), and private keys reach the disk only encrypted: the partner server loads its
own key through ``load_identity_into`` without a plaintext copy on disk.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import secrets
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flowrun._tls._jks import write_jks

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
SignedBy = Literal["intermediate", "root", "other_ca"]

CLIENT_COMMON_NAME = "flowrun-demo-client"
CLIENT_KEY_ALIAS = "client"

_EKU_OIDS: dict[str, x509.ObjectIdentifier] = {
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
}
# Certificates start a little in the past so that clock skew between threads never matters.
_BACKDATE = datetime.timedelta(hours=1)


@attrs.frozen(eq=False)
class CertifiedKey:
    """A certificate with its private key and its issuers (issuer first, up to the root;
    empty for a self-signed root)."""

    certificate: x509.Certificate
    private_key: PrivateKey = attrs.field(repr=False)
    issuers: tuple[x509.Certificate, ...] = ()

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Leaf first, root last."""
        return (self.certificate, *self.issuers)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the certificate's DER: what ``PartnerServer.client_certs`` records."""
        return certificate_sha256(self.certificate)

    def chain_pem(self) -> bytes:
        return certificates_pem(self.chain)

    def key_pem(self, password: str) -> bytes:
        """The private key as an encrypted PKCS#8 PEM."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.encode()),
        )


@attrs.frozen
class ClientFiles:
    """A client identity written in every keystore format flowrun reads."""

    jks: Path
    pkcs12: Path
    cert_pem: Path
    key_pem: Path


@attrs.frozen
class PkiFiles:
    root_pem: Path          # certs/partner-root.pem: what a client trusts
    chain_pem: Path         # certs/partner-chain.pem: intermediate + root
    client: ClientFiles     # keystores/client.{jks,p12}, keystores/client-{cert,key}.pem
    server_cert_pem: Path   # server/server-cert.pem: server leaf + intermediate + root
    server_key_pem: Path    # server/server-key.pem: encrypted with the keystore password
    other_ca_pem: Path      # certs/other-ca.pem: an unrelated CA, for untrusted-server tests


@attrs.frozen(eq=False)
class Pki:
    root: CertifiedKey
    intermediate: CertifiedKey
    server: CertifiedKey
    client: CertifiedKey
    other_ca: CertifiedKey
    hostnames: tuple[str, ...]
    key_type: KeyType = "ec"
    days: int = 365

    def write(self, directory: Path, *, keystore_password: str) -> PkiFiles:
        """Write the PKI under ``directory`` (created if missing) and return the paths."""
        certs = directory / "certs"
        server_dir = directory / "server"
        certs.mkdir(parents=True, exist_ok=True)
        server_dir.mkdir(parents=True, exist_ok=True)
        root_pem = certs / "partner-root.pem"
        root_pem.write_bytes(certificates_pem([self.root.certificate]))
        chain_pem = certs / "partner-chain.pem"
        chain_pem.write_bytes(certificates_pem(self.server.issuers))
        other_ca_pem = certs / "other-ca.pem"
        other_ca_pem.write_bytes(certificates_pem([self.other_ca.certificate]))
        server_cert = server_dir / "server-cert.pem"
        server_cert.write_bytes(self.server.chain_pem())
        server_key = server_dir / "server-key.pem"
        _write_private(server_key, self.server.key_pem(keystore_password))
        client = write_client_files(
            self.client, directory / "keystores", password=keystore_password, stem="client"
        )
        return PkiFiles(
            root_pem=root_pem,
            chain_pem=chain_pem,
            client=client,
            server_cert_pem=server_cert,
            server_key_pem=server_key,
            other_ca_pem=other_ca_pem,
        )


def make_pki(
    hostnames: Sequence[str] = ("localhost", "127.0.0.1"),
    *,
    days: int = 365,
    key_type: KeyType = "ec",
) -> Pki:
    """Root CA -> intermediate CA -> partner server and client; plus one unrelated CA."""
    root = make_ca("flowrun test root CA", days=days, key_type=key_type)
    intermediate = _issue(
        root,
        subject=_name("flowrun test intermediate CA"),
        key=_new_key(key_type),
        days=days,
        ca_path_length=0,
    )
    server = issue_server_from(intermediate, hostnames, days=days, key_type=key_type)
    client = _issue_client_from(intermediate, days=days, key_type=key_type)
    other_ca = make_ca("flowrun unrelated CA", days=days, key_type=key_type)
    return Pki(
        root=root,
        intermediate=intermediate,
        server=server,
        client=client,
        other_ca=other_ca,
        hostnames=tuple(hostnames),
        key_type=key_type,
        days=days,
    )


def make_ca(common_name: str, *, days: int = 365, key_type: KeyType = "ec") -> CertifiedKey:
    """A self-signed root CA."""
    key = _new_key(key_type)
    subject = _name(common_name)
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return CertifiedKey(certificate=builder.sign(key, hashes.SHA256()), private_key=key)


def issue_client(
    pki: Pki,
    *,
    expired: bool = False,
    not_yet_valid: bool = False,
    eku: Sequence[str] = ("clientAuth",),
    signed_by: SignedBy | CertifiedKey = "intermediate",
    common_name: str = CLIENT_COMMON_NAME,
    days: int | None = None,
    key_type: KeyType | None = None,
) -> CertifiedKey:
    """A client identity variant for failure tests.

    ``eku=()`` leaves the extended key usage extension out (any use allowed); ``signed_by``
    picks the issuer: the PKI's intermediate or root, its unrelated ``other_ca``, or any CA.
    """
    return _issue_client_from(
        _issuer(pki, signed_by),
        days=pki.days if days is None else days,
        key_type=pki.key_type if key_type is None else key_type,
        expired=expired,
        not_yet_valid=not_yet_valid,
        eku=eku,
        common_name=common_name,
    )


def issue_server(
    pki: Pki,
    *,
    hostnames: Sequence[str] | None = None,
    expired: bool = False,
    eku: Sequence[str] = ("serverAuth",),
    signed_by: SignedBy | CertifiedKey = "intermediate",
    days: int | None = None,
) -> CertifiedKey:
    """A partner server identity variant (wrong hostnames, expired, untrusted issuer...)."""
    return issue_server_from(
        _issuer(pki, signed_by),
        pki.hostnames if hostnames is None else hostnames,
        days=pki.days if days is None else days,
        key_type=pki.key_type,
        expired=expired,
        eku=eku,
    )


def issue_server_from(
    issuer: CertifiedKey,
    hostnames: Sequence[str],
    *,
    days: int = 365,
    key_type: KeyType = "ec",
    expired: bool = False,
    eku: Sequence[str] = ("serverAuth",),
) -> CertifiedKey:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return _issue(
        issuer,
        subject=_name(hostnames[0] if hostnames else "flowrun partner"),
        key=_new_key(key_type),
        days=days,
        expired=expired,
        eku=eku,
        san=names,
    )


def write_client_files(
    identity: CertifiedKey,
    directory: Path,
    *,
    password: str,
    stem: str = "client",
    alias: str = CLIENT_KEY_ALIAS,
) -> ClientFiles:
    """Write ``identity`` (key + full chain) as ``{stem}.jks``, ``{stem}.p12`` and
    ``{stem}-cert.pem`` + ``{stem}-key.pem`` (key encrypted with ``password``)."""
    directory.mkdir(parents=True, exist_ok=True)
    jks = directory / f"{stem}.jks"
    write_java_keystore(jks, identity, alias=alias, password=password)
    p12 = directory / f"{stem}.p12"
    _write_private(p12, _pkcs12_bytes(identity, alias=alias, password=password))
    cert_pem = directory / f"{stem}-cert.pem"
    cert_pem.write_bytes(identity.chain_pem())
    key_pem = directory / f"{stem}-key.pem"
    _write_private(key_pem, identity.key_pem(password))
    return ClientFiles(jks=jks, pkcs12=p12, cert_pem=cert_pem, key_pem=key_pem)


def write_java_keystore(path: Path, identity: CertifiedKey, *, alias: str, password: str) -> None:
    """Write a JKS keystore holding ``identity`` (key + full chain) under ``alias``."""
    write_jks(path, alias=alias, private_key=identity.private_key, chain=identity.chain,
              password=password, trusted={})


def certificate_sha256(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def certificates_pem(certificates: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def load_identity_into(context: ssl.SSLContext, identity: CertifiedKey) -> None:
    """``context.load_cert_chain`` for an in-memory identity, without plaintext on disk.

    ``load_cert_chain`` only takes paths: an anonymous memory file (``memfd``) serves as one;
    where that is missing the key goes to a temp file encrypted with a one-time password,
    removed as soon as it is loaded.
    """
    chain = identity.chain_pem()
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and Path("/proc/self/fd").is_dir():
        plain_key = identity.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = memfd_create("flowrun-identity", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, chain + plain_key)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    one_time_password = secrets.token_urlsafe(32)
    fd, name = tempfile.mkstemp(prefix="flowrun-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(chain + identity.key_pem(one_time_password))
        context.load_cert_chain(name, password=one_time_password)
    finally:
        Path(name).unlink(missing_ok=True)


# --- building blocks ------------------------------------------------------------------------


def _issue_client_from(
    issuer: CertifiedKey,
    *,
    days: int,
    key_type: KeyType,
    expired: bool = False,
    not_yet_valid: bool = False,
    eku: Sequence[str] = ("clientAuth",),
    common_name: str = CLIENT_COMMON_NAME,
) -> CertifiedKey:
    return _issue(
        issuer,
        subject=_name(common_name),
        key=_new_key(key_type),
        days=days,
        expired=expired,
        not_yet_valid=not_yet_valid,
        eku=eku,
    )


def _issue(
    issuer: CertifiedKey,
    *,
    subject: x509.Name,
    key: PrivateKey,
    days: int,
    ca_path_length: int | None = None,
    expired: bool = False,
    not_yet_valid: bool = False,
    eku: Sequence[str] = (),
    san: Sequence[x509.GeneralName] = (),
) -> CertifiedKey:
    now = _now()
    if expired:
        not_before, not_after = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    elif not_yet_valid:
        not_before, not_after = now + datetime.timedelta(days=1), now + datetime.timedelta(days=days)
    else:
        not_before, not_after = now - _BACKDATE, now + datetime.timedelta(days=days)
    is_ca = ca_path_length is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=ca_path_length), critical=True)
        .add_extension(_ca_key_usage() if is_ca else _leaf_key_usage(key), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()),
            critical=False,
        )
    )
    if eku:
        unknown = sorted(set(eku) - set(_EKU_OIDS))
        if unknown:
            raise ValueError(f"unknown extended key usage {unknown}; known: {sorted(_EKU_OIDS)}")
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([_EKU_OIDS[name] for name in eku]), critical=False
        )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    certificate = builder.sign(issuer.private_key, hashes.SHA256())
    return CertifiedKey(certificate=certificate, private_key=key, issuers=issuer.chain)


def _issuer(pki: Pki, signed_by: SignedBy | CertifiedKey) -> CertifiedKey:
    if isinstance(signed_by, CertifiedKey):
        return signed_by
    issuers = {"intermediate": pki.intermediate, "root": pki.root, "other_ca": pki.other_ca}
    if signed_by not in issuers:
        raise ValueError(f"signed_by must be one of {sorted(issuers)} or a CertifiedKey")
    return issuers[signed_by]


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flowrun test PKI"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )


def _leaf_key_usage(key: PrivateKey) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )


def _pkcs12_bytes(identity: CertifiedKey, *, alias: str, password: str) -> bytes:
    # PBES2/AES-256 with an HMAC-SHA256 MAC: what keytool 17 writes and reads.
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(10000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
    return pkcs12.serialize_key_and_certificates(
        alias.encode(), identity.private_key, identity.certificate, list(identity.issuers), encryption
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
