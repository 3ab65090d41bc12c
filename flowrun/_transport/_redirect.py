"""Redirects, when a step opts in (``follow_redirects``).

* Same origin (scheme, host, port of the alias), or one the alias lists in ``trusted_origins``
  (the origin rule, ``flowrun._models._web_origin``): the request keeps its credential and goes
  through the alias's client, so the client certificate is presented as before.
* Another origin: the credential is not applied, headers that look like credentials
  (``flowrun._models._redact.is_credential_header``: Authorization, Cookie, X-Partner-Token...)
  are dropped, and so is the body (a 307/308 keeps the method but sends no body). The request
  goes through a separate client that trusts what the alias trusts but holds NO client
  certificate: our identity is never shown to a host the alias does not name.
* https -> http is refused (``RedirectRefusedError``), as is any scheme but http/https, and a
  chain longer than ``max_redirects``.
* 303 (and 301/302 after a POST) turn into a GET without body; otherwise method and body are
  sent again (a file body is read again from disk).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import httpx

from flowrun._errors import RedirectRefusedError
from flowrun._models._record import ValueRecord
from flowrun._models._redact import is_credential_header
from flowrun._models._web_origin import DEFAULT_PORTS, WebOrigin

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding", "content-encoding"})


@attrs.frozen(eq=False, repr=False)
class Hop(ValueRecord):
    method: str
    url: httpx.URL
    headers: tuple[tuple[str, str], ...]
    keep_body: bool
    same_origin: bool


def origin_of(url: httpx.URL) -> WebOrigin:
    return (url.scheme, url.host.lower(), url.port or DEFAULT_PORTS.get(url.scheme, 0))


def is_redirect(response: httpx.Response) -> bool:
    return response.status_code in REDIRECT_STATUSES and "location" in response.headers


def next_hop(response: httpx.Response, **rules: Any) -> Hop:
    """``redirect_hop`` for an httpx response (``rules``: its keyword arguments)."""
    return redirect_hop(response.request.url, response.status_code, response.headers["location"], **rules)


def redirect_hop(
    current: httpx.URL,
    status: int,
    location: str,
    *,
    method: str,
    headers: Sequence[tuple[str, str]],
    home: tuple[str, str, int],
    hops: int,
    max_redirects: int,
    secret_headers: frozenset[str] = frozenset(),
    trusted: frozenset[WebOrigin] = frozenset(),
) -> Hop:
    """Where a redirect of ``current`` (``status``, ``location``) leads and what is sent there;
    raises ``RedirectRefusedError``. Both exchanges (httpx's client, aiohttp's) decide by it."""
    if hops >= max_redirects:
        raise RedirectRefusedError(f"more than {max_redirects} redirects, the last one from {current} "
                                   f"to {location}")
    try:
        target = current.join(location)
    except httpx.InvalidURL as exc:
        raise RedirectRefusedError(f"the redirect from {current} has an invalid Location: {exc}") from None
    if target.scheme not in ("http", "https"):
        raise RedirectRefusedError(f"{current} redirects to {target.scheme}:, only http and https are followed")
    if current.scheme == "https" and target.scheme != "https":
        raise RedirectRefusedError(
            f"{current} redirects to {target}: a downgrade from https to http is never followed",
            hint="the partner's redirect would send the request unencrypted: ask them to fix it, "
                 "or point the step at the https URL")
    keep_body = True
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, keep_body = "GET", False
    arrival = origin_of(target)
    same_origin = arrival == home or arrival in trusted
    if not same_origin:
        # A 307/308 keeps the method, but the body was meant for the alias's partner only.
        keep_body = False
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if not keep_body and lower in _BODY_HEADERS:
            continue
        if not same_origin and (is_credential_header(name) or lower in secret_headers or lower == "host"):
            continue
        kept.append((name, value))
    return Hop(method, target, tuple(kept), keep_body, same_origin)
