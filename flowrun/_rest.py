"""REST steps: ``RestExecutor`` (sync) and ``AsyncRestExecutor`` (asyncio).

::

    from flowrun import Registry, ResponseSpec, RestExecutor, RestStep

    with RestExecutor(Registry.load("aliases")) as rest:
        result = rest.run(RestStep(alias="bank", path="/accounts/7",
                                   response=ResponseSpec(outputs={"balance": "body.balance"})))
        print(result.raise_for_failure().outputs["balance"])

An executor resolves each alias once (per environment) and keeps one pooled httpx client per
resolved connection, so sequential calls reuse the TLS connection. ``run`` never raises for
a failing step: the error is in the ``StepResult`` (``raise_for_failure()`` raises it).

One run: render the step's data pills (over ``context``) -> URL, headers,
body -> send, with the retry policy (the step's, else the alias's) -> follow redirects if asked
(see ``flowrun._transport._redirect``) -> read the body with a size cap, or stream it to
``save_to`` (written atomically, only when the status is expected) -> parse -> outputs ->
status check -> assertions (``flowrun._runner``).
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from flowrun._errors import FlowrunError, StepFailure
from flowrun._models._aliases import Connection, Credential, RetryPolicy
from flowrun._models._redact import REDACTED, Secrets, is_credential_header, with_query_credential
from flowrun._models._results import Attempt, RequestInfo, StepResult
from flowrun._models._steps import RestStep
from flowrun._registry import Registry, RegistryUser, ResolvedConnection
from flowrun._runner import charset, excerpt, failure, finish, internal_error, parse_body
from flowrun._transport._exchange import (
    Raw,
    Route,
    Timeout,
    aexchange,
    exchange,
    make_timeout,
    timeout_argument,
    wait_seconds,
)
from flowrun._transport._http import (
    AsyncClientPool,
    ClientPool,
    ExecutorClosedError,
    TlsInfoReader,
    aiohttp_transport,
    client_subject,
)
from flowrun._transport._log_redaction import install as install_log_redaction
from flowrun._transport._request import Content, Multipart, RequestPlan, is_static, plan_request
from flowrun._transport._retry import Outcome, aretry_after_first, arun_with_retry, run_with_retry, should_retry

if TYPE_CHECKING:
    import asyncio

    import httpx

    from flowrun._models._proxy import ProxyRules
    from flowrun._paging import Pager
    from flowrun._transport._aiohttp import AiohttpTransport
    from flowrun._transport._connect_to import Address

C = TypeVar("C", "httpx.Client", "httpx.AsyncClient")
AsyncExchange = Callable[[Route["httpx.AsyncClient"], RestStep, RequestPlan, Timeout,
                          Callable[[Route["httpx.AsyncClient"]], Route["httpx.AsyncClient"]]],
                         Awaitable[Outcome[Raw]]]
_PLAN_CACHE_SIZE = 512


def _sends_credential(credential: Credential | None) -> bool:
    # Without one, the auth module (OAuth2, Digest, signing) is not imported.
    return credential is not None and credential.type != "none"


def _lease_seconds(route: Route[Any], step: RestStep) -> float:
    from flowrun._transport._rate import lease_seconds  # rate and concurrency limits only

    return lease_seconds(wait_seconds(route, step))


class _Prepared(Generic[C]):
    """A step's request on its route, worked out once: kept for steps without data pills, which
    send the same request every time (``plan`` None in the kept entry of a step with pills)."""

    __slots__ = ("plan", "policy", "request", "route", "step", "timeout")

    def __init__(self, step: RestStep, route: Route[C], plan: RequestPlan | None, request: RequestInfo | None) -> None:
        self.step = step
        self.route: Route[C] = route
        self.plan = plan
        self.request = request
        self.policy: RetryPolicy = step.retry_policy or route.resolved.retry_policy
        self.timeout = timeout_argument(route, step)


def _inline_key(connection: Connection) -> Hashable:
    return ("inline", connection.url, connection.url_builder, connection.protocol, connection.host,
            connection.port, connection.base_path, connection.mutual_authentication, connection.protocol_profile,
            connection.credential, connection.timeout_s, connection.connect_timeout_s,
            tuple(connection.headers.items()), connection.proxy)


class _RestCore(RegistryUser, Generic[C]):
    """What the sync and async executors share: resolution, planning, the result."""

    def __init__(self, registry: Registry | None = None, *, env: str | None = None,
                 secrets: Secrets | None = None) -> None:
        super().__init__(registry, env=env, secrets=secrets)
        install_log_redaction()
        self._routes: dict[Hashable, Route[C]] = {}
        self._plans: dict[int, _Prepared[C]] = {}
        self._resolve_lock = threading.Lock()

    def _route_key(self, step: RestStep) -> Hashable:
        if step.connection is not None:
            return _inline_key(step.connection)
        return ("alias", step.alias, self.env)

    def _resolve(self, step: RestStep) -> ResolvedConnection:
        return self.resolve_step(step.alias, step.connection)

    def _default_context(self) -> Any:
        return self.records_registry.ssl_context(None)[0]

    def _client_for(self, key: Hashable, context: Any, connect_to: Mapping[Address, Address],
                    timeout: httpx.Timeout, proxy: ProxyRules) -> C:
        raise NotImplementedError

    def _make_route(self, resolved: ResolvedConnection) -> Route[C]:
        context = resolved.ssl_context or self._default_context()
        dial = resolved.connect_to
        timeout = make_timeout(resolved, None)
        client = self._client_for((resolved.alias, resolved.env, id(context), frozenset(dial.items())), context,
                                  dial, timeout, resolved.proxy)
        credential = resolved.credential
        # The token endpoint gets the client secret (its credential names it); our certificate only
        # when the origin rule trusts it.
        token_client = (client if credential is None or credential.token_url is None
                        or resolved.origin_rule.trusts_url(credential.token_url)
                        else self._anonymous_client(resolved, timeout))
        auth = self._auth_for(resolved, token_client)
        header = None
        if _sends_credential(credential):
            from flowrun._transport._auth import auth_header

            header = auth_header(credential)
        secret = frozenset({header.lower()} if header else set())
        reader = TlsInfoReader(resolved.client_cert_sha256, client_subject(resolved))
        home = resolved.origin_key
        route = Route(resolved, client, auth, home, timeout, reader, header, secret,
                      native=self._native(client, auth))
        if resolved.rate_limit is not None or resolved.concurrency_limit is not None:
            from flowrun._transport._rate import gate_for

            route.limiter = gate_for(resolved)
        return route

    def _auth_for(self, resolved: ResolvedConnection, client: C) -> httpx.Auth | None:
        raise NotImplementedError

    def _native(self, client: C, auth: httpx.Auth | None) -> AiohttpTransport | None:
        """The transport a route's requests go through without httpx's client, if any (async only)."""
        return None

    def _anonymous_client(self, resolved: ResolvedConnection, timeout: httpx.Timeout) -> C:
        """A client with the connection's trust and TLS settings and no client certificate."""
        if resolved.client_certificate is None:
            context = resolved.ssl_context or self._default_context()
        else:
            context = self.records_registry.anonymous_ssl_context(resolved.profile)
        dial = resolved.connect_to
        return self._client_for(("stranger", id(context), frozenset(dial.items())), context, dial, timeout,
                                resolved.proxy)

    def _stranger(self, route: Route[C]) -> Route[C]:
        """The route for an origin the rule does not trust: same trust, no client certificate, no
        credential (``flowrun._models._web_origin``)."""
        if route.stranger is None:
            resolved = route.resolved
            client = self._anonymous_client(resolved, route.timeout)
            route.stranger = Route(resolved, client, None, route.home, route.timeout, TlsInfoReader(None, None),
                                    None, route.secret_headers, native=self._native(client, None))
        return route.stranger

    def _prepare(self, step: RestStep, route: Route[C], context: Mapping[str, Any] | None) -> _Prepared[C]:
        """The step's request plan, its (redacted) description, its retry policy and timeout."""
        cached = self._plans.get(id(step))
        known = cached is not None and cached.step is step and cached.route is route
        if known and cached is not None and cached.plan is not None:
            return cached
        plan = plan_request(step, route.resolved, context)
        prepared = _Prepared(step, route, plan, self._request_info(route, plan))
        if not known:
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            # The entry holds the step, so its id cannot be reused while the entry exists.
            self._plans[id(step)] = prepared if is_static(step) else _Prepared(step, route, None, None)
        return prepared

    def _request_info(self, route: Route[C], plan: RequestPlan) -> RequestInfo:
        secret = route.secret_headers
        headers: list[tuple[str, str]] = []
        for name, value in plan.headers:
            if is_credential_header(name) or name.lower() in secret:
                self.secrets.add(value)  # a custom credential header: masked wherever it shows up
            headers.append((name, REDACTED if is_credential_header(name) or name.lower() in secret else value))
        url = plan.url
        credential = route.resolved.credential
        if route.auth_header is not None:
            headers.append((route.auth_header, REDACTED))
        elif credential is not None and credential.type == "api_key":
            # The key is added when the request is sent: show where it goes, not its value.
            url = with_query_credential(url, credential.query or "api_key")
        body = plan.body.data if isinstance(plan.body, Content) else None
        return RequestInfo(plan.method, url, tuple(headers), body)

    def _complete(self, step: RestStep, raw: Raw, *, context: Mapping[str, Any] | None,
                  attempts: tuple[Any, ...], started: float, request: RequestInfo) -> StepResult:
        spec = step.response
        if raw.saved is not None:
            expected = spec.status_expected(raw.status)
            body: Any = {"saved_to": str(raw.saved.target), "bytes": raw.saved.size}
            try:
                raw.saved.commit() if expected else raw.saved.abort()
            except OSError as exc:
                raw.saved.abort()
                return failure(step, StepFailure(f"cannot write the response to {raw.saved.target}: "
                                                 f"{exc.strerror or exc}"),
                               attempts=attempts, started=started, tls=raw.tls, request=request)
            raw.body, raw.excerpt = body, "" if expected else excerpt(raw.content, charset(raw.content_type))
            return finish(step, raw, context=context, attempts=attempts, started=started, tls=raw.tls,
                          request=request)
        parse_error = self._parse(step, raw)
        return finish(step, raw, context=context, attempts=attempts, started=started, tls=raw.tls,
                      request=request, parse_error=parse_error)

    def _parse(self, step: RestStep, raw: Raw) -> FlowrunError | None:
        """Parse a response read into memory into its own record (the parse error, if any, with
        the excerpt as body)."""
        spec = step.response
        parse_error: FlowrunError | None = None
        xml = None
        try:
            body, xml = parse_body(raw.content, raw.content_type, spec.parse)
        except FlowrunError as error:
            parse_error = error
            body = excerpt(raw.content, charset(raw.content_type))
        if parse_error is not None or not spec.status_expected(raw.status):
            raw.excerpt = excerpt(raw.content, charset(raw.content_type))
        raw.body, raw.xml = body, xml
        return parse_error

    # --- idempotency keys, rate limits, pages ---------------------------------------------------

    @staticmethod
    def _keyed(step: RestStep, plan: RequestPlan) -> tuple[RequestPlan, str | None]:
        """The plan with a fresh idempotency key when the step asks for one: one per request, kept
        by its retries (they resend this plan)."""
        header = step.idempotency_header
        if header is None:
            return plan, None
        key = str(uuid.uuid4())
        others: list[tuple[str, str]] = [pair for pair in plan.headers if pair[0].lower() != header.lower()]
        headers = (*others, (header, key))
        return attrs.evolve(plan, headers=headers), key

    def _after_page(self, step: RestStep, pager: Pager, sent: RequestPlan, outcome: Outcome[Raw],
                    tried: tuple[Attempt, ...], began: float, key: str | None, attempts: list[Attempt], *,
                    context: Mapping[str, Any] | None, started: float,
                    request: RequestInfo) -> StepResult | RequestPlan:
        """The next page's plan, or the step's result once the last page (or a failure) is in."""
        every = tuple(attempts)
        if outcome.error is not None or outcome.value is None:
            pager.failed(sent.url, outcome.status, began, tried, key)
            result = failure(step, outcome.error or StepFailure("no response"), attempts=every, started=started,
                             request=request)
            return self._paged(result, pager, key)
        raw = outcome.value
        parse_error = self._parse(step, raw)
        if parse_error is not None or not step.response.status_expected(raw.status):
            pager.failed(raw.url, raw.status, began, tried, key)
            result = finish(step, raw, context=context, attempts=every, started=started, tls=raw.tls,
                            request=request, parse_error=parse_error)
            return self._paged(result, pager, key)
        try:
            following = pager.add(sent, raw, url=raw.url, began=began, attempts=tried, key=key)
        except FlowrunError as error:
            result = failure(step, error, attempts=every, started=started, tls=raw.tls, request=request,
                             received=raw)
            return self._paged(result, pager, key)
        if following is not None:
            return following
        raw.items = pager.items
        result = finish(step, raw, context=context, attempts=every, started=started, tls=raw.tls,
                        request=request)
        return self._paged(result, pager, key)

    @staticmethod
    def _paged(result: StepResult, pager: Pager, key: str | None) -> StepResult:
        first_key = pager.pages[0].idempotency_key if pager.pages else key
        return attrs.evolve(result, pages=tuple(pager.pages), idempotency_key=first_key)


