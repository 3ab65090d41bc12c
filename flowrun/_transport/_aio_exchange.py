"""One REST exchange of ``AsyncRestExecutor`` on aiohttp directly (the ``fast-async`` extra).

``aexchange`` sends through ``httpx.AsyncClient``: over aiohttp, httpx's client layer (its
request, response, URL and header models, the auth and redirect generators, the stream adapters)
still costs about twice what aiohttp costs for the whole request. ``aio_exchange`` does what that
layer did for a step, with the pieces the httpx paths use, and hands aiohttp the bytes:

* the headers as httpx writes them (``wire_headers``: Host, the client's defaults, the
  connection's and step's headers, the body's length, the client's cookies), the URL as httpx
  encodes it, and the credential as its ``httpx.Auth`` would set it (``_auth``: the same
  methods make the header or the query key; an OAuth2 token is cached and fetched through the
  alias's httpx client, as before, and refreshed once on a 401 when the body can be resent);
* redirects decided by ``_redirect.redirect_hop`` (the origin rule: another origin goes through
  the route without our certificate or credential, a 307 there sends no body);
* the body read by ``_exchange.read_body`` (size cap, ``save_to``, bounded decompression), the
  result made by ``_exchange.outcome`` (nginx's refusal page, TLS info);
* aiohttp's failures come out of ``AiohttpTransport.open``/``body_chunks`` as the httpx
  exceptions ``_errors.classify`` reads, so every diagnosis and the attempt deadline are the
  ones of the httpx paths; a kept-alive connection the partner closed is resent once, as there;
* cookies a partner sets go into the alias's httpx cookie jar and are sent back from it;
* the request line is logged on the ``httpx`` logger as httpx logs it (masked by ``_log_redaction``).

The executor takes this path only for routes on aiohttp whose credential is a header or a query
key (none, basic, bearer, api_key, the OAuth2 grants): Digest, ``hmac`` and ``aws_sigv4`` (which
answer a challenge or sign the final request), requests through a proxy, and multipart bodies stay
on ``aexchange`` (see ``AsyncRestExecutor._send``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import httpx
import yarl

from flowrun._errors import FlowrunError
from flowrun._models._steps import RestStep
from flowrun._transport._aiohttp import (
    AiohttpTransport,
    _Dial,
    auto_headers_to_skip,
    body_chunks,
    mapped,
    wire_url,
)
from flowrun._transport._auth import ApiKeyAuth, BasicAuth, BearerAuth, OAuth2ClientCredentials, Token
from flowrun._transport._errors import aclassify, failed_before_sending
from flowrun._transport._exchange import (
    Raw,
    Route,
    Saved,
    Timeout,
    check_announced,
    outcome,
    parsed_url,
    presented,
    read_body,
    resend_on_fresh_connection,
    send_headers,
    wait_seconds,
)
from flowrun._transport._redirect import REDIRECT_STATUSES, redirect_hop
from flowrun._transport._request import _NO_BODY, OpenBody, RequestPlan, open_body
from flowrun._transport._retry import Outcome
from flowrun._transport._streams import Deadline, begin_attempt, end_attempt, opened_connection

_HTTPX_LOG = logging.getLogger("httpx")
_EMPTY_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_UNCACHED = object()
AsyncRoute = Route[httpx.AsyncClient]


def _set_header(headers: list[tuple[str, str]], name: str, value: str) -> None:
    """``httpx.Headers.__setitem__``: the first header of that name takes the value, later ones go."""
    lower = name.lower()
    found = [index for index, (key, _) in enumerate(headers) if key.lower() == lower]
    for index in reversed(found[1:]):
        del headers[index]
    if found:
        headers[found[0]] = (name, value)
    else:
        headers.append((name, value))


def wire_headers(defaults: Sequence[tuple[str, str]], client: httpx.AsyncClient, method: str, url: httpx.URL,
                 headers: Sequence[tuple[str, str]], body: OpenBody) -> list[tuple[str, str]]:
    """Every header of the request, in the order httpx's ``build_request`` writes them: Host (and
    an empty POST's length) first, the client's ``defaults`` the request does not set, the
    request's, the client's cookies, the body's length."""
    names = {name.lower() for name, _ in headers}
    wire = [pair for pair in defaults if pair[0].lower() not in names]
    wire.extend(headers)
    if client.cookies.jar and "cookie" not in names:
        probe = httpx.Request(method, url, headers=wire, cookies=client.cookies)
        cookie = probe.headers.get("Cookie")
        if cookie is not None:
            wire.append(("Cookie", cookie))
    content = body.kwargs.get("content")
    if isinstance(content, bytes) and content and "content-length" not in names:
        wire.append(("Content-Length", str(len(content))))
        names.add("content-length")
    first: list[tuple[str, str]] = []
    if "host" not in names:
        first.append(("Host", url.netloc.decode("ascii")))
    if method in _EMPTY_BODY_METHODS and "content-length" not in names and "transfer-encoding" not in names:
        first.append(("Content-Length", "0"))
    return [*first, *wire] if first else wire


