"""RestExecutor against raw httpx: N sequential GETs over mutual TLS, same SSLContext, same server.

    python bench/rest.py [-n 2000] [--rounds 5]

The partner runs in a separate process (a lean keep-alive HTTPS server that verifies client
certificates and answers a small JSON document), so that its work does not share the
interpreter with the clients being measured. Each round makes N calls through
``RestExecutor.run`` (one output extracted with JMESPath) and N calls through an
``httpx.Client`` on the very same SSLContext (``response.json()["balance"]``), in alternating
blocks of 100 so that both meet the same load on the machine. Prints the median time per call of each and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PASSWORD = "bench-password"
BODY = json.dumps({"account": "7", "balance": 1234.5, "currency": "EUR"}).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


# --- the partner process -------------------------------------------------------------------------


def serve(directory: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server/server-cert.pem", directory / "server/server-key.pem", PASSWORD)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(directory / "certs/partner-root.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        plain, _ = listener.accept()
        plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_connection, args=(context, plain), daemon=True).start()


def _connection(context: ssl.SSLContext, plain: socket.socket) -> None:
    with contextlib.suppress(OSError), context.wrap_socket(plain, server_side=True) as sock:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = sock.recv(65536)
                if not data:
                    return
                buffer += data
            _, _, buffer = buffer.partition(b"\r\n\r\n")  # GETs only: no body follows
            sock.sendall(RESPONSE)


# --- the clients ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="calls per round and client (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, order alternating (default 5)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return 0

    import httpx

    from flowrun._load._aliases import AliasRecords
    from flowrun._models._aliases import Alias, Connection, Keystore, ProtocolProfile, TrustStoreCert
    from flowrun._models._secret import SecretRef
    from flowrun._models._steps import ResponseSpec, RestStep
    from flowrun._registry import Registry
    from flowrun._rest import RestExecutor
    from flowrun.testing import make_pki

    with tempfile.TemporaryDirectory(prefix="flowrun-bench-") as temporary:
        directory = Path(temporary)
        files = make_pki().write(directory, keystore_password=PASSWORD)
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(directory)], stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            url = f"https://localhost:{port}"
            registry = Registry(AliasRecords(
                {"client": Keystore("client", files.client.pkcs12, type="pkcs12",
                                    password=SecretRef(literal=PASSWORD))},
                {"root": TrustStoreCert("root", file=files.root_pem)},
                {"mtls": ProtocolProfile("mtls", keystore="client", trust_store_certs=("root",),
                                         use_system_trust=False)},
                {},
                {"bench": Alias("bench", {Alias.SINGLE: Connection(url=url, mutual_authentication=True,
                                                                   protocol_profile="mtls")})},
            ))
            context = registry.resolve("bench").ssl_context
            step = RestStep(alias="bench", path="/accounts/7",
                            response=ResponseSpec(outputs={"balance": "body.balance"}))

            with RestExecutor(registry) as rest, httpx.Client(verify=context, trust_env=False) as raw:
                target = f"{url}/accounts/7"

                def flowrun_round(n: int) -> float:
                    started = time.perf_counter()
                    for _ in range(n):
                        result = rest.run(step)
                        if result.outputs.get("balance") != 1234.5:
                            raise SystemExit(f"unexpected result: {result.error}")
                    return (time.perf_counter() - started) / n

                def httpx_round(n: int) -> float:
                    started = time.perf_counter()
                    for _ in range(n):
                        response = raw.get(target)
                        response.raise_for_status()
                        if response.json()["balance"] != 1234.5:
                            raise SystemExit("unexpected body")
                    return (time.perf_counter() - started) / n

                flowrun_round(50)  # warm up: handshakes, caches, imports
                httpx_round(50)
                ours: list[float] = []
                theirs: list[float] = []
                block = min(100, args.n)
                for index in range(args.rounds):
                    # Blocks alternate within a round, so that both clients meet the same machine load.
                    spent = {flowrun_round: 0.0, httpx_round: 0.0}
                    done = 0
                    while done < args.n:
                        size = min(block, args.n - done)
                        order = (flowrun_round, httpx_round) if (index + done // block) % 2 == 0 else (
                            httpx_round, flowrun_round)
                        for measure in order:
                            spent[measure] += measure(size) * size
                        done += size
                    ours.append(spent[flowrun_round] / args.n)
                    theirs.append(spent[httpx_round] / args.n)
                    print(f"round {index + 1}: flowrun {ours[-1] * 1e6:7.1f} us/call   "
                          f"httpx {theirs[-1] * 1e6:7.1f} us/call   ratio {ours[-1] / theirs[-1]:.3f}", flush=True)
        finally:
            server.kill()
            server.wait()
            if server.stdout is not None:
                server.stdout.close()

    flowrun_median, httpx_median = statistics.median(ours), statistics.median(theirs)
    ratios = sorted(a / b for a, b in zip(ours, theirs, strict=True))
    print(f"\n{args.n} sequential GETs x {args.rounds} rounds, one TLS connection each")
    print(f"RestExecutor.run : {flowrun_median * 1e6:8.1f} us/call (median of rounds)")
    print(f"raw httpx        : {httpx_median * 1e6:8.1f} us/call (median of rounds)")
    print(f"ratio            : {flowrun_median / httpx_median:8.3f}x (of medians; per round "
          f"{ratios[0]:.3f}..{ratios[-1]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
