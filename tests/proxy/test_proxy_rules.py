"""Which proxy a URL goes through: the environment read as curl reads it, NO_PROXY's forms, and a
connection's own proxy."""

from __future__ import annotations

import attrs
import pytest

from flowrun._errors import DefinitionError
from flowrun._models._aliases import ConnectionProxy
from flowrun._models._proxy import DIRECT, rules_from_environment
from flowrun._models._secret import SecretRef

PROXY = "http://proxy.corp:3128"


def chosen(environ: dict[str, str], url_scheme: str, host: str, port: int | None = None) -> str | None:
    endpoint = rules_from_environment(environ).for_url(url_scheme, host, port)
    return endpoint.url if endpoint is not None else None


def test_no_variables_means_direct() -> None:
    assert rules_from_environment({}) is DIRECT
    assert rules_from_environment({"NO_PROXY": "*", "HTTPS_PROXY": "  "}) is DIRECT


def test_scheme_specific_variables_and_lower_case_precedence() -> None:
    environ = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2", "HTTP_PROXY": "http://plain:3"}
    assert chosen(environ, "https", "bank.example") == "http://lower:2"
    assert chosen(environ, "http", "bank.example") == "http://plain:3"
    assert rules_from_environment(environ).https.source == "https_proxy"  # type: ignore[union-attr]


def test_all_proxy_is_the_fallback_for_both_schemes() -> None:
    environ = {"ALL_PROXY": "proxy.corp:3128", "http_proxy": "http://plain:3"}
    assert chosen(environ, "https", "bank.example") == PROXY  # no scheme: http://
    assert chosen(environ, "http", "bank.example") == "http://plain:3"


def test_only_https_proxy_leaves_http_direct() -> None:
    environ = {"HTTPS_PROXY": PROXY}
    assert chosen(environ, "https", "bank.example") == PROXY
    assert chosen(environ, "http", "bank.example") is None


@pytest.mark.parametrize(("no_proxy", "host", "port", "direct"), [
    ("*", "anything.example", 443, True),
    ("bank.example", "bank.example", 443, True),
    ("bank.example", "api.bank.example", 443, True),
    ("bank.example", "mybank.example", 443, False),
    (".bank.example", "bank.example", 443, True),
    (".bank.example", "api.bank.example", 443, True),
    ("*.bank.example", "api.bank.example", 443, True),
    ("BANK.example.", "Api.Bank.Example", 443, True),
    ("bank.example:8443", "bank.example", 8443, True),
    ("bank.example:8443", "bank.example", 443, False),
    ("bank.example:443", "bank.example", None, True),  # the default port counts
    ("10.1.2.3", "10.1.2.3", 443, True),
    ("10.1.2.3", "10.1.2.30", 443, False),
    ("10.0.0.0/8", "10.200.1.1", 443, True),
    ("10.0.0.0/8", "11.0.0.1", 443, False),
    ("::1", "::1", 443, True),
    ("[::1]", "[::1]", 443, True),
    ("[::1]:8443", "::1", 8443, True),
    ("[::1]:8443", "::1", 443, False),
    ("localhost", "localhost", 443, True),
    (" example.org , localhost ", "localhost", 443, True),
    ("example.org,,", "localhost", 443, False),
])
def test_no_proxy_forms(no_proxy: str, host: str, port: int | None, direct: bool) -> None:
    environ = {"HTTPS_PROXY": PROXY, "NO_PROXY": no_proxy}
    assert (chosen(environ, "https", host, port) is None) is direct


def test_lower_case_no_proxy_wins() -> None:
    environ = {"HTTPS_PROXY": PROXY, "no_proxy": "bank.example", "NO_PROXY": "other.example"}
    assert chosen(environ, "https", "bank.example") is None
    assert chosen(environ, "https", "other.example") == PROXY


def test_credentials_in_a_variable_leave_the_url() -> None:
    rules = rules_from_environment({"HTTPS_PROXY": "http://svc%40corp:p%3Ass@proxy.corp:3128"})
    endpoint = rules.https
    assert endpoint is not None
    assert endpoint.url == PROXY
    assert endpoint.username == "svc@corp"
    assert endpoint.password is not None and endpoint.password.reveal() == "p:ss"
    assert "p:ss" not in repr(rules) and "p:ss" not in endpoint.display
    assert endpoint.display == f"{PROXY} (from HTTPS_PROXY, with proxy credentials)"


def test_a_socks_variable_is_an_error_naming_it_without_credentials() -> None:
    with pytest.raises(DefinitionError) as caught:
        rules_from_environment({"https_proxy": "socks5://user:hunter2@proxy:1080"})
    assert "https_proxy" in caught.value.message and "socks5" in caught.value.message
    assert "hunter2" not in str(caught.value) + (caught.value.hint or "")


def test_the_connection_proxy_ignores_the_environment_and_has_its_own_no_proxy() -> None:
    proxy = ConnectionProxy(url=PROXY, username="svc", password=SecretRef(env="PW"), no_proxy=("auth.internal",))
    rules = proxy.rules()
    assert rules.source == "connection"
    assert rules.for_url("https", "bank.example") is not None
    assert rules.for_url("http", "bank.example") is not None
    assert rules.for_url("https", "auth.internal") is None
    direct = ConnectionProxy(url=None).rules()
    assert direct.source == "connection" and not direct.any
    assert direct.for_url("https", "bank.example") is None


def test_no_proxy_also_matches_the_connect_to_address() -> None:
    rules = attrs.evolve(rules_from_environment({"HTTPS_PROXY": PROXY, "NO_PROXY": "localhost,127.0.0.1"}),
                         connect_to=((("api.bank.example", 8443), ("127.0.0.1", 9443)),))
    assert rules.for_url("https", "api.bank.example", 8443) is None  # dialled at 127.0.0.1: direct
    assert rules.for_url("https", "api.bank.example", 443) is not None  # not mapped
    assert rules.for_url("https", "other.example", 8443) is not None
