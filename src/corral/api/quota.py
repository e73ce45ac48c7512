"""Namespace policies at admission: LimitRange defaults and bounds, Pod
Security levels, and ResourceQuota budgets.

A quota is charged at admission with a compare-and-swap on its
``status.used`` (what Kubernetes does), so two concurrent creates cannot
both take the last slot; the base is the larger of the recorded use and a
fresh count, and :class:`QuotaRecalculator` resets ``used`` to the fresh
count every few seconds, which returns charges of writes that failed after
admission and releases what deleted objects held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from corral.api import podsecurity
from corral.api.admitview import KINDS, MISS, AdmissionView
from corral.api.context import ServerContext
from corral.api.errors import ApiError, Forbidden
from corral.api.paths import Target
from corral.resources.quantity import QuantityError, format_quantity, parse_quantity

log = logging.getLogger(__name__)
Obj = dict[str, Any]
COMPUTE = ("cpu", "memory")
LEGACY_COUNTS = {"pods", "services", "configmaps", "secrets", "persistentvolumeclaims",
                 "replicationcontrollers", "resourcequotas"}


def _qty(value: Any) -> Decimal:
    try:
        return parse_quantity(value)
    except (QuantityError, TypeError):
        return Decimal(0)


def _count_key(rt: Any) -> str:
    return f"count/{rt.plural}.{rt.group}" if rt.group else f"count/{rt.plural}"


def pod_usage(pod: Obj) -> dict[str, Decimal]:
    """requests.* and limits.* of a pod: the sum over containers, or the
    largest init container when that is more (as Kubernetes counts)."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    usage: dict[str, Decimal] = {}
    for kind in ("requests", "limits"):
        for res in COMPUTE:
            total = sum((_qty(((c.get("resources") or {}).get(kind) or {}).get(res, 0))
                         for c in spec.get("containers") or [] if isinstance(c, dict)), Decimal(0))
            init = max((_qty(((c.get("resources") or {}).get(kind) or {}).get(res, 0))
                        for c in spec.get("initContainers") or [] if isinstance(c, dict)), default=Decimal(0))
            usage[f"{kind}.{res}"] = max(total, init)
    usage["cpu"], usage["memory"] = usage["requests.cpu"], usage["requests.memory"]
    return usage


def usage_of(rt: Any, obj: Obj) -> dict[str, Decimal]:
    use = {_count_key(rt): Decimal(1)}
    if not rt.group and rt.plural in LEGACY_COUNTS:
        use[rt.plural] = Decimal(1)
    if not rt.group and rt.plural == "pods":
        if ((obj.get("status") or {}).get("phase")) in ("Succeeded", "Failed"):
            return {}
        use |= pod_usage(obj)
    return use


def _format(values: dict[str, Decimal]) -> dict[str, str]:
    return {k: format_quantity(v) for k, v in sorted(values.items())}


