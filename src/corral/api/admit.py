"""Admission that depends on who is writing or on policy objects: RBAC
escalation, and (in ``quota``) LimitRange defaults, ResourceQuota and Pod
Security levels. The REST handlers call :func:`admit` once per create or
update, after decoding and before the write."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from corral.api.auth import User
from corral.api.authz.keys import AUTHZ_KEY, USER_KEY
from corral.api.paths import Target

Obj = dict[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"


async def admit(request: web.Request, target: Target, obj: Obj, old: Obj | None) -> None:
    rt = target.rt
    user = request.get(USER_KEY)
    if isinstance(user, User) and "system:nodes" in user.groups:
        from corral.api.authz.node import check_node_write

        check_node_write(user, rt.plural, rt.group, obj)
    if rt.group == RBAC_GROUP:
        user, authz = request.get(USER_KEY), request.app.get(AUTHZ_KEY)
        if isinstance(user, User) and authz is not None:
            from corral.api.authz.escalation import check_rbac_write

            namespace = target.namespace or (obj.get("metadata") or {}).get("namespace") or ""
            check_rbac_write(authz, user, rt.plural, namespace if rt.namespaced else "", obj)
        return
    policies = request.app.get(POLICY_KEY)
    view = policies.view if policies is not None else None
    if rt.group == "" and rt.kind == "Pod" and old is None:
        from corral.api.admit_serviceaccount import admit_service_account
        from corral.api.server import CONTEXT_KEY
        from corral.resources.priorityclasses import admit_pod_priority

        ctx = request.app[CONTEXT_KEY]
        await admit_pod_priority(ctx, obj, view)
        namespace = target.namespace or (obj.get("metadata") or {}).get("namespace") or "default"
        await admit_service_account(ctx.objects, ctx.registry, str(namespace), obj, view)
    elif rt.group == "scheduling.k8s.io" and rt.kind == "PriorityClass":
        from corral.api.server import CONTEXT_KEY
        from corral.resources.priorityclasses import check_single_default

        if view is not None:
            view.touched("priorityclasses")
        await check_single_default(request.app[CONTEXT_KEY], obj)
    if policies is not None:
        await policies.admit(request, target, obj, old)


POLICY_KEY: web.AppKey[Any] = web.AppKey("namespace-policies", object)
"""The :class:`~corral.api.quota.NamespacePolicies` of this server, if any."""
