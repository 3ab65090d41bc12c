"""Build real keystores with Java's ``keytool``, the way the article tells users to.

The steps are the article's: ``-genkeypair``, ``-certreq``, the CA signs the request
(root -> intermediate -> leaf), ``-importcert -trustcacerts`` of root and intermediate
(trustedCertEntry aliases ``root`` and ``intermediate``), then the signed certificate under the
key pair's alias, which turns the entry into a PrivateKeyEntry with a chain of three.

The CA side uses ``cryptography`` only. Every helper writes under the directory it is given.
A missing ``keytool`` skips the calling test (or fixture) instead of failing it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

StoreType = Literal["JKS", "JCEKS", "PKCS12"]
KeyType = Literal["RSA", "EC"]
ChainMode = Literal["full", "leaf_only", "none"]

# JVM options for every keytool run. Measured: C1-only or serial-GC flags start a little faster
# but run the PKCS12 key derivations slower, so the defaults win overall.
_JVM_FLAGS: tuple[str, ...] = ()


def keytool_path() -> str | None:
    return shutil.which("keytool")


def require_keytool() -> str:
    path = keytool_path()
    if path is None:
        pytest.skip("Java's keytool is not on PATH")
    return path


def run_keytool(*args: str, legacy_pkcs12: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run keytool with a UTF-8 locale: the JVM decodes command-line arguments (passwords too)
    with the locale's charset, so under LANG=C a non-ASCII password would become '?'."""
    exe = require_keytool()
    flags = list(_JVM_FLAGS)
    if legacy_pkcs12:
        flags.append("-J-Dkeystore.pkcs12.legacy")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "JAVA_TOOL_OPTIONS"))}
    env["LANG"] = env["LC_ALL"] = "C.UTF-8"
    proc = subprocess.run(
        [exe, *flags, *args], capture_output=True, text=True, encoding="utf-8", env=env,
        stdin=subprocess.DEVNULL, timeout=120, check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"keytool {args[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def keytool_list(path: Path, storepass: str, *, storetype: str | None = None) -> str:
    """``keytool -list -v`` output (what a user would look at)."""
    args = ["-list", "-v", "-keystore", str(path), "-storepass", storepass]
    if storetype:
        args += ["-storetype", storetype]
    return run_keytool(*args).stdout


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Flowrun Test"),
    ])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, eq=False)
