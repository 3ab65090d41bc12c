"""How long loading a client identity takes per keystore type: read + select_identity.

    python bench/keystores.py [--runs 7]

Builds a JKS, JCEKS and PKCS12 store with keytool (the article's steps: key pair, CSR, CA
signature, root and intermediate imported, signed certificate under the key's alias) and a PEM
identity with an encrypted key, for an RSA 2048 and an EC P-256 key, then prints the median and
the best time of several loads. Without keytool the Java stores are skipped (PKCS12 is then
written directly). Nothing is cached between runs: this is the cost of one cache miss.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowrun._tls._read import read_file_bytes, read_keystore, select_identity
from tests._keytool import CA, KeyType, StoreType, build_keytool_store, keytool_path, make_ca, pem

PASSWORD = "bench-password"
KEY_TYPES: tuple[KeyType, ...] = ("RSA", "EC")
JAVA_STORE_TYPES: tuple[StoreType, ...] = ("JKS", "JCEKS", "PKCS12")


def _new_key(key_type: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if key_type == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _pem_identity(folder: Path, root: CA, inter: CA, key_type: str) -> Path:
    key = _new_key(key_type)
    leaf = inter.issue_leaf(key.public_key(), "bench-client")
    path = folder / f"client-{key_type.lower()}.pem"
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(PASSWORD.encode()))
    path.write_bytes(encrypted + pem(leaf) + inter.cert_pem + root.cert_pem)
    return path


def _pkcs12_identity(folder: Path, root: CA, inter: CA, key_type: str) -> Path:
    key = _new_key(key_type)
    leaf = inter.issue_leaf(key.public_key(), "bench-client")
    path = folder / f"client-{key_type.lower()}.p12"
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"client", key, leaf, [inter.cert, root.cert],
        serialization.BestAvailableEncryption(PASSWORD.encode()),
    ))
    return path


def build_stores(folder: Path) -> list[tuple[str, str, Path]]:
    """(type, key type, path) for every store to time."""
    root = make_ca(folder / "ca", "Bench Root CA")
    inter = root.issue_intermediate("Bench Intermediate CA")
    stores: list[tuple[str, str, Path]] = []
    have_keytool = keytool_path() is not None
    if not have_keytool:
        print("keytool not found on PATH: skipping JKS and JCEKS (PKCS12 written without keytool)\n")
    for key_type in KEY_TYPES:
        if have_keytool:
            for storetype in JAVA_STORE_TYPES:
                path = build_keytool_store(folder / f"{storetype}-{key_type}", storetype=storetype,
                                           key_type=key_type, storepass=PASSWORD, ca=root, intermediate=inter).path
                stores.append((storetype.lower(), key_type, path))
        else:
            stores.append(("pkcs12", key_type, _pkcs12_identity(folder, root, inter, key_type)))
        stores.append(("pem", key_type, _pem_identity(folder, root, inter, key_type)))
    return stores


def _load(path: Path) -> Callable[[], object]:
    def load() -> object:
        contents = read_keystore(read_file_bytes(path), password=PASSWORD, source=str(path))
        return select_identity(contents, key_alias=None, key_password=None, store_password=PASSWORD)

    return load


def time_runs(load: Callable[[], object], runs: int) -> list[float]:
    load()  # warm imports and the OS file cache, not flowrun caches (there are none at this level)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        load()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="loads per store (default 7)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flowrun-bench-") as tmp:
        print("building stores ...", flush=True)
        stores = build_stores(Path(tmp))
        rows = []
        for store_type, key_type, path in stores:
            timings = time_runs(_load(path), args.runs)
            rows.append((store_type, key_type, path.stat().st_size, statistics.median(timings), min(timings)))
    print(f"\nload = read + select_identity, {args.runs} runs each\n")
    print(f"{'type':<8} {'key':<4} {'bytes':>6} {'median ms':>10} {'best ms':>8}")
    for store_type, key_type, size, median, best in rows:
        print(f"{store_type:<8} {key_type:<4} {size:>6} {median:>10.2f} {best:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
