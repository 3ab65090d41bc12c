"""DSA keys under cryptography's deprecation of DSA.

cryptography 51 deprecates DSA: loading a DSA key, taking a DSA certificate's public key, even
naming ``dsa.DSAPublicKey`` warns. flowrun still has to recognise the DSA keys users bring, to
refuse them with its own reason (finding ``key.dsa``, ``KeyAlgorithmError``), which says more
than the warning does. So the warning is ignored when flowrun's own modules raise it; a host
application's own DSA use still warns. Once cryptography drops DSA, no key is a DSA key here and
loading one fails as any unsupported key does.
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, TypeGuard

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.dsa import DSAPrivateKey, DSAPublicKey

__all__ = ["ignore_dsa_deprecation", "is_dsa_private_key", "is_dsa_public_key"]

DEPRECATION_MESSAGE = "DSA is deprecated"


def ignore_dsa_deprecation() -> None:
    """Ignore cryptography's DSA deprecation warning where flowrun's own modules trigger it."""
    warnings.filterwarnings("ignore", message=DEPRECATION_MESSAGE, category=UserWarning, module=r"flowrun\.")


@functools.cache
def _dsa_key_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    try:
        from cryptography.hazmat.primitives.asymmetric import dsa
    except ImportError:
        return (), ()
    public = getattr(dsa, "DSAPublicKey", None)
    private = getattr(dsa, "DSAPrivateKey", None)
    return ((public,) if public else ()), ((private,) if private else ())


def is_dsa_public_key(key: object) -> TypeGuard[DSAPublicKey]:
    return isinstance(key, _dsa_key_types()[0])


def is_dsa_private_key(key: object) -> TypeGuard[DSAPrivateKey]:
    return isinstance(key, _dsa_key_types()[1])