class NamespacePolicies:
    """LimitRange, Pod Security and ResourceQuota admission of one API
    process. ``view`` (api/admitview.py) answers for the policy objects
    in memory; a namespace whose quotas are charged is always read fresh,
    as a charge is a compare-and-swap on the quota's stored version."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.view = AdmissionView(ctx.store, ctx.registry)  # started and stopped by the QuotaRecalculator

    async def admit(self, request: web.Request, target: Target, obj: Obj, old: Obj | None) -> None:
        rt = target.rt
        namespace = target.namespace or (obj.get("metadata") or {}).get("namespace") or "default"
        if not rt.group and rt.plural in KINDS:
            self.view.touched(rt.plural, namespace if rt.namespaced else "")
        if old is not None or target.subresource or not rt.namespaced:
            return  # quotas charge creates; updates of requests are immutable for pods
        if rt.group == "" and rt.plural == "pods":
            await self._limit_ranges(namespace, obj)
            await self._pod_security(namespace, obj)
        await self._quota(namespace, rt, obj, charge=not request.query.get("dryRun"))

    async def _list(self, plural: str, namespace: str) -> list[Obj]:
        rt = self.ctx.registry.lookup("", "v1", plural)
        if rt is None or not self.view.may_have(plural, namespace):
            return []
        result = await self.ctx.store.list(rt.prefix(namespace))
        return [orjson.loads(kv.value) | {"_rv": kv.mod_revision} for kv in result.items]

    # -- LimitRange ----------------------------------------------------------

    async def _limit_ranges(self, namespace: str, pod: Obj) -> None:
        problems: list[str] = []
        ranges = self.view.listed("limitranges", namespace)
        if ranges is None:
            ranges = await self._list("limitranges", namespace)
        for lr in ranges:
            for item in (lr.get("spec") or {}).get("limits") or []:
                if isinstance(item, dict) and item.get("type") == "Container":
                    for c in (pod.get("spec") or {}).get("containers") or []:
                        if isinstance(c, dict):
                            problems += _apply_container_limits(item, c)
        if problems:
            raise Forbidden(f'pods "{_name(pod)}" is forbidden: {", ".join(problems)}', kind="pods", name=_name(pod))

    # -- Pod Security --------------------------------------------------------

    async def _pod_security(self, namespace: str, pod: Obj) -> None:
        level = self.view.get("namespaces", "", namespace)
        if level is MISS:
            ns_rt = self.ctx.registry.lookup("", "v1", "namespaces")
            assert ns_rt is not None
            kv = await self.ctx.store.get(ns_rt.key(None, namespace))
            if kv is None:
                return
            labels = (orjson.loads(kv.value).get("metadata") or {}).get("labels") or {}
            level = labels.get(podsecurity.LABEL)
        if level is None:
            level = "privileged"
        found = podsecurity.violations(level, pod)
        if found:
            raise Forbidden(f'pods "{_name(pod)}" is forbidden: violates PodSecurity "{level}:latest": '
                            + ", ".join(found), kind="pods", name=_name(pod))

    # -- ResourceQuota -------------------------------------------------------

    async def _quota(self, namespace: str, rt: Any, obj: Obj, *, charge: bool) -> None:
        if not self.view.may_have("resourcequotas", namespace):
            return  # nearly every namespace: no usage to count
        delta = usage_of(rt, obj)
        if not delta:
            return
        for quota in await self._list("resourcequotas", namespace):
            for _attempt in range(8):
                hard = {k: _qty(v) for k, v in ((quota.get("spec") or {}).get("hard") or {}).items()}
                wanted = {k: v for k, v in delta.items() if k in hard}
                if not wanted or await self._charge(namespace, quota, hard, wanted, charge):
                    break
                fresh = await self._get_quota(namespace, quota["metadata"]["name"])
                if fresh is None:
                    break
                quota = fresh
            else:
                from corral.api.objects import conflict_error

                rq = self.ctx.registry.lookup("", "v1", "resourcequotas")
                raise conflict_error(rq, quota["metadata"]["name"])  # type: ignore[arg-type]

    async def _get_quota(self, namespace: str, name: str) -> Obj | None:
        rt = self.ctx.registry.lookup("", "v1", "resourcequotas")
        assert rt is not None
        kv = await self.ctx.store.get(rt.key(namespace, name))
        return None if kv is None else orjson.loads(kv.value) | {"_rv": kv.mod_revision}

    async def _charge(self, namespace: str, quota: Obj, hard: dict[str, Decimal], wanted: dict[str, Decimal],
                      charge: bool) -> bool:
        """Check and charge one quota; False when another writer charged it first."""
        name = quota["metadata"]["name"]
        fresh = await self.usage(namespace, set(hard))
        recorded = {k: _qty(v) for k, v in ((quota.get("status") or {}).get("used") or {}).items()}
        used = {k: max(fresh.get(k, Decimal(0)), recorded.get(k, Decimal(0))) for k in hard}
        over = [k for k, v in wanted.items() if used[k] + v > hard[k]]
        if over:
            raise Forbidden(
                f"exceeded quota: {name}, requested: {_pairs({k: wanted[k] for k in over})}, "
                f"used: {_pairs({k: used[k] for k in over})}, limited: {_pairs({k: hard[k] for k in over})}",
                kind="resourcequotas", name=name)
        if not charge:
            return True
        rt = self.ctx.registry.lookup("", "v1", "resourcequotas")
        assert rt is not None
        new_used = {k: used[k] + wanted.get(k, Decimal(0)) for k in hard}

        def transform(cur: Obj) -> Obj:
            cur["status"] = {"hard": cur.get("spec", {}).get("hard", {}), "used": _format(new_used)}
            return cur

        try:
            await self.ctx.objects.update(rt, namespace, name, transform, subresource="status",
                                          expected_rv=str(quota["_rv"]))
        except ApiError as exc:
            if exc.code == 409:
                return False
            if exc.code == 404:
                return True  # the quota went away meanwhile
            raise
        return True

    async def usage(self, namespace: str, names: set[str]) -> dict[str, Decimal]:
        """A fresh count of what the namespace uses, for the resources named."""
        totals: dict[str, Decimal] = {}
        for rt in self.ctx.registry.all():
            if not rt.namespaced or rt.extra.get("virtual"):
                continue
            key = _count_key(rt)
            relevant = key in names or (not rt.group and rt.plural in names) or \
                (not rt.group and rt.plural == "pods" and names & {"cpu", "memory", "requests.cpu",
                                                                   "requests.memory", "limits.cpu", "limits.memory"})
            if not relevant:
                continue
            result = await self.ctx.store.list(rt.prefix(namespace))
            for kv in result.items:
                for k, v in usage_of(rt, orjson.loads(kv.value)).items():
                    totals[k] = totals.get(k, Decimal(0)) + v
        return totals


class QuotaRecalculator:
    """Resets every quota's ``status.used`` to a fresh count, every few seconds."""

    def __init__(self, ctx: ServerContext, policies: NamespacePolicies, interval: float = 3.0) -> None:
        self.ctx, self.policies, self.interval = ctx, policies, interval
        self._task: asyncio.Task[None] | None = None

    def start(self, *, recount: bool = True) -> None:
        self.policies.view.start()
        if recount:
            self._task = asyncio.create_task(self._run(), name="quota-recalculator")

    async def stop(self) -> None:
        await self.policies.view.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.recalculate()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("quota recalculation failed")
            await asyncio.sleep(self.interval)

    async def recalculate(self) -> None:
        rt = self.ctx.registry.lookup("", "v1", "resourcequotas")
        if rt is None:
            return
        for kv in (await self.ctx.store.list(rt.storage_prefix)).items:
            quota = orjson.loads(kv.value)
            meta = quota.get("metadata") or {}
            hard = (quota.get("spec") or {}).get("hard") or {}
            fresh = await self.policies.usage(str(meta.get("namespace")), set(hard))
            status = {"hard": hard, "used": _format({k: fresh.get(k, Decimal(0)) for k in hard})}
            if quota.get("status") == status:
                continue

            def transform(cur: Obj, status: Obj = status) -> Obj:
                cur["status"] = status
                return cur

            with contextlib.suppress(ApiError):
                await self.ctx.objects.update(rt, meta.get("namespace"), str(meta.get("name")), transform,
                                              subresource="status", expected_rv=str(kv.mod_revision))