class RestExecutor(_RestCore["httpx.Client"]):
    """Runs REST steps synchronously; thread-safe. Close it (or use ``with``) to end connections."""

    def __init__(self, registry: Registry | None = None, *, env: str | None = None,
                 secrets: Secrets | None = None) -> None:
        super().__init__(registry, env=env, secrets=secrets)
        self._pool = ClientPool()

    def __enter__(self) -> RestExecutor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()

    def _client_for(self, key: Hashable, context: Any, connect_to: Mapping[Address, Address],
                    timeout: httpx.Timeout, proxy: ProxyRules) -> httpx.Client:
        return self._pool.get(key, context, connect_to, timeout, proxy)

    def _auth_for(self, resolved: ResolvedConnection, client: httpx.Client) -> httpx.Auth | None:
        if not _sends_credential(resolved.credential):
            return None
        from flowrun._transport._auth import build_auth

        return build_auth(resolved.credential, resolved=resolved, client=client, secrets=self.secrets)

    def _route(self, step: RestStep) -> Route[httpx.Client]:
        key = self._route_key(step)
        route = self._routes.get(key)
        if route is None:
            with self._resolve_lock:
                route = self._routes.get(key)
                if route is None:
                    route = self._routes[key] = self._make_route(self._resolve(step))
        return route

    def run(self, step: RestStep, context: Mapping[str, Any] | None = None) -> StepResult:
        """Run one step; failures are returned in the result, not raised (an exception flowrun did
        not expect included: it becomes an ``InternalError``)."""
        started = time.perf_counter()
        try:
            return self._run(step, context, started)
        except ExecutorClosedError:
            raise
        except Exception as exc:  # documented never to raise (the closed executor aside)
            return self.masked(failure(step, internal_error(exc), started=started))

    def _run(self, step: RestStep, context: Mapping[str, Any] | None, started: float) -> StepResult:
        try:
            route = self._route(step)
            prepared = self._prepare(step, route, context)
        except FlowrunError as error:
            return self.masked(failure(step, error, started=started))
        plan, request, policy, timeout = prepared.plan, prepared.request, prepared.policy, prepared.timeout
        assert plan is not None and request is not None  # (a kept entry without one is never returned)
        if step.paginate is not None:
            return self.masked(self._pages(step, route, plan, request, policy, timeout, context, started))
        plan, key = self._keyed(step, plan)
        outcome, attempts = run_with_retry(policy, plan.method, functools.partial(self._send, route, step, plan,
                                                                                  timeout))
        if outcome.error is not None or outcome.value is None:
            result = failure(step, outcome.error or StepFailure("no response"), attempts=attempts, started=started,
                             request=request)
        else:
            result = self._complete(step, outcome.value, context=context, attempts=attempts, started=started,
                                    request=request)
        return self.masked(result if key is None else attrs.evolve(result, idempotency_key=key))

    def _send(self, route: Route[httpx.Client], step: RestStep, plan: RequestPlan, timeout: Timeout) -> Outcome[Raw]:
        limiter = route.limiter
        if limiter is None:
            return exchange(route, step, plan, timeout, self._stranger)
        try:
            held = limiter.enter(_lease_seconds(route, step))
        except StepFailure as error:  # no slot in time, or the shared limits' store failed: not sent
            return Outcome(error=error, sent=False)
        try:
            outcome = exchange(route, step, plan, timeout, self._stranger)
        finally:
            limiter.leave(held)
        limiter.answered(outcome.status, outcome.retry_after, route.resolved.retry_policy.max_interval_s)
        return outcome

    def _pages(self, step: RestStep, route: Route[httpx.Client], plan: RequestPlan, request: RequestInfo,
               policy: RetryPolicy, timeout: Timeout, context: Mapping[str, Any] | None,
               started: float) -> StepResult:
        assert step.paginate is not None
        from flowrun._paging import Pager

        pager = Pager(step.paginate, route.resolved.origin_rule)
        attempts: list[Attempt] = []
        page = pager.first(plan)
        while True:
            sent, key = self._keyed(step, page)
            began = time.perf_counter()
            outcome, tried = run_with_retry(policy, sent.method, functools.partial(self._send, route, step, sent,
                                                                                   timeout))
            attempts.extend(tried)
            after = self._after_page(step, pager, sent, outcome, tried, began, key, attempts, context=context,
                                     started=started, request=request)
            if isinstance(after, StepResult):
                return after
            page = after


