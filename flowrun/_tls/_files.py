"""Key material files before they are read: refusing what is not a regular file of a sane
size, and warning about files open to group or others.

Apart from ``_read`` (decoding needs ``cryptography``) so that a run whose keystore takes the lean
path (``_lean``) checks its files without importing it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from flowrun._errors import KeystoreNotFoundError, TrustCertError
from flowrun._models._files import special_kind
from flowrun._tls._model import Finding

# Far above any keystore or certificate bundle; a bigger file is something else.
MAX_KEY_MATERIAL_BYTES = 16 * 1024 * 1024
ALLOW_READABLE_KEYS_ENV = "FLOWRUN_ALLOW_READABLE_KEYS"

_NOT_FOUND_HINT = ("check the path (a path in an alias file is relative to that file); to try flowrun without "
                   "key material of your own, `flowrun demo --keep DIR` writes a keystore, the partner's root "
                   "certificate and the aliases and sample flows that use them into DIR: run the samples from there")


def check_key_material_file(
    path: Path, *, what: str = "keystore",
    error: type[KeystoreNotFoundError] | type[TrustCertError] = KeystoreNotFoundError,
) -> os.stat_result:
    """Refuse, before reading, what is not a regular file of a sane size: a FIFO would block
    forever and ``/dev/zero`` never ends. Symbolic links are followed (and named in messages)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise error(f"the {what} file {path} is a symbolic link to {path.readlink()}, which does not exist",
                        file=path) from None
        missing = "" if path.parent.is_dir() else f" (its folder {path.parent} does not exist either)"
        raise error(f"{what} file not found: {path}{missing}", file=path, hint=_NOT_FOUND_HINT) from None
    except PermissionError:
        raise error(f"the {what} file cannot be read (permission denied): {path}", file=path) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(f"the {what} file cannot be read ({reason}): {path}", file=path) from None
    kind = special_kind(info.st_mode)
    if kind is not None:
        raise error(f"the {what} path is {kind}, not a file: {path}", file=path)
    if info.st_size > MAX_KEY_MATERIAL_BYTES:
        raise error(f"the {what} file {path} is {info.st_size} bytes, more than any {what} "
                    f"(the limit is {MAX_KEY_MATERIAL_BYTES} bytes): is it the right file?", file=path)
    return info


def permission_warnings(path: Path, *, what: str = "keystore", plaintext: bool = False) -> list[Finding]:
    """A ``file.permissions`` finding when a file that holds a private key is open to group or
    others, as ssh warns. The file still works. A plaintext key is a warning (anyone who can read
    the file holds the key); a password-encrypted store is a note (anyone who can read it can try
    passwords offline). ``FLOWRUN_ALLOW_READABLE_KEYS=1`` (secret mounts, shared CI runners)
    silences both."""
    if os.name != "posix" or os.environ.get(ALLOW_READABLE_KEYS_ENV, "") not in ("", "0"):
        return []
    try:
        mode = Path(path).stat().st_mode
    except (OSError, ValueError):
        return []
    if not mode & 0o077:
        return []
    who = " and ".join(w for w, bits in (("group", 0o070), ("others", 0o007)) if mode & bits)
    where = f"the {what} file {path} is readable by {who} (mode {stat.S_IMODE(mode):04o})"
    fix = f"chmod 600 {path}, or set {ALLOW_READABLE_KEYS_ENV}=1 where that is intended"
    if plaintext:
        return [Finding(code="file.permissions", severity="warning",
                        message=f"{where} and holds an unencrypted private key, which anyone who reads the file "
                        f"can use: {fix}")]
    return [Finding(code="file.permissions", severity="info",
                    message=f"{where}; its keys are password-encrypted, but anyone who reads the file can try "
                    f"passwords offline: {fix}")]
