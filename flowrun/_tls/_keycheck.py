"""Client keys that OpenSSL loads but will not sign a TLS handshake with, and OpenSSL's refusals.

Measured with OpenSSL 3.0 against an OpenSSL server requiring a client certificate:

* an RSA-PSS key (SubjectPublicKeyInfo id-RSASSA-PSS) fails ``load_cert_chain`` with
  ``NO_CERTIFICATE_ASSIGNED`` once re-encoded as PKCS#8;
* a DSA key works with TLS 1.2 only: under TLS 1.3 the client sends no certificate at all and
  the server answers ``certificate required``;
* an EC key on a curve other than P-256, P-384 or P-521 (secp256k1, brainpool) is refused
  with TLS 1.2 (``WRONG_CURVE``) and not sent with TLS 1.3;
* an RSA key under 2048 bits fails ``load_cert_chain`` with ``EE_KEY_TOO_SMALL`` at security
  level 2 (Debian's default): the size limit is OpenSSL's to decide, so it is mapped from its
  refusal rather than guessed here.

``keystore inspect`` reports these as findings; building an SSL context raises the errors.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from flowrun._errors import KeyAlgorithmError, KeyTooSmallError, KeyUnusableError
from flowrun._models._record import ValueRecord
from flowrun._tls._dsa import is_dsa_public_key

__all__ = ["TLS_CURVES", "KeyProblem", "algorithm_problem", "describe_key", "refusal", "security_level"]

TLS_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_RSA_PSS = "1.2.840.113549.1.1.10"
NEW_KEY = ("make a new key pair (keytool -genkeypair -keyalg RSA -keysize 3072, or -keyalg EC -groupname "
           "secp256r1) and have it certified")


@attrs.frozen(eq=False, repr=False)
class KeyProblem(ValueRecord):
    code: str  # the finding code (docs/keystore-findings.md)
    reason: str  # what is wrong, following "the key of <alias>"
    fix: str

    def message(self, alias: str) -> str:
        return f"the key of '{alias}' {self.reason}; {self.fix}"


def is_rsa_pss(cert: x509.Certificate) -> bool:
    return cert.public_key_algorithm_oid.dotted_string == _RSA_PSS


def describe_key(cert: x509.Certificate) -> str:
    """'RSA 2048 bits', 'RSA-PSS 2048 bits', 'EC secp256r1 (256 bits)', 'DSA 2048 bits', 'Ed25519'."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"{'RSA-PSS' if is_rsa_pss(cert) else 'RSA'} {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name} ({key.curve.key_size} bits)"
    if is_dsa_public_key(key):
        return f"DSA {key.key_size} bits"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def key_type_and_size(cert: x509.Certificate) -> tuple[str, int | None]:
    """('RSA', 2048), ('RSA-PSS', 2048), ('EC', 256), ('DSA', 2048), ('Ed25519', 256)..."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return ("RSA-PSS" if is_rsa_pss(cert) else "RSA"), key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if is_dsa_public_key(key):
        return "DSA", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return type(key).__name__, None


def algorithm_problem(cert: x509.Certificate, versions: Sequence[str] = ("1.2", "1.3")) -> KeyProblem | None:
    """Why OpenSSL will not sign a handshake with the key of ``cert`` (a leaf), or None."""
    description = describe_key(cert)
    if is_rsa_pss(cert):
        return KeyProblem("key.rsa_pss", f"is {description}: an RSA-PSS key, which OpenSSL does not present as a "
                          "TLS client certificate (NO_CERTIFICATE_ASSIGNED)", f"{NEW_KEY} (plain -keyalg RSA, not "
                          "RSASSA-PSS)")
    key = cert.public_key()
    if is_dsa_public_key(key) and "1.3" in versions:
        return KeyProblem("key.dsa", f"is {description}: TLS 1.3 has no DSA, so no certificate is sent to a "
                          "TLS 1.3 partner, and most TLS 1.2 servers refuse DSA", f"{NEW_KEY} (or, for a partner "
                          "that accepts DSA, set tls_versions to [\"1.2\"] on the protocol profile)")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in TLS_CURVES:
        return KeyProblem("key.uncommon_curve", f"is {description}: OpenSSL signs TLS handshakes on P-256, P-384 "
                          "and P-521 only (TLS 1.2 servers answer WRONG_CURVE, TLS 1.3 sends no certificate)",
                          NEW_KEY)
    return None


def security_level() -> int:
    """OpenSSL's security level for new client contexts on this machine (its configuration sets it)."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).security_level


def refusal(error: ssl.SSLError, *, alias: str, leaf: x509.Certificate | None) -> KeyUnusableError:
    """The error for OpenSSL refusing our key or chain while an SSL context is built."""
    reason = getattr(error, "reason", None) or str(error)
    what = f"the key of '{alias}'" + (f" ({describe_key(leaf)})" if leaf is not None else "")
    level = security_level()
    if reason == "EE_KEY_TOO_SMALL":
        return KeyTooSmallError(
            f"OpenSSL refuses {what}: too small for its security level {level} on this machine "
            f"(EE_KEY_TOO_SMALL; RSA needs 2048 bits from level 2)")
    if reason == "CA_KEY_TOO_SMALL":
        return KeyTooSmallError(
            f"OpenSSL refuses the chain of '{alias}': a CA certificate in it has a key too small for security "
            f"level {level} (CA_KEY_TOO_SMALL)",
            hint="the CA must re-issue its certificate with an RSA 2048+ or EC P-256 key")
    if reason in ("CA_MD_TOO_WEAK", "EE_MD_TOO_WEAK"):
        whose = "a CA certificate" if reason.startswith("CA") else "the certificate"
        return KeyUnusableError(
            f"OpenSSL refuses the chain of '{alias}': {whose} is signed with a digest too weak for security "
            f"level {level} ({reason}, e.g. SHA-1 or MD5)",
            hint="have the certificate re-issued with a SHA-256 signature")
    if reason == "NO_CERTIFICATE_ASSIGNED":
        return KeyAlgorithmError(
            f"OpenSSL cannot use {what} as a TLS client key (NO_CERTIFICATE_ASSIGNED): the key type is not one "
            "it signs TLS handshakes with")
    return KeyUnusableError(f"OpenSSL refuses {what} or its chain ({reason})")