class CA:
    """A certificate authority: its key, its certificate, and the certificate as a PEM file."""

    name: str
    key: CertificateIssuerPrivateKeyTypes = field(repr=False)
    cert: x509.Certificate
    cert_path: Path
    tmp: Path

    @property
    def cert_pem(self) -> bytes:
        return pem(self.cert)

    def issue_intermediate(self, name: str = "Test Intermediate CA", *, days: int = 3650) -> CA:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(days=1))
            .not_valid_after(_now() + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(_aki(self.cert), critical=False)
        )
        cert = builder.sign(self.key, hashes.SHA256())
        return _save_ca(self.tmp, name, key, cert)

    def issue_leaf(
        self, public_key: object, common_name: str, *, days: int = 365,
        not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
        client_auth: bool = True,
    ) -> x509.Certificate:
        start = not_before if not_before is not None else _now() - dt.timedelta(hours=1)
        end = not_after if not_after is not None else start + dt.timedelta(days=days)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else [ExtendedKeyUsageOID.SERVER_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
            .add_extension(_aki(self.cert), critical=False)
        )
        return builder.sign(self.key, hashes.SHA256())

    def sign_csr(
        self, csr_pem: bytes, *, days: int = 365, not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None, client_auth: bool = True,
    ) -> x509.Certificate:
        """Sign a certificate request (keytool -certreq output) as the CA would."""
        csr = x509.load_pem_x509_csr(csr_pem)
        common_name = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return self.issue_leaf(
            csr.public_key(), str(common_name), days=days, not_before=not_before,
            not_after=not_after, client_auth=client_auth,
        )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _save_ca(tmp: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> CA:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / (name.lower().replace(" ", "-") + f"-{cert.serial_number % 10**8}.pem")
    path.write_bytes(pem(cert))
    return CA(name=name, key=key, cert=cert, cert_path=path, tmp=tmp)


def make_ca(tmp: Path, name: str = "Test Root CA") -> CA:
    """A self-signed root CA (EC P-256: fast to make)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(days=1))
        .not_valid_after(_now() + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _save_ca(tmp, name, key, cert)


@dataclass(frozen=True, eq=False)
class KeytoolStore:
    """A store keytool wrote, with what went into it."""

    path: Path
    storetype: StoreType
    storepass: str
    keypass: str  # the key password in effect (PKCS12: always the store password)
    alias: str
    root: CA
    intermediate: CA
    # Signed leaf certificate per private key alias (absent for chain_mode "none").
    leaves: dict[str, x509.Certificate]

    @property
    def leaf(self) -> x509.Certificate:
        return self.leaves[self.alias]

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The full chain leaf first, as a full import makes it."""
        return (self.leaf, self.intermediate.cert, self.root.cert)


_CA_STORE_MEMO: dict[tuple[object, ...], bytes] = {}


def _store_args(path: Path, storetype: str, storepass: str) -> list[str]:
    return ["-keystore", str(path), "-storetype", storetype, "-storepass", storepass]


def _keyalg_args(key_type: KeyType) -> list[str]:
    if key_type == "EC":
        return ["-keyalg", "EC", "-groupname", "secp256r1"]
    return ["-keyalg", "RSA", "-keysize", "2048"]


def _keypass_args(storetype: str, keypass: str) -> list[str]:
    # keytool ignores (and warns about) -keypass for PKCS12: there the key password is the store's.
    return [] if storetype == "PKCS12" else ["-keypass", keypass]


def build_keytool_store(
    tmp: Path,
    *,
    storetype: StoreType = "JKS",
    key_type: KeyType = "EC",
    alias: str = "client",
    storepass: str = "changeit",
    keypass: str | None = None,
    chain_mode: ChainMode = "full",
    expired: bool = False,
    extra_private_keys: Sequence[str] = (),
    trusted_only: bool = False,
    ca: CA | None = None,
    intermediate: CA | None = None,
    import_ca_certs: bool | None = None,
    secret_keys: Sequence[str] = (),
    legacy_pkcs12: bool = False,
    filename: str | None = None,
    client_auth: bool = True,
) -> KeytoolStore:
    """Build a keystore with the real keytool.

    chain_mode:
      * ``full``: the article's steps; the PrivateKeyEntry's chain is leaf, intermediate, root.
      * ``leaf_only``: the entry's chain is the CA-signed leaf alone. keytool refuses to import a
        reply it cannot chain, and deleting the CA entries afterwards leaves the entry's chain
        intact, so this is built as: keytool -genkeypair + -certreq in a scratch PKCS12 store, the
        CA signs, the key and the leaf alone go into a PKCS12 written with ``cryptography``, and
        ``keytool -importkeystore`` copies that entry into the target store. No CA entries are
        imported unless ``import_ca_certs=True`` (which does not change the entry's chain).
      * ``none``: the self-signed key pair as ``-genkeypair`` made it.
    trusted_only: no key pair at all: root, intermediate and the signed certificate imported as
      trustedCertEntry (the last one under ``alias``): the article's gotcha.
    extra_private_keys: more aliases, each with its own key pair, signed and imported like ``alias``.
    secret_keys: aliases of AES secret keys made with ``-genseckey`` (JCEKS, PKCS12).
    legacy_pkcs12: write PKCS12 as Java 8 did (RC2-40 certificates, 3DES keys, SHA1 MAC).
    """
    tmp.mkdir(parents=True, exist_ok=True)
    effective_keypass = storepass if (keypass is None or storetype == "PKCS12") else keypass
    suffix = {"JKS": "jks", "JCEKS": "jceks", "PKCS12": "p12"}[storetype]
    path = tmp / (filename or f"{alias}-{storetype.lower()}-{key_type.lower()}-{chain_mode}.{suffix}")
    if path.exists():
        path.unlink()
    work = tmp / f".work-{path.name}"
    work.mkdir(exist_ok=True)
    root = ca if ca is not None else make_ca(work, "Test Root CA")
    inter = intermediate if intermediate is not None else root.issue_intermediate("Test Intermediate CA")
    legacy = legacy_pkcs12 and storetype == "PKCS12"
    store = _store_args(path, storetype, storepass)
    leaves: dict[str, x509.Certificate] = {}

    def kt(*args: str) -> subprocess.CompletedProcess[str]:
        if storetype == "JCEKS" and not storepass.isascii():
            # keytool 17 fails with "getSecretKey failed: Password is not ASCII" when -trustcacerts
            # meets a JCEKS store whose password is not ASCII; without it the store works. (keytool
            # cannot write a PKCS12 store with such a password at all.)
            args = tuple(a for a in args if a != "-trustcacerts")
        return run_keytool(*args, legacy_pkcs12=legacy)

    def import_cas() -> None:
        # A new store holding just root and intermediate is the same for every store of one type and
        # password: keytool makes it once per process, later stores start from a copy (fewer JVM runs).
        fresh = not path.exists()
        memo_key = (storetype, storepass, legacy, pem(root.cert), pem(inter.cert))
        if fresh and memo_key in _CA_STORE_MEMO:
            path.write_bytes(_CA_STORE_MEMO[memo_key])
            return
        kt("-importcert", "-trustcacerts", "-noprompt", "-alias", "root", "-file", str(root.cert_path), *store)
        kt("-importcert", "-trustcacerts", "-noprompt", "-alias", "intermediate",
           "-file", str(inter.cert_path), *store)
        if fresh:
            _CA_STORE_MEMO[memo_key] = path.read_bytes()

    validity: dict[str, dt.datetime] = {}
    if expired:
        validity = {"not_before": _now() - dt.timedelta(days=60), "not_after": _now() - dt.timedelta(days=1)}

    if trusted_only:
        import_cas()
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = inter.issue_leaf(key.public_key(), alias, client_auth=client_auth, **validity)
        leaf_path = work / f"{alias}-signed.pem"
        leaf_path.write_bytes(pem(leaf))
        kt("-importcert", "-trustcacerts", "-noprompt", "-alias", alias, "-file", str(leaf_path), *store)
        return KeytoolStore(path, storetype, storepass, effective_keypass, alias, root, inter, {})

    def genkeypair(target: list[str], entry_alias: str, kp: str, stype: str) -> None:
        kt("-genkeypair", "-alias", entry_alias, *_keyalg_args(key_type),
           "-dname", f"CN={entry_alias}, O=Flowrun Test", "-validity", "365",
           *target, *_keypass_args(stype, kp))

    def certreq(target: list[str], entry_alias: str, kp: str, stype: str) -> x509.Certificate:
        csr_path = work / f"{entry_alias}.csr"
        kt("-certreq", "-alias", entry_alias, "-file", str(csr_path), *target, *_keypass_args(stype, kp))
        return inter.sign_csr(csr_path.read_bytes(), client_auth=client_auth, **validity)

    def signed_entry(entry_alias: str) -> None:
        genkeypair(store, entry_alias, effective_keypass, storetype)
        leaf = certreq(store, entry_alias, effective_keypass, storetype)
        leaf_path = work / f"{entry_alias}-signed.pem"
        leaf_path.write_bytes(pem(leaf))
        kt("-importcert", "-trustcacerts", "-noprompt", "-alias", entry_alias, "-file", str(leaf_path),
           *store, *_keypass_args(storetype, effective_keypass))
        leaves[entry_alias] = leaf

    if chain_mode == "full":
        if import_ca_certs is False:
            raise ValueError("chain_mode 'full' needs the CA certificates in the store")
        import_cas()
        signed_entry(alias)
    elif chain_mode == "none":
        genkeypair(store, alias, effective_keypass, storetype)
        if import_ca_certs:
            import_cas()
    else:  # leaf_only
        scratch = work / f"{alias}-scratch.p12"
        scratch_pass = "scratchpass"
        scratch_store = _store_args(scratch, "PKCS12", scratch_pass)
        genkeypair(scratch_store, alias, scratch_pass, "PKCS12")
        leaf = certreq(scratch_store, alias, scratch_pass, "PKCS12")
        loaded = pkcs12.load_pkcs12(scratch.read_bytes(), scratch_pass.encode())
        assert loaded.key is not None
        single = work / f"{alias}-leaf-only.p12"
        single.write_bytes(pkcs12.serialize_key_and_certificates(
            alias.encode(), loaded.key, leaf, None,  # type: ignore[arg-type]
            serialization.BestAvailableEncryption(scratch_pass.encode()),
        ))
        kt("-importkeystore", "-noprompt", "-srckeystore", str(single), "-srcstoretype", "PKCS12",
           "-srcstorepass", scratch_pass, "-srcalias", alias, "-destalias", alias,
           "-destkeystore", str(path), "-deststoretype", storetype, "-deststorepass", storepass,
           *(["-destkeypass", effective_keypass] if storetype != "PKCS12" else []))
        leaves[alias] = leaf
        if import_ca_certs:
            import_cas()

    for extra in extra_private_keys:
        if chain_mode != "full":
            raise ValueError("extra_private_keys are signed like the main key: use chain_mode 'full'")
        signed_entry(extra)

    for secret_alias in secret_keys:
        kt("-genseckey", "-alias", secret_alias, "-keyalg", "AES", "-keysize", "128", *store,
           *_keypass_args(storetype, effective_keypass))

    # keytool writes with the umask (often 0644); a store holding a private key belongs to its
    # owner alone, or flowrun warns about it (file.permissions).
    path.chmod(0o600)
    return KeytoolStore(path, storetype, storepass, effective_keypass, alias, root, inter, leaves)


class StoreFactory:
    """Builds each distinct store once per session, all signed by the same root and intermediate."""

    def __init__(self, base: Path, root: CA, intermediate: CA) -> None:
        self._base = base
        self._root = root
        self._intermediate = intermediate
        self._built: dict[tuple[object, ...], KeytoolStore] = {}

    def __call__(self, **options: object) -> KeytoolStore:
        key = tuple(sorted((k, tuple(v) if isinstance(v, list | tuple) else v) for k, v in options.items()))
        if key not in self._built:
            folder = self._base / f"store-{len(self._built)}"
            self._built[key] = build_keytool_store(
                folder, ca=self._root, intermediate=self._intermediate, **options,  # type: ignore[arg-type]
            )
        return self._built[key]


def private_key_pem(key: object) -> bytes:
    """Unencrypted PKCS#8 PEM of a key (test convenience)."""
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
    )


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())
