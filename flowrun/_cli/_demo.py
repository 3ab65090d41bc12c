"""``flowrun demo [--keep DIR [--force] [--serve [--background]]]``: the samples against an
embedded mutual-TLS partner.

``--keep DIR`` writes into a new or empty directory only; ``--force`` replaces the demo's files
in a used one and keeps the keystore password of its ``demo.env`` (a password the user may have
noted does not change behind their back). ``--serve`` keeps the partner running and writes
``FLOWRUN_CONNECT_TO`` into ``demo.env``, so the kept aliases reach it as written;
``--background`` does so in a process of its own (its pid in ``DIR/partner.pid``, its output in
``DIR/demo.log``) and returns once the partner listens. Every command the demo suggests exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from flowrun._cli._output import Console

_PARTNER = "api.bank.example:8443"


def register(subparsers: Any, name: str, summary: str) -> None:
    parser = subparsers.add_parser(
        name, help=summary, description=(
            "Make a throwaway PKI, write our client identity as a JKS keystore, start a partner on "
            "127.0.0.1 that requires a client certificate (REST and SOAP), run the sample flows "
            "through the shipped aliases against it, and show who presented what."),
    )
    parser.add_argument("--keep", metavar="DIR", type=Path,
                        help="leave the PKI, keystore, aliases and samples in DIR to try them yourself")
    parser.add_argument("--serve", action="store_true",
                        help="with --keep: keep the partner running after the demo (Ctrl-C stops it) and print "
                        "the commands to run the kept flows against it")
    parser.add_argument("--force", action="store_true",
                        help="with --keep: write into a directory that is not empty, replacing the demo's files "
                        "(the keystore password in its demo.env is kept)")
    parser.add_argument("--background", action="store_true",
                        help="with --serve: run the partner in the background and return once it listens "
                        "(stop it with kill $(cat DIR/partner.pid))")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the --background process
    parser.add_argument("--json", action="store_true", help="print the flow results as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from flowrun import _demo
    from flowrun._errors import UsageError

    if args.serve and args.keep is None:
        raise UsageError("--serve needs --keep DIR: the kept aliases and flows are what you run against it",
                         hint="flowrun demo --keep ./demo --serve")
    if args.background and not args.serve:
        raise UsageError("--background goes with --serve", hint="flowrun demo --keep ./demo --serve --background")
    if args.force and args.keep is None:
        raise UsageError("--force goes with --keep DIR")
    if args.keep is not None and not args.child:
        _demo.check_keep_directory(args.keep, force=args.force)
    if args.background and not args.child:
        return _start_in_background(args, console)

    from flowrun._flows import run_flow
    from flowrun._registry import Registry
    from flowrun._report._text import render_flow_result
    from flowrun.testing import PartnerServer, make_pki

    started = time.perf_counter()
    pki = make_pki(hostnames=(_demo.PARTNER_HOST, "localhost", "127.0.0.1"))
    with _demo.work_directory(args.keep) as directory:
        setup = _demo.prepare(directory, pki, password=_demo.kept_password(directory) if args.force else None)
        console.secrets.add_all(setup.environment.values())
        client_id, client_secret = _demo.OAUTH_CLIENT
        with PartnerServer(pki, api_keys={_demo.API_KEY}, oauth_clients={client_id: client_secret}) as partner:
            with _demo.environment(setup.environment):
                # The partner is on this machine: no proxy of the environment can reach it.
                registry = Registry.load(directory / "aliases", connect_to={
                    (_demo.PARTNER_HOST, _demo.PARTNER_PORT): ("127.0.0.1", partner.port)}, environ={})
                flows = sorted((directory / "samples" / "flows").glob("*.json"))
                if not args.json:
                    _print_setup(console, pki, partner, directory, registry, args.keep is not None)
                results = [run_flow(flow, registry=registry) for flow in flows]
            handshakes, seen, requests = partner.handshakes, set(partner.client_certs), len(partner.requests)
            target = f"{_PARTNER}:127.0.0.1:{partner.port}"
            env_file = (_demo.write_env_file(setup, connect_to=target if args.serve else None)
                        if args.keep is not None else None)
            if args.json:
                console.print_json({
                    "status": "passed" if all(r.ok for r in results) else "failed",
                    "flows": [r.to_dict() for r in results],
                    "partner": {"handshakes": handshakes, "requests": requests,
                                "client_certs_seen": sorted(seen)},
                })
            else:
                for result in results:
                    console.print(render_flow_result(result, console))
                _print_tls_facts(console, pki, results, handshakes, requests, seen)
                passed = sum(1 for r in results if r.ok)
                elapsed = time.perf_counter() - started
                verdict = console.style(f"{passed} of {len(results)} flows passed",
                                        "green" if passed == len(results) else "red", "bold")
                console.print(f"{verdict} in {elapsed:.2f} s.")
                if env_file is not None and not args.serve:
                    console.print(f"Files kept in {directory}. Try:")
                    console.print(f"  . {env_file}")
                    console.print(f"  flowrun keystore inspect {setup.keystore} --password-env BANK_KEYSTORE_PASSWORD")
                    console.print(f"  flowrun certs check --aliases {directory}/aliases --within 30")
                elif env_file is None:
                    console.print("Keep the files to try them yourself: flowrun demo --keep DIR [--serve]")
            passed_all = all(r.ok for r in results)
            if args.serve and env_file is not None and (passed_all or not args.child):
                _serve(console, partner, directory, env_file, background=args.child)
    return 0 if all(r.ok for r in results) else 1


def _serve(console: Console, partner: Any, directory: Path, env_file: Path, *, background: bool) -> None:
    pid_file = directory / "partner.pid"
    stop = f"kill $(cat {pid_file})" if background else "Ctrl-C"
    console.print()
    console.print(console.style(f"The partner keeps running at 127.0.0.1:{partner.port}; {stop} stops it.", "bold"))
    console.print(f"Files kept in {directory}; {env_file.name} points the kept aliases at the partner. Try:")
    console.print(f"  . {env_file}")
    console.print(f"  flowrun run {directory}/samples/flows/balance.json --aliases {directory}/aliases -i account=7")
    console.print(f"  flowrun test {directory}/samples --aliases {directory}/aliases")
    console.print(f"  flowrun alias test bank --aliases {directory}/aliases")
    console.print(f"  flowrun certs check --aliases {directory}/aliases --within 30")
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        if background:
            console.stream.flush()
            pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")  # the parent waits for it
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("partner stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if background:
            pid_file.unlink(missing_ok=True)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _start_in_background(args: argparse.Namespace, console: Console) -> int:
    """Run the demo with --serve in a process of its own; return once its partner listens."""
    directory: Path = args.keep.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    pid_file, log = directory / "partner.pid", directory / "demo.log"
    pid_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "flowrun", "demo", "--keep", str(directory), "--serve", "--child",
               *(["--force"] if args.force else [])]
    with log.open("w", encoding="utf-8") as output:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    deadline = time.monotonic() + 300
    while not pid_file.exists():
        code = child.poll()
        if code is not None or time.monotonic() > deadline:
            if code is None:
                child.terminate()
                child.wait()
            console.stream.write(log.read_text(encoding="utf-8", errors="replace"))
            return code or 1
        time.sleep(0.05)
    console.stream.write(log.read_text(encoding="utf-8", errors="replace"))
    child.returncode = 0  # it goes on serving on its own; nothing here waits for it
    return 0


def _print_setup(console: Console, pki: Any, partner: Any, directory: Path, registry: Any, kept: bool) -> None:
    def row(label: str, text: str) -> None:
        console.print(f"  {console.style(label.ljust(10), 'dim')} {text}")

    console.print(console.style("flowrun demo: a local partner that requires a client certificate", "bold"))
    row("PKI", f"{_cn(pki.root.certificate)} -> {_cn(pki.intermediate.certificate)} -> partner "
        f"{_cn(pki.server.certificate)}; our client {_cn(pki.client.certificate)}")
    row("keystore", "keystores/client.jks (JKS, alias 'client', chain of 3; password from BANK_KEYSTORE_PASSWORD)")
    row("partner", f"https://api.bank.example:8443 dialled at 127.0.0.1:{partner.port} "
        "(client certificate required, TLS 1.2-1.3)")
    row("aliases", ", ".join(registry.alias_names()) + (f"  ({directory / 'aliases'})" if kept else ""))
    console.print()


def _print_tls_facts(console: Console, pki: Any, results: list[Any], handshakes: int, requests: int,
                     seen: set[str]) -> None:
    from flowrun.testing import certificate_sha256

    ours = certificate_sha256(pki.client.certificate)
    tls = next((s.tls for r in results for s in r.steps if s.tls is not None and s.tls.version), None)
    console.print(console.style("TLS facts", "bold"))
    console.print(f"  partner presented  {_cn(pki.server.certificate)}, issued by {_cn(pki.intermediate.certificate)}")
    console.print(f"  we presented       {_cn(pki.client.certificate)} (sha256 {ours[:16]}...)")
    matched = "only that certificate" if seen == {ours} else f"{len(seen)} distinct certificates"
    console.print(f"  partner saw        {matched} on {handshakes} TLS handshakes for {requests} requests")
    if tls is not None:
        console.print(f"  negotiated         {tls.version} {tls.cipher or ''}".rstrip())
    console.print()


def _cn(certificate: Any) -> str:
    from cryptography.x509.oid import NameOID

    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"'{names[0].value}'" if names else certificate.subject.rfc4514_string()