class AsyncRestExecutor(_RestCore["httpx.AsyncClient"]):
    """Runs REST steps on asyncio; many ``run`` calls may be awaited concurrently (one event loop)."""

    def __init__(self, registry: Registry | None = None, *, env: str | None = None,
                 secrets: Secrets | None = None) -> None:
        super().__init__(registry, env=env, secrets=secrets)
        self._pool = AsyncClientPool()
        self._async_lock: asyncio.Lock | None = None
        self._aio_exchange: AsyncExchange | None = None

    async def __aenter__(self) -> AsyncRestExecutor:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._pool.aclose()

    def _client_for(self, key: Hashable, context: Any, connect_to: Mapping[Address, Address],
                    timeout: httpx.Timeout, proxy: ProxyRules) -> httpx.AsyncClient:
        return self._pool.get(key, context, connect_to, timeout, proxy)

    def _auth_for(self, resolved: ResolvedConnection, client: httpx.AsyncClient) -> httpx.Auth | None:
        if not _sends_credential(resolved.credential):
            return None
        from flowrun._transport._auth import build_auth

        return build_auth(resolved.credential, resolved=resolved, async_client=client, secrets=self.secrets)

    def _native(self, client: httpx.AsyncClient, auth: httpx.Auth | None) -> AiohttpTransport | None:
        # On aiohttp (the fast-async extra) without a proxy, a credential that is a header or a
        # query key goes with ``aio_exchange``, without httpx's client (about half the CPU of a
        # request); Digest, hmac and aws_sigv4 (challenge, signing) stay on ``aexchange``.
        transport = aiohttp_transport(client)
        if transport is None:
            return None
        if auth is not None:
            from flowrun._transport._auth import set_by_headers

            if not set_by_headers(auth):
                return None
        if self._aio_exchange is None:
            from flowrun._transport._aio_exchange import aio_exchange

            self._aio_exchange = aio_exchange
        return transport

    async def _route(self, step: RestStep) -> Route[httpx.AsyncClient]:
        key = self._route_key(step)
        route = self._routes.get(key)
        if route is not None:
            return route
        import asyncio  # only async users pay for it

        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            route = self._routes.get(key)
            if route is None:
                # Reading a keystore can take a while (JCEKS: ~0.2 s per key): not on the loop.
                resolved = await asyncio.to_thread(self._resolve, step)
                route = self._routes[key] = self._make_route(resolved)
            return route

    async def run(self, step: RestStep, context: Mapping[str, Any] | None = None) -> StepResult:
        """Run one step; failures are returned in the result, not raised (see ``RestExecutor.run``)."""
        # One coroutine, not ``run`` awaiting ``_run`` as on the sync side: every frame of the
        # await chain is entered again each time the request resumes.
        started = time.perf_counter()
        try:
            try:
                prepared = self._plans.get(id(step))
                if prepared is None or prepared.step is not step or prepared.plan is None:
                    route = self._routes.get(self._route_key(step)) or await self._route(step)
                    prepared = self._prepare(step, route, context)
            except FlowrunError as error:
                return self.masked(failure(step, error, started=started))
            route, plan, request, policy, timeout = (prepared.route, prepared.plan, prepared.request, prepared.policy,
                                                     prepared.timeout)
            assert plan is not None and request is not None  # (a kept entry without one is never returned)
            if step.paginate is not None:
                return self.masked(await self._pages(step, route, plan, request, policy, timeout, context,
                                                     started))
            plan, key = self._keyed(step, plan) if step.idempotency_header is not None else (plan, None)
            # ``arun_with_retry``'s first attempt made here: one frame less in the await chain, and
            # no callable built for the retries most calls never make.
            wall, began = time.time(), time.perf_counter()
            outcome = await self._send(route, step, plan, timeout)
            spent = time.perf_counter() - began
            attempts: tuple[Attempt, ...] = (Attempt(1, wall, spent * 1000.0, outcome.status, outcome.error),)
            # (an answer whose status the policy does not name is never retried: no call for it)
            if (policy.attempts > 1 and (outcome.error is not None or outcome.status in policy.on_status)
                    and should_retry(policy, plan.method, outcome)):
                outcome, attempts = await aretry_after_first(
                    policy, plan.method, functools.partial(self._send, route, step, plan, timeout), outcome,
                    attempts[0], spent)
            if outcome.error is not None or outcome.value is None:
                result = failure(step, outcome.error or StepFailure("no response"), attempts=attempts,
                                 started=started, request=request)
            else:
                result = self._complete(step, outcome.value, context=context, attempts=attempts, started=started,
                                        request=request)
            return self.masked(result if key is None else attrs.evolve(result, idempotency_key=key))
        except ExecutorClosedError:
            raise
        except Exception as exc:  # documented never to raise (the closed executor aside)
            return self.masked(failure(step, internal_error(exc), started=started))

    def _send(self, route: Route[httpx.AsyncClient], step: RestStep, plan: RequestPlan,
              timeout: Timeout) -> Awaitable[Outcome[Raw]]:
        send: AsyncExchange = aexchange
        if route.native is not None and self._aio_exchange is not None and not isinstance(plan.body, Multipart):
            send = self._aio_exchange  # multipart bodies are encoded by httpx
        if route.limiter is None:  # the exchange's own coroutine: no frame of ours in the await chain
            return send(route, step, plan, timeout, self._stranger)
        return self._send_limited(send, route, step, plan, timeout)

    async def _send_limited(self, send: AsyncExchange, route: Route[httpx.AsyncClient], step: RestStep,
                            plan: RequestPlan, timeout: Timeout) -> Outcome[Raw]:
        limiter = route.limiter
        assert limiter is not None
        try:
            held = await limiter.aenter(_lease_seconds(route, step))
        except StepFailure as error:
            return Outcome(error=error, sent=False)
        try:
            outcome = await send(route, step, plan, timeout, self._stranger)
        finally:
            limiter.leave(held)
        limiter.answered(outcome.status, outcome.retry_after, route.resolved.retry_policy.max_interval_s)
        return outcome

    async def _pages(self, step: RestStep, route: Route[httpx.AsyncClient], plan: RequestPlan,
                     request: RequestInfo, policy: RetryPolicy, timeout: Timeout,
                     context: Mapping[str, Any] | None, started: float) -> StepResult:
        assert step.paginate is not None
        from flowrun._paging import Pager

        pager = Pager(step.paginate, route.resolved.origin_rule)
        attempts: list[Attempt] = []
        page = pager.first(plan)
        while True:
            sent, key = self._keyed(step, page)
            began = time.perf_counter()
            outcome, tried = await arun_with_retry(policy, sent.method,
                                                   functools.partial(self._send, route, step, sent, timeout))
            attempts.extend(tried)
            after = self._after_page(step, pager, sent, outcome, tried, began, key, attempts, context=context,
                                     started=started, request=request)
            if isinstance(after, StepResult):
                return after
            page = after


__all__ = ["AsyncRestExecutor", "RestExecutor"]
