"""Which proxy a request goes through, decided the way curl and Newman decide it.

A connection's ``proxy`` wins: a URL (with credentials as a secret reference), or ``"none"``.
Without it the environment applies: ``https_proxy``/``HTTPS_PROXY`` for https URLs,
``http_proxy``/``HTTP_PROXY`` for http URLs, ``all_proxy``/``ALL_PROXY`` for both when the
specific one is unset (the lower-case name wins over the upper-case one), and
``no_proxy``/``NO_PROXY`` lists the hosts that go direct:

* ``*`` alone: no request uses the environment's proxy;
* a name (``bank.example``, ``.bank.example``, ``*.bank.example``): that host and every host
  under it, compared case-insensitively and without a trailing dot;
* an IP address (``10.1.2.3``, ``::1``, ``[::1]``): that address; a CIDR range (``10.0.0.0/8``):
  the addresses in it (host names are not resolved for this);
* any of them with ``:PORT``: only that port (the scheme's default port counts).

Pure functions over a mapping of variables: the registry passes ``os.environ`` when it resolves a
connection. Credentials in a proxy URL of the environment (``http://user:pass@proxy:3128``) are
taken out of the URL at once; only ``display`` names a proxy, and it never shows them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Literal
from urllib.parse import unquote, urlsplit

import attrs

from flowrun._errors import DefinitionError
from flowrun._models._record import ValueRecord
from flowrun._models._secret import SecretRef

ProxySource = Literal["environment", "connection", "none"]
_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@attrs.frozen(eq=False, repr=False)
class ProxyEndpoint(ValueRecord):
    """One proxy: its URL without credentials, and the credentials apart."""

    url: str
    username: str | None = None
    password: SecretRef | None = None
    # Where it came from: "HTTPS_PROXY", "https_proxy", ..., or "connection".
    source: str = "connection"

    @property
    def display(self) -> str:
        """The proxy as users see it: URL and source, never its credentials."""
        origin = "the connection's proxy" if self.source == "connection" else self.source
        auth = ", with proxy credentials" if self.username is not None else ""
        return f"{self.url} (from {origin}{auth})"


@attrs.frozen(eq=False, repr=False)
class ProxyRules(ValueRecord):
    """The proxies of one connection and the hosts that bypass them."""

    source: ProxySource = "none"
    https: ProxyEndpoint | None = None
    http: ProxyEndpoint | None = None
    no_proxy: tuple[str, ...] = ()
    no_proxy_source: str | None = None
    # ``--connect-to``: (host, port) -> the address actually asked for. NO_PROXY is matched against
    # both, so "localhost,127.0.0.1" keeps a local copy of a partner off the proxy.
    connect_to: tuple[tuple[tuple[str, int], tuple[str, int]], ...] = ()

    @property
    def any(self) -> bool:
        return self.https is not None or self.http is not None

    def credentials(self) -> list[tuple[str, SecretRef]]:
        """The user name and password of each proxy that has them (each proxy once)."""
        found: list[tuple[str, SecretRef]] = []
        for endpoint in (self.https, self.http):
            if endpoint is not None and endpoint.username is not None and endpoint.password is not None:
                pair = (endpoint.username, endpoint.password)
                if pair not in found:
                    found.append(pair)
        return found

    def for_url(self, scheme: str, host: str, port: int | None = None) -> ProxyEndpoint | None:
        """The proxy for a request to ``scheme://host:port``, or None to go direct."""
        endpoint = self.https if scheme.lower() == "https" else self.http if scheme.lower() == "http" else None
        if endpoint is None:
            return None
        port = port if port is not None else _DEFAULT_PORTS.get(scheme.lower())
        if self.bypass_entry(host, port) is not None:
            return None
        target = dict(self.connect_to).get((_bare_host(host), port or 0))
        if target is not None and self.bypass_entry(*target) is not None:
            return None
        return endpoint

    def bypass_entry(self, host: str, port: int | None) -> str | None:
        """The ``no_proxy`` entry that sends ``host:port`` direct, if any."""
        bare = _bare_host(host)
        for entry in self.no_proxy:
            if _matches(entry, bare, port):
                return entry
        return None


DIRECT = ProxyRules(source="none")


def _bare_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port``, ``v6`` -> (host, port or None)."""
    if entry.startswith("["):
        end = entry.find("]")
        host, rest = entry[1:end], entry[end + 1:]
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


def _matches(entry: str, host: str, port: int | None) -> bool:
    if entry == "*":
        return True
    pattern, wanted_port = _split_port(entry)
    if wanted_port is not None and wanted_port != port:
        return False
    pattern = pattern.lower().rstrip(".")
    if "/" in pattern:
        try:
            network = ipaddress.ip_network(pattern, strict=False)
            return ipaddress.ip_address(host) in network
        except ValueError:
            return False
    try:
        return ipaddress.ip_address(pattern) == ipaddress.ip_address(host)
    except ValueError:
        pass
    domain = pattern[2:] if pattern.startswith("*.") else pattern.lstrip(".")
    return bool(domain) and (host == domain or host.endswith("." + domain))


def parse_no_proxy(value: str) -> tuple[str, ...]:
    return tuple(entry.strip() for entry in value.split(",") if entry.strip())


def _first(environ: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip():
            return name, value.strip()
    return None


def proxy_endpoint(value: str, *, source: str, username: str | None = None,
                   password: SecretRef | None = None) -> ProxyEndpoint:
    """A proxy URL as curl takes it (``proxy:3128`` means ``http://proxy:3128``); credentials in the
    URL move to ``username``/``password``. Errors name the source, never the URL's credentials."""
    text = value if "://" in value else f"http://{value}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or not parts.hostname:
        raise DefinitionError(f"{_where(source)} is not a proxy URL",
                              hint="give the proxy as http://HOST:PORT (credentials in username and password)")
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise DefinitionError(f"{_where(source)} names a {scheme} proxy; flowrun talks to http and https proxies",
                              hint="give the proxy's HTTP port (http://HOST:PORT), or go without the variable with "
                                   '"proxy": "none" on the connection; SOCKS proxies are not supported')
    if parts.username is not None:
        username = unquote(parts.username)
        password = SecretRef(literal=unquote(parts.password or ""))
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}" if port is not None else host
    return ProxyEndpoint(f"{scheme}://{netloc}", username=username, password=password, source=source)


def _where(source: str) -> str:
    return "the connection's proxy" if source == "connection" else f"environment variable {source}"


def rules_from_environment(environ: Mapping[str, str]) -> ProxyRules:
    """The proxies the environment names, as curl reads them."""
    fallback = _first(environ, "all_proxy", "ALL_PROXY")
    chosen: dict[str, ProxyEndpoint | None] = {}
    for scheme in _SCHEMES:
        found = _first(environ, f"{scheme}_proxy", f"{scheme.upper()}_PROXY") or fallback
        chosen[scheme] = proxy_endpoint(found[1], source=found[0]) if found is not None else None
    if chosen["https"] is None and chosen["http"] is None:
        return DIRECT
    no_proxy = _first(environ, "no_proxy", "NO_PROXY")
    return ProxyRules(source="environment", https=chosen["https"], http=chosen["http"],
                      no_proxy=parse_no_proxy(no_proxy[1]) if no_proxy else (),
                      no_proxy_source=no_proxy[0] if no_proxy else None)