def _no_cookies(client: httpx.AsyncClient) -> bool:
    jar = client.cookies.jar
    # A ``CookieJar`` counts its cookies by walking them (``bool`` asks ``len``): one that never
    # held any is told by its empty store.
    return not jar._cookies or not len(jar)  # type: ignore[attr-defined]


def _keep_cookies(client: httpx.AsyncClient, method: str, url: httpx.URL, response: aiohttp.ClientResponse) -> None:
    """What httpx's client does with a response that sets cookies: they go into the client's jar."""
    client.cookies.extract_cookies(httpx.Response(response.status, headers=response.raw_headers,
                                                  request=httpx.Request(method, url)))


# A response whose head is in, with its connection's facts, the attempt's deadline and the URL it
# was sent to.
_Sent = tuple[aiohttp.ClientResponse, _Dial, Deadline | None, httpx.URL]


def _send(route: AsyncRoute, method: str, url: httpx.URL, headers: Sequence[tuple[str, str]], body: OpenBody,
          timeout: Timeout) -> Awaitable[_Sent]:
    """One request of the exchange with the route's credential."""
    if isinstance(route.auth, OAuth2ClientCredentials):
        return _send_with_token(route, method, url, headers, body, timeout)
    return _send_once(route, method, url, headers, body, timeout, None)


_WIRED_SIZE = 256


def _written(route: AsyncRoute, transport: AiohttpTransport, method: str, url: httpx.URL,
             headers: Sequence[tuple[str, str]], body: OpenBody,
             token: Token | None) -> tuple[httpx.URL, yarl.URL, Sequence[tuple[str, str]], tuple[str, ...] | None]:
    """The URL and every header of the request as it goes out. A step without pills sends the
    same request every time: what it writes is kept per transport, by what it is made of (the
    credential's header is read every time, so a rotated secret applies at once)."""
    client, auth = route.client, route.auth
    content = body.kwargs.get("content")
    key: tuple[Any, ...] | None = None
    if (token is None and type(headers) is tuple and _no_cookies(client)
            and (content is None or type(content) is bytes)):
        credential: object
        if auth is None:
            credential = None
        elif isinstance(auth, BasicAuth | BearerAuth) or (isinstance(auth, ApiKeyAuth) and auth.one_header):
            credential = auth.header()
        else:
            credential = _UNCACHED  # a key in the query: read when the URL is written
        if credential is not _UNCACHED:
            key = (method, id(url), headers, credential, -1 if content is None else len(content))
            known = transport.written.get(key)
            if known is not None and known[0] is url:
                return url, known[1], known[2], known[3]
    wire = wire_headers(transport.client_headers, client, method, url, headers, body)
    if token is not None:
        _set_header(wire, "Authorization", f"Bearer {token.value}")
    elif isinstance(auth, ApiKeyAuth) and not auth.one_header:
        url = httpx.URL(auth.keyed_url(url))
    elif isinstance(auth, BasicAuth | BearerAuth | ApiKeyAuth):
        _set_header(wire, *auth.header())
    for _, value in wire:
        if not value.isascii():
            value.encode("ascii")  # raises what httpx raises for a header it cannot write
    target = wire_url(str(url))
    skip = auto_headers_to_skip(method, wire, content)
    if key is not None:
        if len(transport.written) >= _WIRED_SIZE:
            transport.written.clear()
        # The entry holds the URL, so its id cannot be reused while the entry exists.
        transport.written[key] = (url, target, tuple(wire), skip)
    return url, target, wire, skip


def _arrived(route: AsyncRoute, method: str, url: httpx.URL, response: aiohttp.ClientResponse) -> None:
    """What httpx's client does once a response head is in: log the request line, keep cookies."""
    if _HTTPX_LOG.isEnabledFor(logging.INFO):
        reason = response.reason or httpx.codes.get_reason_phrase(response.status)
        _HTTPX_LOG.info('HTTP Request: %s %s "%s %d %s"', method, url, "HTTP/1.1", response.status, reason)
    if "Set-Cookie" in response.headers or "Set-Cookie2" in response.headers:
        _keep_cookies(route.client, method, url, response)


def _waits(route: AsyncRoute, timeout: Timeout) -> httpx.Timeout:
    return timeout if isinstance(timeout, httpx.Timeout) else route.client.timeout


async def _send_once(route: AsyncRoute, method: str, url: httpx.URL, headers: Sequence[tuple[str, str]],
                     body: OpenBody, timeout: Timeout, token: Token | None) -> _Sent:
    transport = route.native
    assert transport is not None  # a route without one never comes here (``AsyncRestExecutor._send``)
    url, target, wire, skip = _written(route, transport, method, url, headers, body, token)
    waits = _waits(route, timeout)
    response, dial, deadline = await transport.open(method, target, wire, body.kwargs.get("content"),
                                                    connect=waits.connect, read=waits.read, skip=skip)
    _arrived(route, method, url, response)
    return response, dial, deadline, url


