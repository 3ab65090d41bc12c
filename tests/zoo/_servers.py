"""Real mTLS partners from Debian packages, each started on 127.0.0.1 with its own config file.

Every partner listens on two ports, one accepting only TLS 1.3 and one only TLS 1.2 (``ports``),
both requiring a client certificate issued under ``ZooFiles.client_ca`` and answering 200 with a
small JSON body once the request gets through. One process serves all the ports of a server
(nginx serves its three configurations in one process); ``openssl s_server`` has one port per
process. A partner is started once per session, waited for until its ports accept connections,
and stopped with SIGTERM; its error log is kept for assertion messages (``log_tail``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests._binaries import require_binary
from tests._keytool import run_keytool

VERSIONS = ("1.3", "1.2")
_READY_S = 60.0
_APACHE_MODULES = Path("/usr/lib/apache2/modules")


@dataclass(frozen=True)
class ZooFiles:
    """What the partners are configured with (written by the zoo's conftest)."""

    work: Path
    server_chain: Path   # server leaf + intermediate, PEM
    server_leaf: Path    # server leaf alone, PEM
    server_issuers: Path  # intermediate, PEM (s_server's -cert_chain)
    server_key: Path     # server key, unencrypted PKCS#8 PEM (0600): what the daemons read
    server_pkcs12: Path  # server identity as PKCS#12 (keytool converts it for JSSE)
    client_ca: Path      # the root the partners trust for client certificates
    password: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Partner:
    """One partner configuration as flowrun meets it: a name, a port per TLS version."""

    name: str
    server: Server
    ports: dict[str, int]

    def log_tail(self) -> str:
        return self.server.log_tail()


@dataclass
class Server:
    """A running server process (or processes) and the log it writes."""

    name: str
    directory: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def spawn(self, argv: Sequence[str], log_name: str, *, cwd: Path | None = None) -> None:
        log = self.directory / log_name
        self.logs.append(log)
        with log.open("ab") as out:
            self.processes.append(subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL, cwd=cwd or self.directory))

    def wait_ready(self, ports: Sequence[int]) -> None:
        deadline = time.monotonic() + _READY_S
        pending = list(ports)
        while pending:
            for process in self.processes:
                if process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{self.name} exited with {process.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", pending[0]), timeout=1):
                    pending.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not listen on {pending} within {_READY_S:g} s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_tail(self, lines: int = 40) -> str:
        text = []
        for log in self.logs:
            if log.is_file():
                content = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
                text.append(f"--- {log.name}\n" + "\n".join(content))
        return "\n".join(text)


def _json(partner: str) -> str:
    return json.dumps({"partner": partner, "ok": True})


# --- nginx ----------------------------------------------------------------------------------------

NGINX_CONFIGS = ("nginx", "nginx_optional_no_ca", "nginx_error_page")


def start_nginx(files: ZooFiles) -> tuple[Server, list[Partner]]:
    """One nginx process: ``ssl_verify_client on``, ``optional_no_ca`` (the application sees
    ``$ssl_client_verify``), and ``on`` with ``error_page`` exposing 495/496 as statuses."""
    binary = require_binary("nginx", "nginx-light")
    directory = files.work / "nginx"
    (directory / "temp").mkdir(parents=True, exist_ok=True)
    ports = {name: {version: free_port() for version in VERSIONS} for name in NGINX_CONFIGS}
    servers = []
    for name, by_version in ports.items():
        for version, port in by_version.items():
            verify = "optional_no_ca" if name == "nginx_optional_no_ca" else "on"
            extra = ""
            if name == "nginx_error_page":
                extra = """
        error_page 495 =495 /cert-error.json;
        error_page 496 =496 /cert-error.json;
        location = /cert-error.json {
            internal;
            default_type application/json;
            return 200 '{"error": "client certificate", "verify": "$ssl_client_verify"}';
        }"""
            servers.append(f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_protocols TLSv{version};
        ssl_verify_client {verify};{extra}
        # An application's own 400s: neither is a refusal of the client certificate.
        location = /v2/app-error {{
            default_type application/json;
            return 400 '{{"error": "invalid account"}}';
        }}
        location = /v2/bad-request {{
            return 400;
        }}
        location / {{
            default_type application/json;
            add_header X-Client-Verify $ssl_client_verify always;
            return 200 '{{"partner": "{name}", "ok": true, "verify": "$ssl_client_verify"}}';
        }}
    }}""")
    temp = directory / "temp"
    config = directory / "nginx.conf"
    config.write_text(f"""
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 128; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    ssl_certificate {files.server_chain};
    ssl_certificate_key {files.server_key};
    ssl_client_certificate {files.client_ca};
    ssl_verify_depth 2;
    {"".join(servers)}
}}
""", encoding="utf-8")
    server = Server("nginx", directory)
    server.logs.append(directory / "error.log")
    server.spawn([binary, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(config)],
                 "stdout.log")
    server.wait_ready([p for by_version in ports.values() for p in by_version.values()])
    return server, [Partner(name, server, by_version) for name, by_version in ports.items()]


# --- Apache httpd -------------------------------------------------------------------------------


def start_apache(files: ZooFiles) -> tuple[Server, list[Partner]]:
    """``apache2 -DFOREGROUND`` with mod_ssl, ``SSLVerifyClient require``; 200 from mod_status."""
    binary = require_binary("apache2", "apache2")
    directory = files.work / "apache"
    directory.mkdir(parents=True, exist_ok=True)
    ports = {version: free_port() for version in VERSIONS}
    modules = ["mpm_event", "authz_core", "socache_shmcb", "ssl", "headers", "rewrite"]
    loads = "\n".join(f"LoadModule {m}_module {_APACHE_MODULES}/mod_{m}.so" for m in modules)
    # Started as root, Apache serves from an unprivileged user; it never starts as root otherwise.
    user = "User nobody\nGroup nogroup" if os.geteuid() == 0 else ""
    hosts = "\n".join(f"""
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName localhost
    SSLEngine on
    SSLProtocol -all +TLSv{version}
    SSLCertificateFile {files.server_chain}
    SSLCertificateKeyFile {files.server_key}
    SSLCACertificateFile {files.client_ca}
    SSLVerifyClient require
    SSLVerifyDepth 2
    RewriteEngine on
    RewriteRule ^ - [R=200,L]
    ErrorDocument 200 '{_json("apache")}'
    Header always set Content-Type application/json
