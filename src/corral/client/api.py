"""The async Kubernetes API client every corral component uses.

Requests go over a pool of keep-alive HTTP/1.1 connections of its own
(:mod:`corral.client.http1`), watches over an aiohttp session; bearer-token
auth and the cluster CA, JSON bodies, Status bodies turned into :mod:`corral.client.errors`. Only
idempotent reads are retried (connection errors, 429, 503, bounded and
jittered); a write is never repeated behind the caller's back, because the
caller alone knows whether repeating it is safe.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from corral.client import errors
from corral.client.backoff import Backoff
from corral.client.http1 import Http1Error, Http1Pool
from corral.client.kubeconfig import load_kubeconfig
from corral.client.objecthead import object_head
from corral.client.resources import Resource
from corral.client.watchstream import LineSplitter, decode_event, decode_lines
from corral.clock import Clock, RealClock

log = logging.getLogger(__name__)

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}

RETRY_STATUSES = frozenset({429, 503})
MAX_READ_ATTEMPTS = 5
MAX_RETRY_WAIT = 10.0

Params = Mapping[str, str | int | bool | None]


KEEPALIVE_SECONDS = 60.0
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"  # what a path may hold unescaped (RFC 3986)
_QUERY_SAFE = _PATH_SAFE + "?"


class ApiClient:
    connection_limit = 100  # open connections per client; a pool shared by many (corral sim) needs more

    def __init__(
        self,
        server: str | Sequence[str],
        *,
        token: str | None = None,
        ca_file: str | None = None,
        ca_data: bytes | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        insecure: bool = False,
        user_agent: str = "corral",
        timeout: float = 30.0,
        clock: Clock | None = None,
        namespace: str = "default",
        unix_socket: str | None = None,
    ) -> None:
        if unix_socket and not str(server).startswith("http://"):
            raise ValueError("unix_socket: the server URL must be http:// (no TLS over the socket)")
        self.unix_socket = unix_socket
        """A server's local socket (api/bootstrap.py): components in the server's own
        process skip TCP and TLS; ``server`` then only names the Host header."""
        self.servers = parse_servers(server)
        self._index = 0
        self.timeout = timeout
        self.namespace = namespace  # the kubeconfig context's default, for CLI use
        self._clock = clock or RealClock()
        self._ssl = _ssl_context(self.servers[0], ca_file, ca_data, insecure)
        self.ca_pem: bytes = b"" if insecure else (Path(ca_file).read_bytes() if ca_file else ca_data or b"")
        """The cluster CA this client trusts (the agent verifies API servers' certificates with it)."""
        if cert_file or key_file:
            self.load_client_certificate(cert_file or key_file or "", key_file or cert_file or "")
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._head_lines = "".join(f"{k}: {v}\r\n" for k, v in self._headers.items()).encode()
        self._session: aiohttp.ClientSession | None = None  # watches: aiohttp streams them
        self._pool: Http1Pool | None = None  # every other request
        self._closed = False

    def load_client_certificate(self, cert_file: str, key_file: str) -> None:
        """Present this certificate from now on. The TLS context is shared by
        the connection pool, so connections made after this use the new
        certificate while open ones (watches) keep theirs: a rotation drops
        nothing."""
        if not isinstance(self._ssl, ssl.SSLContext):
            raise ValueError("cert_file/key_file: a client certificate needs an https:// server")
        try:
            self._ssl.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cert_file/key_file: cannot load the client certificate: {exc}") from exc

    @property
    def server(self) -> str:
        """The API server requests go to now (the first of ``servers`` that answered)."""
        return self.servers[self._index]

    def _fail_over(self, failed: str, exc: BaseException) -> None:
        """``failed`` did not answer: the next request goes to the next server."""
        if len(self.servers) > 1 and self.server == failed:
            self._index = (self._index + 1) % len(self.servers)
            log.warning("API server %s failed (%r); switching to %s", failed, exc, self.server)

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None, **kwargs: Any) -> ApiClient:
        cfg = load_kubeconfig(path, context)
        return cls(
            list(cfg.servers) or cfg.server,
            token=cfg.token,
            ca_file=cfg.ca_file,
            ca_data=cfg.ca_data,
            insecure=cfg.insecure,
            namespace=cfg.namespace,
            **kwargs,
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_pool(self) -> Http1Pool:
        if self._closed:
            raise errors.ApiConnectionError("the client is closed")
        if self._pool is None:
            self._pool = Http1Pool(ssl_context=self._ssl, unix_socket=self.unix_socket,
                                   limit=self.connection_limit, keepalive=KEEPALIVE_SECONDS)
        return self._pool

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise errors.ApiConnectionError("the client is closed")
        if self._session is None:
            # Created lazily: a session must be born inside the running loop.
            # Idle connections are kept nearly as long as the server keeps them
            # (75 s): aiohttp's 15 s default made every burst after a quiet
            # spell pay a new TLS handshake per connection.
            connector: aiohttp.BaseConnector
            if self.unix_socket:
                connector = aiohttp.UnixConnector(self.unix_socket, limit=self.connection_limit,
                                                  keepalive_timeout=KEEPALIVE_SECONDS)
            else:
                connector = aiohttp.TCPConnector(limit=self.connection_limit, ssl=self._ssl,
                                                 keepalive_timeout=KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    # -- typed verbs -----------------------------------------------------

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        return await self.request("GET", res.path(namespace, name))

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        params = {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": limit,
            "continue": continue_,
            "resourceVersion": resource_version,
        }
        return await self.request("GET", res.path(namespace), params=params)

    async def list_all(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every item over all pages, and the list's resourceVersion.

        Items get ``kind``/``apiVersion`` filled in (Kubernetes leaves them
        out of list items) so that cached objects are self-describing. If a
        continue token expires mid-way, the list restarts unpaginated, as
        client-go's pager does.
        """
        sel = {"label_selector": label_selector, "field_selector": field_selector}
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            try:
                page = await self.list(res, namespace, limit=page_size, continue_=token, **sel)
            except errors.GoneError:
                if token is None:
                    raise
                page = await self.list(res, namespace, **sel)
                items = []
                token = None
            for item in page.get("items") or []:
                item.setdefault("kind", res.kind)
                item.setdefault("apiVersion", res.api_version)
                items.append(item)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                return items, str(meta.get("resourceVersion") or "")

    async def create(
        self, res: Resource, obj: dict[str, Any], namespace: str | None = None, *, full: bool = True
    ) -> dict[str, Any]:
        """The created object, as the server returned it.

        ``full=False`` is for a caller that needs only what the server
        named (a ``generateName`` create): the answer is then only its head,
        ``{"apiVersion", "kind", "metadata": {"name"}}``, read without
        decoding the whole object, which costs as much as the create's own
        bookkeeping in a controller making pods by the thousand."""
        ns = namespace or _meta(obj).get("namespace")
        if res.namespaced and not ns:
            raise ValueError(f"metadata.namespace: required to create a {res.kind}")
        path = res.path(ns if res.namespaced else None)
        return await self._write("POST", path, full, json=obj)

    async def replace(
        self, res: Resource, obj: dict[str, Any], *, subresource: str | None = None, full: bool = True
    ) -> dict[str, Any]:
        """The replaced object, as the server returned it; ``full=False``:
        only its head (see :meth:`create`)."""
        meta = _meta(obj)
        name = meta.get("name")
        if not name:
            raise ValueError(f"metadata.name: required to replace a {res.kind}")
        ns = meta.get("namespace") if res.namespaced else None
        if res.namespaced and not ns:
            raise ValueError(f"metadata.namespace: required to replace a {res.kind}")
        return await self._write("PUT", res.path(ns, name, subresource), full, json=obj)

    async def replace_status(self, res: Resource, obj: dict[str, Any], *, full: bool = True) -> dict[str, Any]:
        return await self.replace(res, obj, subresource="status", full=full)

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: dict[str, Any] | list[Any],
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        full: bool = True,
    ) -> dict[str, Any]:
        """The patched object, as the server returned it; with ``full=False``
        only its head (see :meth:`create`), for a caller that only needs the
        write done: a node's status write, a lease renewal."""
        content_type = PATCH_TYPES.get(patch_type)
        if content_type is None:
            raise ValueError(f"patch_type: expected one of {sorted(PATCH_TYPES)}, got {patch_type!r}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("field_manager: required for a server-side apply patch")
        if patch_type == "json" and not isinstance(patch, list):
            raise ValueError("patch: a JSON patch is a list of operations")
        params: dict[str, Any] = {"fieldManager": field_manager}
        if force:
            if patch_type != "apply":
                raise ValueError("force: only meaningful for an apply patch")
            params["force"] = True
        return await self._write("PATCH", res.path(namespace, name, subresource), full, params=params,
                                 body=orjson.dumps(patch), content_type=content_type)

    async def _write(self, method: str, path: str, full: bool, **kwargs: Any) -> dict[str, Any]:
        """A write's answer: the whole object, or with ``full=False`` only
        its head, read without decoding the rest (objecthead.py)."""
        if full:
            return await self.request(method, path, **kwargs)
        return object_head(await self.request_bytes(method, path, **kwargs), f"{method} {path}")

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            options["preconditions"] = preconditions
        # Kubernetes reads options from the query too; some proxies drop
        # DELETE bodies, so the scalar ones travel both ways.
        params = {
            "gracePeriodSeconds": grace_period_seconds,
            "propagationPolicy": propagation_policy,
        }
        return await self.request("DELETE", res.path(namespace, name), params=params, json=options)

    async def post_subresource(
        self,
        res: Resource,
        name: str,
        namespace: str | None,
        subresource: str,
        body: dict[str, Any],
    ) -> dict[str, Any]:
        return await self.request("POST", res.path(namespace, name, subresource), json=body)

    # -- watch -----------------------------------------------------------

    async def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """Yield ``(type, object)`` until the server ends the stream.

        A 410 (on the response or as an ERROR event) raises GoneError: the
        caller must re-list. Leaving the loop closes the connection.
        """
        batches = self.watch_batches(
            res, namespace, resource_version=resource_version, label_selector=label_selector,
            field_selector=field_selector, timeout_seconds=timeout_seconds, allow_bookmarks=allow_bookmarks)
        try:
            async for batch in batches:
                for event in batch:
                    yield event
        finally:
            await batches.aclose()

    async def watch_batches(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> AsyncGenerator[list[tuple[str, dict[str, Any]]], None]:
        """:meth:`watch`, but the events come in lists: those that arrived
        together (never an empty list). An informer applying thousands of
        events a second pays the generator's round trip once per read, not
        once per event. An ERROR event raises once the events before it
        in its read have been yielded."""
        params = _clean_params(
            {
                "watch": True,
                "resourceVersion": resource_version,
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
                "timeoutSeconds": timeout_seconds,
                "allowWatchBookmarks": allow_bookmarks or None,
            }
        )
        # No total timeout on a stream; a read timeout just past the server's
        # own end of the watch detects a silently dead connection.
        read = None if timeout_seconds is None else timeout_seconds + max(30.0, self.timeout)
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=read)
        session = self._get_session()
        for attempt in range(len(self.servers)):
            server = self.server
            url = server + res.path(namespace)
            try:
                # This client's own headers: a session shared by several
                # clients (hollow nodes) carries another identity's.
                resp = await session.get(url, params=params, timeout=timeout, headers=self._headers)
                break
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._fail_over(server, exc)
                if not _never_sent(exc) or attempt + 1 == len(self.servers):
                    raise errors.ApiConnectionError(f"GET {url}: {exc!r}") from exc
        try:
            if resp.status >= 300:
                raise errors.error_from_response(resp.status, await resp.read())
            splitter = LineSplitter()
            async for chunk in _chunks(resp, url):
                batch, failure = decode_lines(splitter.feed(chunk))
                if batch:
                    yield batch
                if failure is not None:
                    raise failure
            event = decode_event(splitter.finish())
            if event is not None:
                yield [event]
        finally:
            resp.close()

    # -- raw requests ----------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        raw = await self.request_bytes(
            method, path, params=params, json=json, body=body, content_type=content_type
        )
        if not raw:
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.ApiError(0, "InvalidResponse", f"{method} {path}: not JSON: {exc}") from exc
        return data if isinstance(data, dict) else {"items": data}

    async def request_bytes(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> bytes:
        """The raw response body (pod logs are text/plain)."""
        if json is not None:
            if body is not None:
                raise ValueError("json and body: give one request body, not both")
            body = orjson.dumps(json)
            content_type = content_type or "application/json"
        headers = {"Content-Type": content_type} if content_type else None
        query = _clean_params(params or {})
        retry = method == "GET"
        backoff = Backoff(0.1, MAX_RETRY_WAIT)
        attempt = 1
        while True:
            try:
                return await self._send(method, path, query, body, headers)
            except (errors.ApiConnectionError, errors.TooManyRequestsError, errors.ServerError) as exc:
                retryable = exc.status == 0 or exc.status in RETRY_STATUSES
                if not retry or not retryable or attempt >= MAX_READ_ATTEMPTS or self._closed:
                    raise
                wait = backoff.next()
                if exc.retry_after is not None:
                    wait = min(MAX_RETRY_WAIT, max(wait, exc.retry_after))
                log.debug("retrying %s %s in %.2fs after %s", method, path, wait, exc)
                await self._clock.sleep(wait)
                attempt += 1

    async def _send(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: bytes | None,
        headers: dict[str, str] | None,
    ) -> bytes:
        pool = self._get_pool()
        target = request_target(path, query)
        head = self._head_lines
        if headers:
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        for attempt in range(len(self.servers)):
            server = self.server
            try:
                status, raw = await pool.request(server, method, target, head, body, self.timeout)
            except (Http1Error, TimeoutError) as exc:
                self._fail_over(server, exc)
                # A request that never reached a server is safe to send to the
                # next one, whatever its method; any other failure is reported.
                never_sent = isinstance(exc, Http1Error) and exc.never_sent
                if not never_sent or attempt + 1 == len(self.servers):
                    raise errors.ApiConnectionError(f"{method} {server}{target}: {exc!r}") from exc
                continue
            if status >= 300:
                raise errors.error_from_response(status, raw)
            return raw
        raise AssertionError("unreachable")


def request_target(path: str, query: Mapping[str, str]) -> str:
    """The request line's target: ``path`` (which may carry a query of its
    own, as ``pods/NAME/log?container=C``) with ``query`` added, escaped
    where HTTP needs it and left alone where the caller escaped already."""
    path, _, own_query = path.partition("?")
    target = quote(path, safe=_PATH_SAFE)
    parts = [quote(own_query, safe=_QUERY_SAFE)] if own_query else []
    if query:
        parts.append(urlencode(query, quote_via=quote))
    return f"{target}?{'&'.join(parts)}" if parts else target


def parse_servers(server: str | Sequence[str]) -> list[str]:
    """One URL, a comma-separated list, or a list: the API servers of one
    cluster, tried in order and failed over between."""
    parts = server.split(",") if isinstance(server, str) else list(server)
    urls = [p.strip().rstrip("/") for p in parts if isinstance(p, str) and p.strip()]
    if not urls:
        raise ValueError(f"server: expected at least one http(s) URL, got {server!r}")
    for url in urls:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"server: expected an http(s) URL, got {url!r}")
    if len({u.split("://")[0] for u in urls}) > 1:
        raise ValueError(f"server: mixes http and https URLs: {urls}")
    return urls


def _never_sent(exc: BaseException) -> bool:
    return isinstance(exc, aiohttp.ClientConnectorError)


async def _chunks(resp: aiohttp.ClientResponse, url: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise errors.ApiConnectionError(f"watch {url}: {exc!r}") from exc


def _ssl_context(
    server: str, ca_file: str | None, ca_data: bytes | None, insecure: bool
) -> ssl.SSLContext | bool:
    if server.startswith("http://"):
        return False
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        cadata = ca_data.decode("ascii") if ca_data else None
    except UnicodeDecodeError:
        raise ValueError("ca_data: expected PEM text") from None
    try:
        if ca_file or cadata:
            return ssl.create_default_context(cafile=ca_file, cadata=cadata)
        return ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"ca_file/ca_data: cannot load the CA certificate: {exc}") from exc


def _clean_params(params: Params) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise ValueError("metadata: required and must be an object")
    return meta


__all__ = ["ApiClient", "PATCH_TYPES", "object_head"]
