"""The HorizontalPodAutoscaler controller.

Every sync period (15 s, as in Kubernetes) each autoscaler reads its
target's scale subresource, the target's pods and their usage from the
metrics API (``metrics.k8s.io/v1beta1`` PodMetrics, through the client),
computes the replica count (:mod:`hpa_logic`) and writes it through the
scale subresource, with an Event saying why.
"""

from __future__ import annotations

import copy
import logging
from typing import Protocol
from urllib.parse import quote

from corral.client.api import ApiClient
from corral.client.errors import ApiError
from corral.client.events import EventRecorder
from corral.client.resources import HPAS, PODS, by_kind
from corral.clock import Clock, format_timestamp
from corral.controllers import hpa_logic as hl
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers, by_namespace
from corral.controllers.objects import Obj, is_deleting, key_of, meta, namespace_of

log = logging.getLogger(__name__)

SYNC_PERIOD = 15.0


class MetricsSource(Protocol):
    async def pod_usage(self, namespace: str, selector: str) -> dict[str, dict[str, float]]:
        """Pod name → {"cpu": millicores, "memory": bytes} for the selected pods."""


class ApiMetricsSource:
    """PodMetrics from the metrics API, as ``kubectl top`` reads them."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def pod_usage(self, namespace: str, selector: str) -> dict[str, dict[str, float]]:
        path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{quote(namespace, safe='')}/pods"
        listing = await self.client.request("GET", path, params={"labelSelector": selector})
        out: dict[str, dict[str, float]] = {}
        for item in listing.get("items") or []:
            usage = {"cpu": 0.0, "memory": 0.0}
            for c in item.get("containers") or []:
                for name in ("cpu", "memory"):
                    value = (c.get("usage") or {}).get(name)
                    if value is not None:
                        usage[name] += hl.resource_amount(name, value)
            out[(item.get("metadata") or {}).get("name", "")] = usage
        return out


def _condition(status: Obj, type_: str, value: str, reason: str, message: str, now: str) -> None:
    conds = status.setdefault("conditions", [])
    for cond in conds:
        if cond.get("type") == type_:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = now
            cond.update(status=value, reason=reason, message=message)
            return
    conds.append({"type": type_, "status": value, "reason": reason, "message": message,
                  "lastTransitionTime": now})


class HorizontalPodAutoscalerController(Controller):
    name = "horizontal-pod-autoscaler"

    def __init__(
        self,
        client: ApiClient,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        metrics: MetricsSource | None = None,
        clock: Clock | None = None,
        sync_period: float = SYNC_PERIOD,
        workers: int = 1,
    ) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.recorder = recorder
        self.metrics: MetricsSource = metrics or ApiMetricsSource(client)
        self.sync_period = sync_period
        self.histories: dict[str, hl.History] = {}
        self.hpas = informers.index(HPAS, "namespace", by_namespace)
        self.watches(self.hpas)
        self.hpas.add_handler(on_add=self._enqueue, on_update=self._updated,
                              on_delete=lambda h: self.histories.pop(key_of(h), None))

    def _enqueue(self, hpa: Obj) -> None:
        self.queue.add(key_of(hpa))

    def _updated(self, old: Obj, new: Obj) -> None:
        if (old.get("spec"), meta(old).get("generation")) != (new.get("spec"), meta(new).get("generation")):
            self._enqueue(new)

    async def reconcile(self, key: str) -> float | None:
        hpa = self.hpas.cache.get(key)
        if hpa is None or is_deleting(hpa):
            return None
        hpa = copy.deepcopy(hpa)
        status = copy.deepcopy(hpa.get("status") or {})
        now = self.clock.now()
        stamp = format_timestamp(now)
        try:
            await self._sync(hpa, status, stamp)
        except ApiError as exc:
            _condition(status, "AbleToScale", "False", "FailedGetScale",
                       f"the HPA controller was unable to get the target's current scale: {exc.message}", stamp)
            self.recorder.record(hpa, "Warning", "FailedGetScale", exc.message)
        status["observedGeneration"] = meta(hpa).get("generation", 1)
        status.setdefault("desiredReplicas", status.get("currentReplicas", 0))
        if status != (hpa.get("status") or {}):
            await self.client.replace_status(HPAS, dict(hpa, status=status))
        return self.sync_period

    async def _sync(self, hpa: Obj, status: Obj, stamp: str) -> None:
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        ns = namespace_of(hpa)
        res = by_kind(ref.get("apiVersion") or "apps/v1", ref.get("kind", ""))
        scale = await self.client.request("GET", res.path(ns, ref.get("name", ""), "scale"))
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        status["currentReplicas"] = int((scale.get("status") or {}).get("replicas") or 0)
        if current == 0 and int(spec.get("minReplicas") or 1) != 0:
            _condition(status, "ScalingActive", "False", "ScalingDisabled",
                       "scaling is disabled since the replica count of the target is zero", stamp)
            status["desiredReplicas"] = 0
            return
        selector = (scale.get("status") or {}).get("selector") or ""
        pods, _ = await self.client.list_all(PODS, ns, label_selector=selector)
        pods = [p for p in pods if not is_deleting(p) and (p.get("status") or {}).get("phase") == "Running"]
        usage = await self.metrics.pod_usage(ns, selector)
        proposals = [p for m in spec.get("metrics") or [] if (p := hl.propose(m, current, pods, usage))]
        if not proposals:
            _condition(status, "ScalingActive", "False", "FailedGetResourceMetric",
                       "the HPA was unable to compute the replica count: no metrics returned from "
                       "resource metrics API", stamp)
            status["desiredReplicas"] = current
            return
        _condition(status, "ScalingActive", "True", "ValidMetricFound",
                   "the HPA was able to successfully calculate a replica count", stamp)
        best = max(proposals, key=lambda p: p.replicas)
        status["currentMetrics"] = [p.status for p in proposals]
        history = self.histories.setdefault(key_of(hpa), hl.History())
        desired, limited = hl.desired_replicas(hpa, history, best.replicas, current, self.clock.now())
        if limited:
            _condition(status, "ScalingLimited", "True", limited,
                       f"the desired replica count is limited ({limited})", stamp)
        else:
            _condition(status, "ScalingLimited", "False", "DesiredWithinRange",
                       "the desired count is within the acceptable range", stamp)
        status["desiredReplicas"] = desired
        if desired == current:
            _condition(status, "AbleToScale", "True", "ReadyForNewScale",
                       "recommended size matches current size", stamp)
            return
        await self.client.patch(res, ref.get("name", ""), {"spec": {"replicas": desired}}, ns,
                                subresource="scale")
        hl.record_scale(history, self.clock.now(), desired - current)
        status["lastScaleTime"] = stamp
        _condition(status, "AbleToScale", "True", "SucceededRescale",
                   f"the HPA controller was able to update the target scale to {desired}", stamp)
        self.recorder.record(hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {best.reason}")
