"""Starting authorization with a server: the default policy, the RBAC
cache, and the writer that keeps aggregated ClusterRoles' rules visible."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.api.authz.attributes import Attributes, request_attributes
from corral.api.authz.chain import Authorizer
from corral.api.authz.defaults import default_cluster_role_bindings, default_cluster_roles
from corral.api.authz.rbac import RbacAuthorizer, RbacPolicy
from corral.api.context import ServerContext
from corral.api.errors import AlreadyExists, ApiError

log = logging.getLogger(__name__)
GROUP = "rbac.authorization.k8s.io"


async def ensure_default_policy(ctx: ServerContext) -> None:
    """Create the default roles and bindings; bring back up to date the ones
    still marked ``autoupdate`` (Kubernetes' reconciliation, simplified: the
    defaults win wholesale, an admin who wants changes clears the mark)."""
    for plural, objects in (("clusterroles", default_cluster_roles()),
                            ("clusterrolebindings", default_cluster_role_bindings())):
        rt = ctx.registry.lookup(GROUP, "v1", plural)
        assert rt is not None, f"{plural} must be registered"
        for obj in objects:
            name = obj["metadata"]["name"]
            try:
                current = await ctx.objects.get(rt, None, name)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                with contextlib.suppress(AlreadyExists):
                    await ctx.objects.create(rt, None, obj)
                continue
            annotations = current["metadata"].get("annotations") or {}
            if annotations.get("rbac.authorization.kubernetes.io/autoupdate") != "true":
                continue
            keys = ("rules", "aggregationRule") if plural == "clusterroles" else ("roleRef", "subjects")
            if all(current.get(k) == obj.get(k) for k in keys) or "aggregationRule" in obj:
                continue

            def refresh(cur: dict[str, Any], obj: dict[str, Any] = obj, keys: tuple[str, ...] = keys) -> dict[str, Any]:
                for k in keys:
                    cur[k] = obj[k]
                return cur

            await ctx.objects.update(rt, None, name, refresh)


class AggregationWriter:
    """Writes each aggregating ClusterRole's gathered rules into its
    ``.rules`` (what Kubernetes' clusterrole-aggregation controller does), so
    ``kubectl get clusterrole admin -o yaml`` shows what admin may do. The
    authorizer does not wait for this: it aggregates on its own."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._dirty = asyncio.Event()
        self._latest: RbacPolicy | None = None
        self._task: asyncio.Task[None] | None = None

    def changed(self, policy: RbacPolicy) -> None:
        self._latest = policy
        self._dirty.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="clusterrole-aggregation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await asyncio.sleep(0.05)  # let a burst of changes settle
            try:
                await self._write_all()
            except Exception:
                log.exception("clusterrole aggregation failed; will retry on the next change")

    async def _write_all(self) -> None:
        policy = self._latest
        if policy is None:
            return
        rt = self.ctx.registry.lookup(GROUP, "v1", "clusterroles")
        assert rt is not None
        effective = policy.cluster_role_rules()
        prefix = "/registry/rbac.authorization.k8s.io/clusterroles/"
        roles = {k[len(prefix):]: o for k, o in list(policy.objects.items()) if k.startswith(prefix)}
        for name, role in roles.items():
            if not isinstance(role.get("aggregationRule"), dict):
                continue
            wanted = [r.as_dict() for r in effective.get(name, ())]
            if role.get("rules") == wanted:
                continue

            def transform(cur: dict[str, Any], wanted: list[dict[str, Any]] = wanted) -> dict[str, Any]:
                cur["rules"] = wanted
                return cur

            with contextlib.suppress(ApiError):
                await self.ctx.objects.update(rt, None, name, transform)


@dataclass
class AuthorizationRuntime:
    authorizer: Authorizer
    rbac: RbacAuthorizer
    aggregation: AggregationWriter
    extra: list[Any] = field(default_factory=list)

    async def confirm_refused(self, user: Any, method: str, path: str,
                              query: Mapping[str, str]) -> Attributes | None:
        """The request's attributes if a refusal was only the node graph
        lagging the store (``NodeAuthorizer.confirm_pod``), else None."""
        from corral.api.authz.node import NodeAuthorizer

        attrs = request_attributes(user, method, path, query)
        for extra in self.extra:
            if isinstance(extra, NodeAuthorizer) and await extra.confirm_pod(attrs):
                return attrs
        return None

    async def stop(self) -> None:
        await self.aggregation.stop()
        await self.rbac.stop()
        for extra in self.extra:
            await extra.stop()


async def start_authorization(ctx: ServerContext, *deciders: Any,
                              lazy_node_graph: bool = False) -> AuthorizationRuntime:
    """Default policy in the store, the node graph (unless ``lazy_node_graph``:
    built on the first node request that needs it) and the RBAC cache loaded
    and following the store. ``deciders`` are asked after the node authorizer
    and before RBAC."""
    from corral.api.authz.node import NodeAuthorizer

    await ensure_default_policy(ctx)
    node = NodeAuthorizer(ctx.store, lazy=lazy_node_graph, fanout=ctx.watch_fanout,
                          pods=ctx.registry.lookup("", "v1", "pods"))
    await node.start()
    rbac = RbacAuthorizer(ctx.store)
    aggregation = AggregationWriter(ctx)
    rbac.on_change(aggregation.changed)
    await rbac.start()
    aggregation.start()
    return AuthorizationRuntime(Authorizer(node, *deciders, rbac), rbac, aggregation, [node])