def _apply_container_limits(item: Obj, container: Obj) -> list[str]:
    res = container.setdefault("resources", {})
    if not isinstance(res, dict):
        return []
    limits, requests = res.setdefault("limits", {}), res.setdefault("requests", {})
    for name, value in (item.get("default") or {}).items():
        limits.setdefault(name, value)
    for name, value in ((item.get("default") or {}) | (item.get("defaultRequest") or {})).items():
        requests.setdefault(name, limits.get(name, value) if name not in (item.get("defaultRequest") or {}) else value)
    for key in ("limits", "requests"):
        if not res[key]:
            del res[key]
    problems = []
    for name, low in (item.get("min") or {}).items():
        req = requests.get(name)
        if req is not None and _qty(req) < _qty(low):
            problems.append(f"minimum {name} usage per Container is {low}, but request is {req}")
    for name, high in (item.get("max") or {}).items():
        lim = limits.get(name)
        if lim is None:
            problems.append(f"maximum {name} usage per Container is {high}, but no limit is specified")
        elif _qty(lim) > _qty(high):
            problems.append(f"maximum {name} usage per Container is {high}, but limit is {lim}")
    return problems


def _pairs(values: dict[str, Decimal]) -> str:
    return ",".join(f"{k}={format_quantity(v)}" for k, v in sorted(values.items()))


def _name(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("name") or meta.get("generateName") or "")
