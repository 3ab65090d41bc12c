"""Signed JWT assertions (RFC 7523) for ``oauth2_private_key_jwt`` and ``oauth2_jwt_bearer``.

The key is a keystore identity (often the mutual TLS one); PyJWT signs. The ``kid`` defaults to
the certificate's SHA-256 thumbprint, base64url without padding (``x5t#S256``, RFC 8705), which
is what FAPI partners register; the algorithm defaults to what the key signs with.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from flowrun._errors import SchemaError
from flowrun._models._aliases import Credential
from flowrun._tls._model import ClientIdentity

_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def thumbprint(identity: ClientIdentity) -> str:
    """``x5t#S256``: base64url of the leaf certificate's SHA-256 digest, without padding."""
    digest = identity.leaf.fingerprint(hashes.SHA256())
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def algorithm_for(credential: Credential, identity: ClientIdentity) -> str:
    """The JWS algorithm: the credential's, checked against the key, else the key's own."""
    key = identity.private_key
    if isinstance(key, rsa.RSAPrivateKey):
        fits: tuple[str, ...] = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
    elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _EC_ALGORITHMS:
        fits = (_EC_ALGORITHMS[key.curve.name],)
    else:
        raise SchemaError(f"credential '{credential.name}': the signing key ({type(key).__name__.lstrip('_')}) "
                          "cannot sign a JWT assertion here", hint="use an RSA key or an EC key on P-256, P-384 "
                          "or P-521", **credential.origin.location())
    if credential.algorithm is None:
        return fits[0]
    if credential.algorithm not in fits:
        raise SchemaError(f"credential '{credential.name}': algorithm {credential.algorithm} does not fit the "
                          f"signing key (it signs with {', '.join(fits)})",
                          hint=f'set "algorithm" to {fits[0]} or remove it', **credential.origin.location())
    return credential.algorithm


def signed_assertion(credential: Credential, identity: ClientIdentity, *, issuer: str, subject: str,
                     audience: str) -> str:
    """A fresh assertion: iss, sub, aud, iat, exp (``assertion_lifetime_s``) and a unique jti."""
    import jwt  # only runs whose credential signs assertions pay for PyJWT

    now = int(time.time())
    claims: dict[str, Any] = {"iss": issuer, "sub": subject, "aud": audience, "iat": now,
                              "exp": now + int(credential.assertion_lifetime_s), "jti": str(uuid.uuid4())}
    headers = {"kid": credential.kid or thumbprint(identity)}
    return jwt.encode(claims, identity.private_key, algorithm=algorithm_for(credential, identity),  # type: ignore[arg-type]
                      headers=headers)
