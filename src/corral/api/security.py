"""Everything between a request arriving and a handler running: audit,
authentication, fair shares, authorization, in that order.

``start_security`` builds the pieces from the data directory (token file,
service-account signing key, audit log) and starts the RBAC cache;
``middlewares`` gives the aiohttp middleware chain the server installs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from corral.api.admit import POLICY_KEY
from corral.api.audit import AuditLog
from corral.api.auth import Authenticator, TokenAuthenticator, bearer_token
from corral.api.authz.keys import AUTHZ_KEY, SIGNER_KEY, USER_KEY
from corral.api.authz.setup import AuthorizationRuntime, start_authorization
from corral.api.certs import NODE_GROUP
from corral.api.context import ServerContext
from corral.api.csr import PKI_KEY
from corral.api.errors import Forbidden
from corral.api.namespaces import NamespaceIndex
from corral.api.quota import NamespacePolicies, QuotaRecalculator
from corral.api.ratelimit import (
    EXEMPT_GROUP,
    LimitSettings,
    RequestLimiter,
    RequestTimeout,
    is_long_running,
    read_body_within,
)
from corral.api.satoken import TokenSigner, ensure_signing_key
from corral.api.server import error_response
from corral.api.slowclients import CLOSE_KEY, SlowClientGuard, close_if_asked, guard_of

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ATTRS_KEY = web.RequestKey("authz-attributes", object)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass
class SecurityOptions:
    audit_level: str = "Metadata"
    audit_max_bytes: int = 100 * 1024 * 1024
    limits: LimitSettings = field(default_factory=LimitSettings)
    quota_interval: float = 3.0
    """Seconds between ResourceQuota usage recounts."""
    token_recheck_seconds: float = 10.0
    """How long a verified ServiceAccount token is trusted before its
    ServiceAccount (and Pod) are looked up again."""
    audit_file: str = "audit.log"
    """In the data dir; each API worker process writes its own, so that no
    two processes append to (or rotate) one file."""
    recount_quotas: bool = True
    """Whether this process recounts ResourceQuota usage every
    ``quota_interval`` seconds; one process of a server is enough."""
    serves_nodes: bool = True
    """Whether nodes' requests may come to this process. The store's owner
    behind API workers serves none, so it keeps no node-authorizer pod
    graph until one does (authz/node.py, lazy)."""


@dataclass
class Security:
    authenticator: Authenticator
    authorization: AuthorizationRuntime
    limiter: RequestLimiter
    audit: AuditLog
    signer: TokenSigner
    policies: NamespacePolicies
    quota_recalculator: QuotaRecalculator
    pki: Path
    namespaces: NamespaceIndex | None = None
    deadlines: Deadlines = field(default_factory=lambda: Deadlines())

    async def stop(self) -> None:
        self.deadlines.close()
        if self.namespaces is not None:
            await self.namespaces.stop()
        await self.quota_recalculator.stop()
        await self.authorization.stop()
        self.audit.close()

    def install(self, app: web.Application) -> None:
        app[AUTHZ_KEY] = self.authorization.authorizer
        app[SIGNER_KEY] = self.signer
        app[POLICY_KEY] = self.policies
        app[PKI_KEY] = self.pki

    def middlewares(self, error_middleware: Any = None) -> list[Any]:
        """One aiohttp middleware running the whole chain: the slow-client
        guard's bookkeeping, audit, errors to Status, authentication, fair
        shares, authorization. It is one coroutine for an ordinary request,
        not one per step: a create costs well under a millisecond, and each
        extra coroutine frame and context manager on every request is a
        measurable part of that. (The server installs no separate
        slowclients middleware with it.)"""

        @web.middleware
        async def chain(request: web.Request, handler: Handler) -> web.StreamResponse:
            received = time.time_ns()
            guard = guard_of(request)
            if guard is not None:
                guard.request_started()
            code = 500
            try:
                try:
                    try:
                        response = await self._checked(request, handler, guard)
                    except Exception as exc:
                        answer = error_response(request, exc)
                        if answer is None:
                            raise
                        response = answer
                    code = response.status
                except web.HTTPException as exc:
                    code = exc.status
                    raise
                finally:
                    if self.audit.level != "None":
                        self._record(request, code, received, guard)
                if guard is not None:
                    await close_if_asked(request, response, guard)
                return response
            finally:
                if guard is not None:
                    guard.request_finished()

        return [chain]

    # -- the chain -------------------------------------------------------------

    def _record(self, request: web.Request, code: int, received_ns: int, guard: SlowClientGuard | None) -> None:
        # The body the handler read, if any (aiohttp keeps it); never re-read here.
        body = getattr(request, "_read_bytes", None) if self.audit.level == "Request" else None
        peer = guard.peername if guard is not None else _peer_of(request)
        attrs = request.get(ATTRS_KEY)
        try:
            self.audit.write(self.audit.event(
                verb=attrs.verb if attrs is not None else request.method.lower(), uri=request.raw_path,
                user=request.get(USER_KEY), source_ip=peer[0] if peer else "",
                user_agent=request.headers.get("User-Agent", ""),
                code=code, received_ns=received_ns, attrs=attrs, body=body,
            ))
        except (OSError, TypeError, ValueError, orjson.JSONEncodeError):
            log.exception("audit: could not write an event")

    async def _checked(self, request: web.Request, handler: Handler,
                       guard: SlowClientGuard | None) -> web.StreamResponse:
        """Authentication, fair shares, body, authorization, deadline, then
        the handler: in this one coroutine, since every await of the handler
        resumes through each frame between the loop and it."""
        headers = request.headers
        authorization = headers.get("Authorization")
        peercert = None
        if bearer_token(authorization) is None:  # a certificate counts only without a token
            if guard is not None:
                peercert = guard.peercert()
            else:
                transport = request.transport
                peercert = transport.get_extra_info("peercert") if transport else None
        user = await self.authenticator.authenticate(authorization, request.path, peercert)
        if user is not None and ("Impersonate-User" in headers or "Impersonate-Group" in headers):
            user = self.authorization.authorizer.impersonate(user, headers)
        request[USER_KEY] = user
        method = request.method
        long_running = is_long_running(method, request.path, request.query.get("watch"))
        lane = None
        limiter = self.limiter
        if user is None or EXEMPT_GROUP in user.groups:  # never queued (RequestLimiter.slot agrees)
            pass
        elif long_running:
            async with limiter.slot(user, long_running):
                await self._admitted(request, user, method)
                return await handler(request)
        else:
            lane = await limiter.acquire(user.name)
        try:
            await self._admitted(request, user, method)
            if long_running:
                return await handler(request)
            with self.deadlines.enter(limiter.settings.request_timeout):
                response = await handler(request)
            return response
        finally:
            if lane is not None:
                limiter.release(user.name, lane)  # type: ignore[union-attr]

    async def _admitted(self, request: web.Request, user: Any, method: str) -> None:
        """The body read (within the body timeout) and the request authorized."""
        if method in BODY_METHODS and request.can_read_body:
            if request.content.is_eof():
                await request.read()  # all there already: nothing to time
            else:
                try:
                    await read_body_within(request, self.limiter.settings.body_timeout)
                except RequestTimeout:
                    request[CLOSE_KEY] = True  # the rest of that body must not be read as a request
                    raise
        if user is None:
            return
        try:
            attrs = self.authorization.authorizer.check(user, method, request.path, request.query)
        except Forbidden:
            # A node acting on a pod bound a moment ago, before this
            # process's node graph saw the bind: judged on the stored pod.
            confirmed = None
            if NODE_GROUP in user.groups:
                confirmed = await self.authorization.confirm_refused(user, method, request.path, request.query)
            if confirmed is None:
                raise
            attrs = confirmed
        request[ATTRS_KEY] = attrs


class _Deadline:
    """A request's deadline (loop time); firing cancels its task and
    remembers that it did, so the cancellation becomes a 504 rather than
    passing for a client that went away. The ``with`` block it guards
    (:meth:`Deadlines.enter`) ends it: a plain class, not a generator, as
    every request passes through it."""

    __slots__ = ("owner", "task", "due", "seconds", "fired")

    def __init__(self, owner: Deadlines, task: asyncio.Task[Any], seconds: float) -> None:
        self.owner = owner
        self.task = task
        self.due = task.get_loop().time() + seconds
        self.seconds = seconds
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        self.task.cancel()

    def __enter__(self) -> _Deadline:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self.owner._live.discard(self)
        if not self.fired:
            return
        if kind is None:  # fired as the work was finishing: that cancel is ours, and seen by nobody
            self.task.uncancel()
        elif issubclass(kind, asyncio.CancelledError) and self.task.uncancel() == 0:
            # The deadline cancelled the task, and nothing else asked to: a 504.
            from corral.api.errors import Timeout

            raise Timeout(f"Timeout: request did not complete within {self.seconds:g}s") from None


class Deadlines:
    """The deadlines of the requests in flight, checked ``tick`` seconds
    apart by one loop timer that runs only while some are in flight (a
    deadline fires at most ``tick`` late). One loop timer per request,
    armed and cancelled again, cost several times a set entry: each stays
    in the loop's heap until it would have expired, so a busy server kept
    tens of thousands of cancelled ones there."""

    def __init__(self, tick: float = 0.25) -> None:
        self.tick = tick
        self._live: set[_Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def within(self, seconds: float, work: Awaitable[web.StreamResponse]) -> web.StreamResponse:
        """``await work``, or raise a 504 Timeout once ``seconds`` have passed."""
        with self.enter(seconds):
            return await work

    def enter(self, seconds: float) -> _Deadline:
        """A deadline ``seconds`` from now for the current task, for a
        ``with`` block: past it the task is cancelled and the block raises
        a 504 Timeout."""
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        deadline = _Deadline(self, task, seconds)
        self._live.add(deadline)
        if self._loop is not loop:  # a timer on a loop that has ended would never sweep this one
            self._loop, self._timer = loop, None
            self._live = {d for d in self._live if d.task.get_loop() is loop}
        if self._timer is None:
            self._timer = loop.call_later(min(self.tick, seconds), self._sweep, loop)
        return deadline

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        for deadline in [d for d in self._live if d.due <= now and not d.fired]:
            deadline.fire()
        if self._live:
            self._timer = loop.call_later(self.tick, self._sweep, loop)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def _uid_lookup(ctx: ServerContext) -> Callable[[str, str, str], Awaitable[str | None]]:
    async def lookup(plural: str, namespace: str, name: str) -> str | None:
        rt = ctx.registry.lookup("", "v1", plural)
        if rt is None:
            return None
        kv = await ctx.store.get(rt.key(namespace, name))
        if kv is None:
            return None
        try:
            obj = orjson.loads(kv.value)
        except orjson.JSONDecodeError:
            return None
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            return None
        return str((obj.get("metadata") or {}).get("uid") or "")
    return lookup


def _bootstrap_lookup(ctx: ServerContext) -> Callable[[str], Awaitable[dict[str, Any] | None]]:
    async def lookup(token_id: str) -> dict[str, Any] | None:
        rt = ctx.registry.lookup("", "v1", "secrets")
        if rt is None:
            return None
        kv = await ctx.store.get(rt.key("kube-system", f"bootstrap-token-{token_id}"))
        return None if kv is None else orjson.loads(kv.value)
    return lookup


async def start_security(ctx: ServerContext, data_dir: Path, tokens: TokenAuthenticator,
                         options: SecurityOptions | None = None, *deciders: Any) -> Security:
    opts = options or SecurityOptions()
    signer = TokenSigner(ensure_signing_key(data_dir / "pki" / "sa.key"))
    authenticator = Authenticator(tokens, signer, await _uid_lookup(ctx),
                                  bootstrap_secret=_bootstrap_lookup(ctx), recheck_seconds=opts.token_recheck_seconds)
    authorization = await start_authorization(ctx, *deciders, lazy_node_graph=not opts.serves_nodes)
    audit = AuditLog(data_dir / opts.audit_file, opts.audit_level, opts.audit_max_bytes)
    policies = NamespacePolicies(ctx)
    recalculator = QuotaRecalculator(ctx, policies, opts.quota_interval)
    recalculator.start(recount=opts.recount_quotas)
    namespaces = None
    ns_type = ctx.registry.lookup("", "v1", "namespaces")
    if ns_type is not None:
        namespaces = NamespaceIndex(ctx.store, ns_type.storage_prefix)
        namespaces.start()
        ctx.objects.namespaces = namespaces
    return Security(authenticator, authorization, RequestLimiter(opts.limits), audit, signer, policies, recalculator,
                    data_dir / "pki", namespaces)


def _peer_of(request: web.Request) -> Any:
    """The client's (host, port), or None once the connection is gone: an SSL
    transport closed under a finished request raises AttributeError here."""
    transport = request.transport
    try:
        return transport.get_extra_info("peername") if transport else None
    except AttributeError:
        return None