async def _send_with_token(route: AsyncRoute, method: str, url: httpx.URL, headers: Sequence[tuple[str, str]],
                           body: OpenBody, timeout: Timeout) -> _Sent:
    """One request with an OAuth2 token; one the API refuses (401) is replaced once and the
    request sent again, as ``OAuth2ClientCredentials``' flow does."""
    auth = route.auth
    assert isinstance(auth, OAuth2ClientCredentials)
    token = await auth.atoken()
    sent = await _send_once(route, method, url, headers, body, timeout, token)
    if sent[0].status != 401:
        return sent
    if not body.replayable:
        auth.forget(token)
        return sent
    sent[0].release()
    token = await auth.atoken(stale=token)
    return await _send_once(route, method, url, headers, body, timeout, token)


async def aio_exchange(route: AsyncRoute, step: RestStep, plan: RequestPlan, timeout: Timeout,
                       stranger: Callable[[AsyncRoute], AsyncRoute]) -> Outcome[Raw]:
    """``aexchange`` on aiohttp: the same outcome for the same partner."""
    opened: list[OpenBody] = []
    response: aiohttp.ClientResponse | None = None
    url = plan.url
    current = route  # the route of the hop being sent
    attempt = begin_attempt(wait_seconds(route, step))
    try:
        if plan.body is None:  # what ``open_body`` and ``send_headers`` give for it
            body, headers = _NO_BODY, plan.headers
        else:
            body = open_body(plan.body, step.id, asynchronous=True)
            opened.append(body)
            headers = send_headers(plan.headers, body)
        try:
            transport = route.native
            if transport is not None and not isinstance(route.auth, OAuth2ClientCredentials):
                # ``_send_once`` written out: the first request is awaited here, one frame less
                # to resume at each of its events.
                sent_url, target, wire, skip = _written(route, transport, plan.method, parsed_url(url), headers,
                                                        body, None)
                waits = _waits(route, timeout)
                response, dial, deadline = await transport.open(plan.method, target, wire, body.kwargs.get("content"),
                                                                connect=waits.connect, read=waits.read, skip=skip)
                _arrived(route, plan.method, sent_url, response)
            else:
                response, dial, deadline, sent_url = await _send(route, plan.method, parsed_url(url), headers, body,
                                                                 timeout)
        except httpx.RemoteProtocolError as exc:
            if opened_connection() or not resend_on_fresh_connection(exc, plan.method, body):
                raise
            response, dial, deadline, sent_url = await _send(route, plan.method, parsed_url(url), headers, body,
                                                             timeout)
        if step.follow_redirects:
            hops, method = 0, plan.method
            while response.status in REDIRECT_STATUSES and "Location" in response.headers:
                location = ", ".join(response.headers.getall("Location"))  # httpx joins repeated headers
                hop = redirect_hop(sent_url, response.status, location, method=method,
                                   headers=plan.headers, home=route.home, hops=hops,
                                   max_redirects=step.max_redirects, secret_headers=route.secret_headers,
                                   trusted=route.resolved.trusted_origins)
                response.release()
                response = None
                hops, method, url = hops + 1, hop.method, str(hop.url)
                current = route if hop.same_origin else stranger(route)
                body = open_body(plan.body if hop.keep_body else None, step.id, asynchronous=True)
                opened.append(body)
                response, dial, deadline, sent_url = await _send(current, hop.method, hop.url,
                                                                 send_headers(hop.headers, body), body, timeout)
        raw = Raw.of_raw(response.status, response.raw_headers)
        length = raw.content_length
        saved: Saved | None = None
        if (raw.content_encoding is None and step.response.save_to is None and length is not None
                and length.isdigit()):
            # The body as ``read_body`` reads it, at once: it is not encoded and announces a length
            # (under the cap), to which aiohttp's parser holds it. Awaited here, not in a helper:
            # one coroutine less per request.
            check_announced(raw, step.response.max_bytes, url)
            try:
                content = await response.content.read()
            except Exception as exc:
                error = mapped(exc, dial, deadline)
                raise error from error.__cause__
        else:
            content, saved = await read_body(step, raw, url, body_chunks(response, dial, deadline))
        return outcome(raw, content, saved, url, current.tls.of(dial.ssl_object), presented(route, current))
    except httpx.HTTPError as exc:
        return Outcome(error=await aclassify(exc, url=url, resolved=presented(route, current)),
                       sent=not failed_before_sending(exc))
    except FlowrunError as error:
        return Outcome(error=error)
    finally:
        if response is not None:
            response.release()
        for item in opened:
            item.close()
        end_attempt(attempt)

