"""``flowrun demo``: the sample flows against an embedded partner that requires client certificates.

Everything is made on the spot: a throwaway PKI (root, intermediate, the partner's server
certificate, our client identity written as a JKS keystore), the alias directory and sample
flows shipped in the package (the same files as the repository's ``aliases/``, ``samples/`` and
``steps/``), and the partner on 127.0.0.1. The aliases name ``api.bank.example:8443`` as
written; the registry's ``connect_to`` dials the local partner instead, so SNI, hostname checks
and the Host header are those of the real partner.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import attrs

PARTNER_HOST = "api.bank.example"
PARTNER_PORT = 8443
API_KEY = "demo-api-key"
OAUTH_CLIENT = ("demo-client", "demo-secret")
DEMO_FOLDERS = ("aliases", "samples", "steps")


@attrs.frozen
class DemoSetup:
    directory: Path
    keystore: Path
    environment: dict[str, str] = attrs.field(repr=False)


def copy_demo_files(directory: Path) -> None:
    """Copy the shipped aliases, sample flows and step files into ``directory``."""
    root = resources.files("flowrun._demo").joinpath("files")
    for folder in DEMO_FOLDERS:
        _copy_tree(root.joinpath(folder), directory / folder)


def _copy_tree(source: resources.abc.Traversable, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name.startswith(("_", ".")):
            continue
        if entry.is_dir():
            _copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())


def check_keep_directory(directory: Path, *, force: bool) -> None:
    """``--keep DIR`` writes into a new or empty directory; ``--force`` allows a used one."""
    from flowrun._errors import UsageError

    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--keep {directory}: not a directory")
    if force or not directory.exists() or not any(directory.iterdir()):
        return
    raise UsageError(f"--keep {directory}: the directory is not empty, and the demo writes aliases, samples, "
                     "steps, keystores and certs there",
                     hint=f"name a new or empty directory, or add --force to replace the demo's files in {directory} "
                     "(the keystore password in its demo.env is kept)")


def kept_password(directory: Path) -> str | None:
    """The keystore password an earlier ``demo --keep`` wrote into ``demo.env``, if any."""
    try:
        lines = (directory / "demo.env").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    prefix = "export BANK_KEYSTORE_PASSWORD="
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix):].strip().strip("'") or None
    return None


def prepare(directory: Path, pki: object, *, password: str | None = None) -> DemoSetup:
    """Write key material and demo files; return the environment the aliases' secrets read.
    ``password`` keeps the keystore password of an earlier run (``--force``); else a new one."""
    from flowrun.testing import Pki

    assert isinstance(pki, Pki)
    password = password or secrets.token_urlsafe(18)
    files = pki.write(directory / ".pki", keystore_password=password)
    (directory / "keystores").mkdir(parents=True, exist_ok=True)
    (directory / "certs").mkdir(parents=True, exist_ok=True)
    keystore = directory / "keystores" / "client.jks"
    shutil.copyfile(files.client.jks, keystore)
    shutil.copyfile(files.root_pem, directory / "certs" / "bank-root.pem")
    keystore.chmod(0o600)
    copy_demo_files(directory)
    environment = {
        "BANK_KEYSTORE_PASSWORD": password,
        "BANK_API_KEY": API_KEY,
        "PARTNER_OAUTH_SECRET": OAUTH_CLIENT[1],
    }
    return DemoSetup(directory, keystore, environment)


def write_env_file(setup: DemoSetup, *, connect_to: str | None = None) -> Path:
    """For ``--keep``: the exports a user sources to run the kept aliases themselves; with a
    partner left running (``--serve``), ``FLOWRUN_CONNECT_TO`` points the aliases at it."""
    path = setup.directory / "demo.env"
    values = dict(setup.environment)
    if connect_to is not None:
        values["FLOWRUN_CONNECT_TO"] = connect_to
    lines = [f"export {name}='{value}'" for name, value in values.items()]
    # O_NOFOLLOW: a link planted at demo.env is refused; fchmod: a file kept from an earlier
    # demo (or created 0644 by hand) holds passwords from now on, so it becomes 0600 as well.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(fd, 0o600)
        handle.write("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def work_directory(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="flowrun-demo-") as name:
        yield Path(name)