</VirtualHost>""" for version, port in ports.items())
    config = directory / "httpd.conf"
    config.write_text(f"""
ServerRoot {directory}
DefaultRuntimeDir {directory}
PidFile {directory}/httpd.pid
ErrorLog {directory}/error.log
LogLevel info ssl:info
ServerName localhost
{user}
{loads}
SSLSessionCache none
{hosts}
""", encoding="utf-8")
    server = Server("apache2", directory)
    server.logs.append(directory / "error.log")
    environment = {**os.environ, "APACHE_RUN_DIR": str(directory), "APACHE_LOG_DIR": str(directory)}
    log = directory / "stdout.log"
    with log.open("ab") as out:
        server.processes.append(subprocess.Popen(
            [binary, "-f", str(config), "-DFOREGROUND"], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=directory, env=environment))
    server.logs.append(log)
    server.wait_ready(list(ports.values()))
    return server, [Partner("apache", server, ports)]


# --- HAProxy --------------------------------------------------------------------------------------


def start_haproxy(files: ZooFiles) -> tuple[Server, list[Partner]]:
    """``haproxy -db`` with ``bind ... ssl crt ... ca-file ... verify required``."""
    binary = require_binary("haproxy", "haproxy")
    directory = files.work / "haproxy"
    directory.mkdir(parents=True, exist_ok=True)
    ports = {version: free_port() for version in VERSIONS}
    bundle = directory / "server.pem"
    bundle.write_bytes(files.server_chain.read_bytes() + files.server_key.read_bytes())
    bundle.chmod(0o600)
    def only(version: str) -> str:
        return f"ssl-min-ver TLSv{version} ssl-max-ver TLSv{version}"

    frontends = "\n".join(f"""
frontend tls{version.replace('.', '')}
    bind 127.0.0.1:{port} ssl crt {bundle} ca-file {files.client_ca} verify required {only(version)}
    http-request return status 200 content-type application/json string '{_json("haproxy")}'
""" for version, port in ports.items())
    config = directory / "haproxy.cfg"
    config.write_text(f"""
global
    log stderr format raw local0 info
defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 10s
    timeout server 10s
{frontends}
""", encoding="utf-8")
    server = Server("haproxy", directory)
    server.spawn([binary, "-db", "-f", str(config)], "haproxy.log")
    server.wait_ready(list(ports.values()))
    return server, [Partner("haproxy", server, ports)]


# --- Java JSSE ------------------------------------------------------------------------------------

JAVA_SOURCE = Path(__file__).with_name("ZooHttpsServer.java")


def start_jsse(files: ZooFiles) -> tuple[Server, list[Partner]]:
    """``com.sun.net.httpserver.HttpsServer`` with ``setNeedClientAuth(true)``, keystores made by keytool."""
    java = require_binary("java", "default-jdk-headless")
    directory = files.work / "jsse"
    directory.mkdir(parents=True, exist_ok=True)
    keystore, truststore = directory / "server.jks", directory / "truststore.jks"
    for path in (keystore, truststore):
        path.unlink(missing_ok=True)
    run_keytool("-importkeystore", "-noprompt", "-srckeystore", str(files.server_pkcs12), "-srcstoretype", "PKCS12",
                "-srcstorepass", files.password, "-destkeystore", str(keystore), "-deststoretype", "JKS",
                "-deststorepass", files.password, "-destkeypass", files.password)
    run_keytool("-importcert", "-noprompt", "-trustcacerts", "-alias", "client-root", "-file", str(files.client_ca),
                "-keystore", str(truststore), "-storetype", "JKS", "-storepass", files.password)
    ports = {version: free_port() for version in VERSIONS}
    server = Server("java JSSE", directory)
    server.spawn([java, str(JAVA_SOURCE), str(keystore), files.password, str(truststore), files.password,
                  *(f"{port}:TLSv{version}" for version, port in ports.items())], "java.log")
    server.wait_ready(list(ports.values()))
    return server, [Partner("jsse", server, ports)]


# --- openssl s_server -----------------------------------------------------------------------------


def start_openssl(files: ZooFiles) -> tuple[Server, list[Partner]]:
    """``openssl s_server -Verify 2 -verify_return_error -www``, one process per TLS version.

    Without ``-verify_return_error`` s_server only prints a verification failure and goes on
    with the handshake: it would accept any client certificate.
    """
    binary = require_binary("openssl", "openssl")
    directory = files.work / "openssl"
    directory.mkdir(parents=True, exist_ok=True)
    ports = {version: free_port() for version in VERSIONS}
    server = Server("openssl s_server", directory)
    for version, port in ports.items():
        server.spawn([binary, "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "100000",
                      "-cert", str(files.server_leaf), "-cert_chain", str(files.server_issuers),
                      "-key", str(files.server_key), "-CAfile", str(files.client_ca), "-Verify", "2",
                      "-verify_return_error", f"-tls{version.replace('.', '_')}", "-www"],
                     f"s_server-{version}.log")
    server.wait_ready(list(ports.values()))
    return server, [Partner("openssl", server, ports)]
