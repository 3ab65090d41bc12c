"""Keystore reading entry points: type detection, dispatch to a format reader, file loading,
choosing the client identity, and reading trust store certs.

Nothing is cached here (a cache layer sits above); nothing is decrypted until an identity is
chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from flowrun._errors import (
    IncompleteChainError,
    KeyAliasError,
    KeyMismatchError,
    KeystoreFormatError,
    KeystoreNotFoundError,
    NoPrivateKeyError,
    PlaceholderCertError,
    TrustCertError,
)
from flowrun._tls._chain import (
    check_certificate,
    complete_chain,
    key_mismatch_words,
    lenient_decoding,
    load_der_certificate,
    placeholder_message,
    public_key_der,
    signed_certificate_entry,
)
from flowrun._tls._context import key_pairs_with
from flowrun._tls._detect import (
    describe_unknown,
    detect_type,
    looks_like_pem,
)
from flowrun._tls._detect import source_file as _where
from flowrun._tls._files import (
    MAX_KEY_MATERIAL_BYTES,
    check_key_material_file,
    permission_warnings,
)
from flowrun._tls._jks import read_jks
from flowrun._tls._model import ClientIdentity, KeystoreContents, KeystoreEntry, KeystoreType
from flowrun._tls._pem import load_pem_certificates, pem_blocks, read_pem

__all__ = [
    "MAX_KEY_MATERIAL_BYTES",
    "check_key_material_file",
    "detect_type",
    "load_keystore_file",
    "permission_warnings",
    "read_file_bytes",
    "read_keystore",
    "read_pem",
    "read_trust_certs",
    "select_identity",
]

_TYPE_NAMES: dict[KeystoreType, str] = {"jks": "JKS", "jceks": "JCEKS", "pkcs12": "PKCS12", "pem": "PEM"}
_JAVA_COMPATIBLE = frozenset({"jks", "pkcs12"})


def read_keystore(
    data: bytes, *, password: str | None, type: KeystoreType | None = None,
    source: str = "<memory>",
) -> KeystoreContents:
    """Read any supported keystore. An explicit ``type`` must agree with the content."""
    found = detect_type(data, source=source)
    # Java reads a "JKS" store that is really PKCS12 and the reverse (keystore.type.compat), and
    # keytool writes PKCS12 whatever the file is called: follow the content between those two.
    compatible = {type, found} <= _JAVA_COMPATIBLE
    if type is not None and type != found and not compatible:
        raise KeystoreFormatError(
            f"the keystore type is given as {type} but the file is {_TYPE_NAMES[found]}: "
            f"set type to \"{found}\"", file=_where(source),
        )
    if found in ("jks", "jceks"):
        return read_jks(data, password=password, source=source)
    if found == "pkcs12":
        # Imported for PKCS12 stores only: the start-up of a run from a JKS or PEM store skips it.
        from flowrun._tls._pkcs12 import read_pkcs12

        return read_pkcs12(data, password=password, source=source)
    return read_pem(data, password=password, source=source)


def describe_path(path: Path) -> str:
    """``path``, and ``-> target`` when a symbolic link (of the file or a folder above it) leads
    elsewhere: the file actually read is the target."""
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return str(path)
    return str(path) if real == Path(path).absolute() else f"{path} -> {real}"


def read_file_bytes(path: Path, *, what: str = "keystore") -> bytes:
    """The file's bytes; a missing file, a directory, a FIFO or device, a huge or an unreadable
    file is KeystoreNotFoundError."""
    path = Path(path)
    check_key_material_file(path, what=what)
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_KEY_MATERIAL_BYTES + 1)
    except PermissionError:
        raise KeystoreNotFoundError(f"the {what} file cannot be read (permission denied): {path}",
                                    file=path) from None
    except OSError as exc:
        raise KeystoreNotFoundError(f"the {what} file cannot be read ({exc.strerror}): {path}", file=path) from None


def load_keystore_file(
    path: Path, *, password: str | None, type: KeystoreType | None = None,
    key_path: Path | None = None,
) -> KeystoreContents:
    """Read a keystore file. ``key_path`` is a separate key file for a PEM identity."""
    data = read_file_bytes(path)
    if key_path is None:
        return read_keystore(data, password=password, type=type, source=str(path))
    found = detect_type(data, source=str(path))
    if found != "pem" or (type is not None and type != "pem"):
        raise KeystoreFormatError(
            f"a separate key file goes with a PEM certificate file, but {path} is {_TYPE_NAMES[found]}",
            file=path,
        )
    key_data = read_file_bytes(key_path, what="private key")
    return read_pem(data, key_data, password=password, source=str(path), key_source=str(key_path))


# --- choosing the identity ----------------------------------------------------------------------


def _alias_list(entries: Sequence[KeystoreEntry]) -> str:
    return ", ".join(f"'{e.alias}'" for e in entries) or "none"


def _choose_entry(contents: KeystoreContents, key_alias: str | None) -> KeystoreEntry:
    where = _where(contents.source)
    keys = contents.private_key_entries()
    if not keys:
        trusted = [e for e in contents.entries if e.kind == "trusted_cert"]
        if trusted:
            named = ""
            if key_alias is not None and any(e.alias.lower() == key_alias.lower() for e in trusted):
                named = f"; key_alias '{key_alias}' is one of them, not a PrivateKeyEntry"
            raise NoPrivateKeyError(
                f"the keystore has no private key entry, only trusted certificates "
                f"(trustedCertEntry aliases: {_alias_list(trusted)}){named}", file=where,
            )
        others = f" (secret key entries: {_alias_list(contents.entries)})" if contents.entries else ""
        raise NoPrivateKeyError(f"the keystore has no private key entry{others}", file=where)
    if contents.type == "pem" and len(keys) == 1:
        return keys[0]  # a PEM identity has one key; an alias means nothing there
    if key_alias is None:
        if len(keys) == 1:
            return keys[0]
        raise KeyAliasError(
            f"the keystore holds {len(keys)} private keys ({_alias_list(keys)}): set key_alias to one of them",
            file=where,
        )
    wanted = key_alias.lower()
    for entry in keys:
        if entry.alias.lower() == wanted:
            return entry
    other = next((e for e in contents.entries if e.alias.lower() == wanted), None)
    if other is not None:
        kind = "a trustedCertEntry" if other.kind == "trusted_cert" else "a secret key entry"
        raise KeyAliasError(
            f"key_alias '{key_alias}' is {kind}, not a private key entry; private key entries: "
            f"{_alias_list(keys)}", file=where,
        )
    import difflib

    close = difflib.get_close_matches(wanted, [e.alias.lower() for e in keys], n=1, cutoff=0.6)
    suggestion = f" (did you mean '{close[0]}'?)" if close else ""
    raise KeyAliasError(
        f"no private key entry with alias '{key_alias}'{suggestion}; private key entries: {_alias_list(keys)}",
        file=where,
    )


def select_identity(
    contents: KeystoreContents, *, key_alias: str | None, key_password: str | None,
    store_password: str | None, chain_certs: Sequence[x509.Certificate] = (),
) -> ClientIdentity:
    """The private key and chain (leaf first) to present. Aliases match case-insensitively, as in
    Java. A key without its own password uses the store password. The chain is completed from the
    store's trusted certificates and ``chain_certs`` (a keystore record's) when the entry's own
    chain stops short of a self-issued one."""
    entry = _choose_entry(contents, key_alias)
    where = _where(contents.source)
    if not entry.certificates:
        raise IncompleteChainError(f"the private key entry '{entry.alias}' has no certificate", file=where)
    holder = signed_certificate_entry(contents, entry.certificates[0])
    if holder is not None:
        raise PlaceholderCertError(placeholder_message(entry.alias, holder, contents), file=where)
    assert entry.decrypt_key is not None
    password = key_password if key_password is not None else store_password
    chain = complete_chain(entry.certificates, [*contents.trusted_certificates(), *chain_certs])
    leaf = chain[0]
    if entry.recover_key is not None:
        pkcs8 = entry.recover_key(password)
        if key_pairs_with(pkcs8, leaf):
            return ClientIdentity(alias=entry.alias, chain=chain, pkcs8=pkcs8)
        # Not paired by OpenSSL: decoding the key below words what is wrong, as for other stores.
    key = entry.decrypt_key(password)
    if public_key_der(key.public_key()) != public_key_der(leaf.public_key()):
        message, hint = key_mismatch_words(contents, entry, f"({leaf.subject.rfc4514_string()})")
        raise KeyMismatchError(message, hint=hint, file=where)
    return ClientIdentity(alias=entry.alias, chain=chain, key=key)


# --- trust store certs --------------------------------------------------------------------------


def read_trust_certs(
    data: bytes, *, format: str | None, source: str = "<memory>",
) -> tuple[x509.Certificate, ...]:
    """Certificates from a trust store cert: PEM (one or a bundle, or a PKCS#7 block) or DER
    (one certificate, or a PKCS#7 .p7b). ``format=None`` goes by the content."""
    where = _where(source)
    if not data.strip():
        raise TrustCertError(f"the trust store cert {source} is empty", file=where)
    is_pem = looks_like_pem(data)
    if format is None:
        format = "pem" if is_pem else "der"
    if format == "pem":
        if not is_pem:
            raise TrustCertError(
                f"the trust store cert {source} is set as pem but holds no PEM block"
                + (" (it is binary: set format to der)" if not data[:64].isascii() else ""),
                file=where,
            )
        blocks = pem_blocks(data, source=source, error=TrustCertError)
        certs = load_pem_certificates(blocks, source, error=TrustCertError)
        for block in (b for b in blocks if b.label in ("PKCS7", "CMS")):
            from cryptography.hazmat.primitives.serialization import pkcs7  # pulls in the email package

            try:
                with lenient_decoding():
                    certs += [check_certificate(c) for c in pkcs7.load_pem_pkcs7_certificates(block.text)]
            except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
                raise TrustCertError(f"the PKCS#7 block in {source} cannot be decoded", file=where) from None
        if not certs:
            labels = ", ".join(sorted({b.label for b in blocks})) or "nothing"
            raise TrustCertError(f"the trust store cert {source} holds no certificate (found: {labels})",
                                 file=where)
        return tuple(certs)
    if format != "der":
        raise TrustCertError(f"unknown trust store cert format '{format}' (pem or der)", file=where)
    if is_pem:
        raise TrustCertError(f"the trust store cert {source} is set as der but is PEM text: set format to pem",
                             file=where)
    try:
        return (load_der_certificate(data),)
    except (ValueError, UnsupportedAlgorithm):
        pass
    from cryptography.hazmat.primitives.serialization import pkcs7

    try:
        with lenient_decoding():
            bundle = tuple(check_certificate(c) for c in pkcs7.load_der_pkcs7_certificates(data))
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        bundle = ()
    if bundle:
        return bundle
    raise TrustCertError(
        f"the trust store cert {source} is not a DER certificate ({describe_unknown(data)})", file=where,
    )
