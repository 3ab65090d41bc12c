"""One HTTP exchange of a REST step: send, follow redirects if asked, read the body.

``exchange`` (sync) and ``aexchange`` (async) return an ``Outcome`` for the retry loop: the
response (``Raw``: status, headers, body bytes or the file it was streamed to, TLS info) or the
classified error. The body is read as it arrives, counted against ``response.max_bytes`` (a
larger body is refused as soon as it is known: by its Content-Length, else when the count
passes the cap), or streamed to a temporary file next to ``save_to``. The cap counts decoded
bytes, inflated a slice at a time (``_decode``: a gzip bomb never lands in memory whole), and
the whole attempt, redirects included, runs under its total deadline (``_streams``).
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs
import httpx
from httpx._client import UseClientDefault

from flowrun._errors import FlowrunError, ResponseTooLargeError, StepFailure
from flowrun._models._record import RecordRepr
from flowrun._models._results import TlsInfo
from flowrun._models._steps import IDEMPOTENT_METHODS, RestStep
from flowrun._registry import ResolvedConnection
from flowrun._runner import Received
from flowrun._transport._decode import adecode, decoded
from flowrun._transport._errors import REFUSAL_STATUSES, aclassify, classify, failed_before_sending, refusal_page
from flowrun._transport._http import TlsInfoReader, send_streamed
from flowrun._transport._request import OpenBody, RequestPlan, open_body
from flowrun._transport._retry import Outcome
from flowrun._transport._streams import begin_attempt, end_attempt, opened_connection

if TYPE_CHECKING:
    from flowrun._transport._aiohttp import AiohttpTransport
    from flowrun._transport._rate import Gate

C = TypeVar("C", httpx.Client, httpx.AsyncClient)
Timeout = httpx.Timeout | UseClientDefault
_SAVE_HEAD_BYTES = 2048


@attrs.define(eq=False, repr=False)
class Route(RecordRepr, Generic[C]):
    """A resolved connection with its client, credential and defaults."""

    resolved: ResolvedConnection
    client: C
    auth: httpx.Auth | None
    home: tuple[str, str, int]
    timeout: httpx.Timeout
    tls: TlsInfoReader
    auth_header: str | None
    secret_headers: frozenset[str]
    stranger: Route[C] | None = None
    # The alias's rate and concurrency limits (None without either: nothing is paced).
    limiter: Gate | None = None
    # The aiohttp transport under ``client`` when ``_aio_exchange`` can send this route's requests
    # itself (aiohttp installed, no proxy, a header or query-key credential); else None.
    native: AiohttpTransport | None = None
    # Whether the client's own default timeout is this route's (clients are shared by key).
    client_default_timeout: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.client_default_timeout = self.client.timeout == self.timeout


@attrs.frozen(eq=False, repr=False)
class Saved(RecordRepr):
    """A body streamed to a temporary file next to ``target``; renamed onto it on commit."""

    target: Path
    temporary: Path
    size: int

    def commit(self) -> None:
        self.temporary.replace(self.target)

    def abort(self) -> None:
        self.temporary.unlink(missing_ok=True)


def make_timeout(resolved: ResolvedConnection, step_timeout: float | None) -> httpx.Timeout:
    if step_timeout is None:
        read = resolved.read_timeout_s
        return httpx.Timeout(read, connect=resolved.connect_timeout_s)
    return httpx.Timeout(step_timeout, connect=min(resolved.connect_timeout_s, step_timeout))


def wait_seconds(route: Route[Any], step: RestStep) -> float:
    """What bounds each wait of an attempt (its total deadline is a multiple, see ``_streams``)."""
    return step.timeout_s if step.timeout_s is not None else route.resolved.read_timeout_s


def timeout_argument(route: Route[Any], step: RestStep) -> Timeout:
    if step.timeout_s is not None:
        return make_timeout(route.resolved, step.timeout_s)
    return httpx.USE_CLIENT_DEFAULT if route.client_default_timeout else route.timeout


@attrs.define(eq=False, repr=False)
class Raw(Received):
    """A response of one exchange: its head, decoded once, then its body (``content``, where it
    came from, its TLS info), then what the runner parsed (``Received``'s fields). One record
    from the wire to the step's result."""

    content_length: str | None = None
    retry_after: str | None = None
    content_encoding: str | None = None  # every Content-Encoding header, joined as httpx joins them
    content: bytes = b""  # the whole body, or its first bytes when saved to a file
    url: str = ""  # the URL the body came from (after redirects)
    tls: TlsInfo | None = None
    saved: Saved | None = None

    @classmethod
    def of(cls, response: httpx.Response) -> Raw:
        return cls.of_raw(response.status_code, response.headers.raw)

    @classmethod
    def of_raw(cls, status: int, raw_headers: Iterable[tuple[bytes, bytes]]) -> Raw:
        """The head of a response from any client, by its status and raw header pairs."""
        headers: list[tuple[str, str]] = []
        content_type = content_length = retry_after = None
        encodings: list[str] = []
        for raw_name, raw_value in raw_headers:
            value = raw_value.decode("latin-1")
            headers.append((raw_name.decode("latin-1"), value))
            lower = raw_name.lower()
            if lower == b"content-type":
                content_type = value
            elif lower == b"content-length":
                content_length = value
            elif lower == b"retry-after":
                retry_after = value
            elif lower == b"content-encoding":
                encodings.append(value)
        return cls(status, tuple(headers), content_type=content_type, content_length=content_length,
                   retry_after=retry_after, content_encoding=", ".join(encodings) if encodings else None)


def too_large(url: str, limit: int, detail: str) -> ResponseTooLargeError:
    return ResponseTooLargeError(f"the response from {url} {detail}, more than the cap of {limit} bytes "
                                 "(response.max_bytes)")


def check_announced(head: Raw, limit: int, url: str) -> None:
    """Refuse a body whose Content-Length is over the cap before reading any of it."""
    declared = head.content_length
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(url, limit, f"announces {declared} bytes")


class Saver:
    """Writes a body to a temporary file next to ``target``, keeping its first bytes for messages."""

    def __init__(self, target: Path) -> None:
        self._target = target
        self._head: list[bytes] = []
        self._size = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        except OSError as exc:
            raise self._write_error(exc) from None
        self._temporary = Path(name)
        self._file: Any = os.fdopen(fd, "wb")

    def _write_error(self, exc: OSError) -> StepFailure:
        return StepFailure(f"cannot write the response to {self._target}: {exc.strerror or exc}",
                           hint="check that the directory of save_to exists and is writable")

    def add(self, chunk: bytes) -> None:
        if self._size < _SAVE_HEAD_BYTES:
            self._head.append(chunk[:_SAVE_HEAD_BYTES])
        self._size += len(chunk)
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise self._write_error(exc) from None

    def done(self) -> tuple[bytes, Saved]:
        try:
            self._file.close()
        except OSError as exc:
            raise self._write_error(exc) from None
        self._file = None
        return b"".join(self._head)[:_SAVE_HEAD_BYTES], Saved(self._target, self._temporary, self._size)

    def abandon(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._temporary.unlink(missing_ok=True)


class Collector:
    """Keeps a body in memory, up to ``limit`` decoded bytes (``Saver``'s interface)."""

    def __init__(self, limit: int, url: str) -> None:
        self._limit = limit
        self._url = url
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise too_large(self._url, self._limit, "is larger")
        self._chunks.append(chunk)

    def done(self) -> tuple[bytes, None]:
        chunks = self._chunks
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), None

    def abandon(self) -> None:
        self._chunks.clear()


def body_sink(step: RestStep, head: Raw, url: str) -> Saver | Collector:
    """Where the body goes: a file (``save_to``, streamed, no cap) or memory (capped)."""
    spec = step.response
    if spec.save_to is not None:
        return Saver(Path(spec.save_to))
    check_announced(head, spec.max_bytes, url)
    return Collector(spec.max_bytes, url)


async def read_body(step: RestStep, head: Raw, url: str, raw: AsyncIterator[bytes]) -> tuple[bytes, Saved | None]:
    """The body of an async response (``raw``: its chunks as they arrive), decoded in bounded
    slices into its sink: memory under the cap, or the ``save_to`` file."""
    sink = body_sink(step, head, url)
    try:
        async for chunk in adecode(raw, head.content_encoding):
            sink.add(chunk)
        return sink.done()
    except BaseException:
        sink.abandon()
        raise


def outcome(raw: Raw, content: bytes, saved: Saved | None, url: str, tls: TlsInfo | None,
            presented: ResolvedConnection) -> Outcome[Raw]:
    """The attempt's outcome once the body of ``raw`` is in."""
    # (``refusal_page`` is not called for the statuses it cannot name: almost every answer)
    refused = refusal_page(raw.status, content, url=url, resolved=presented) if raw.status in REFUSAL_STATUSES else None
    if refused is not None:  # nginx refused our certificate with an HTTP answer
        if saved is not None:
            saved.abort()
        return Outcome(error=refused, status=raw.status)
    raw.content, raw.url, raw.tls, raw.saved = content, url, tls, saved
    return Outcome(raw, raw.status, raw.retry_after, cleanup=saved.abort if saved is not None else None)


def presented(route: Route[Any], current: Route[Any]) -> ResolvedConnection:
    """The connection as the partner of the failed hop met it: another origin never saw our certificate."""
    return route.resolved if current is route else attrs.evolve(current.resolved, client_identity=None)


def send_headers(headers: tuple[tuple[str, str], ...], body: OpenBody) -> tuple[tuple[str, str], ...]:
    return (*headers, *body.headers) if body.headers else headers


_STALE_CONNECTION = "Server disconnected without sending a response"


@functools.lru_cache(maxsize=512)
def parsed_url(url: str) -> httpx.URL:
    """A request URL parsed once (httpx.URL is immutable); a step without pills sends the same one."""
    return httpx.URL(url)


def resend_on_fresh_connection(exc: httpx.RemoteProtocolError, method: str, body: OpenBody) -> bool:
    """A kept-alive connection the partner closed just as we reused it fails before any answer
    (the caller checks the connection was a reused one).
    Browsers and urllib3 send an idempotent request once more on a new connection then; so do we.
    A POST is never resent (the partner may have acted on it), nor a streamed file body."""
    return _STALE_CONNECTION in str(exc) and method in IDEMPOTENT_METHODS and body.replayable


def exchange(route: Route[httpx.Client], step: RestStep, plan: RequestPlan, timeout: Timeout,
             stranger: Callable[[Route[httpx.Client]], Route[httpx.Client]]) -> Outcome[Raw]:
    """Send the plan through the route; ``stranger(route)`` gives the route for other origins."""
    opened: list[OpenBody] = []
    response: httpx.Response | None = None
    url = plan.url
    current = route  # the route of the hop being sent
    attempt = begin_attempt(wait_seconds(route, step))
    try:
        body = open_body(plan.body, step.id)
        opened.append(body)
        client, tls = route.client, route.tls

        def build() -> httpx.Request:
            return client.build_request(plan.method, parsed_url(url), headers=send_headers(plan.headers, body),
                                        timeout=timeout, **body.kwargs)

        try:
            response = send_streamed(client, build(), route.auth)
        except httpx.RemoteProtocolError as exc:
            if opened_connection() or not resend_on_fresh_connection(exc, plan.method, body):
                raise
            response = send_streamed(client, build(), route.auth)
        if step.follow_redirects:
            from flowrun._transport._redirect import is_redirect, next_hop  # redirects are opt-in

            hops, method = 0, plan.method
            while is_redirect(response):
                hop = next_hop(response, method=method, headers=plan.headers, home=route.home, hops=hops,
                               max_redirects=step.max_redirects, secret_headers=route.secret_headers,
                               trusted=route.resolved.trusted_origins)
                response.close()
                hops, method, url = hops + 1, hop.method, str(hop.url)
                target = route if hop.same_origin else stranger(route)
                body = open_body(plan.body if hop.keep_body else None, step.id)
                opened.append(body)
                client, tls, current = target.client, target.tls, target
                request = client.build_request(hop.method, hop.url, headers=send_headers(hop.headers, body),
                                               timeout=timeout, **body.kwargs)
                response = send_streamed(client, request, target.auth)
        head = Raw.of(response)
        sink = body_sink(step, head, url)
        try:
            for chunk in decoded(response):
                sink.add(chunk)
            content, saved = sink.done()
        except BaseException:
            sink.abandon()
            raise
        return outcome(head, content, saved, url, tls.read(response), presented(route, current))
    except httpx.HTTPError as exc:
        return Outcome(error=classify(exc, url=url, resolved=presented(route, current)),
                       sent=not failed_before_sending(exc))
    except FlowrunError as error:
        return Outcome(error=error)
    finally:
        if response is not None:
            response.close()
        for item in opened:
            item.close()
        end_attempt(attempt)


async def aexchange(route: Route[httpx.AsyncClient], step: RestStep, plan: RequestPlan, timeout: Timeout,
                    stranger: Callable[[Route[httpx.AsyncClient]], Route[httpx.AsyncClient]]) -> Outcome[Raw]:
    """``exchange`` on an async client."""
    opened: list[OpenBody] = []
    response: httpx.Response | None = None
    url = plan.url
    current = route  # the route of the hop being sent
    attempt = begin_attempt(wait_seconds(route, step))
    try:
        body = open_body(plan.body, step.id, asynchronous=True)
        opened.append(body)
        client, tls = route.client, route.tls

        def build() -> httpx.Request:
            return client.build_request(plan.method, parsed_url(url), headers=send_headers(plan.headers, body),
                                        timeout=timeout, **body.kwargs)

        try:
            response = await client.send(build(), auth=route.auth, stream=True)
        except httpx.RemoteProtocolError as exc:
            if opened_connection() or not resend_on_fresh_connection(exc, plan.method, body):
                raise
            response = await client.send(build(), auth=route.auth, stream=True)
        if step.follow_redirects:
            from flowrun._transport._redirect import is_redirect, next_hop  # redirects are opt-in

            hops, method = 0, plan.method
            while is_redirect(response):
                hop = next_hop(response, method=method, headers=plan.headers, home=route.home, hops=hops,
                               max_redirects=step.max_redirects, secret_headers=route.secret_headers,
                               trusted=route.resolved.trusted_origins)
                await response.aclose()
                hops, method, url = hops + 1, hop.method, str(hop.url)
                target = route if hop.same_origin else stranger(route)
                body = open_body(plan.body if hop.keep_body else None, step.id, asynchronous=True)
                opened.append(body)
                client, tls, current = target.client, target.tls, target
                request = client.build_request(hop.method, hop.url, headers=send_headers(hop.headers, body),
                                               timeout=timeout, **body.kwargs)
                response = await client.send(request, auth=target.auth, stream=True)
        head = Raw.of(response)
        content, saved = await read_body(step, head, url, response.aiter_raw())
        return outcome(head, content, saved, url, tls.read(response), presented(route, current))
    except httpx.HTTPError as exc:
        return Outcome(error=await aclassify(exc, url=url, resolved=presented(route, current)),
                       sent=not failed_before_sending(exc))
    except FlowrunError as error:
        return Outcome(error=error)
    finally:
        if response is not None:
            await response.aclose()
        for item in opened:
            item.close()
        end_attempt(attempt)
