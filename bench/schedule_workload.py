"""The scheduling benchmark's cluster and workload, shared by its modes.

5,000 nodes (32 cpu, 128Gi, 110 pods, three zones, a third labelled
disktype=ssd) and a mix of templated workloads, as Deployments would stamp
them: plain pods of three sizes, pods with a nodeSelector, pods with
required anti-affinity on the hostname, and pods spread over zones with a
DoNotSchedule topology spread constraint (maxSkew 1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
NAMESPACE = "bench"


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # plain | selector | anti | spread
    cpu: str
    memory: str
    share: float


MIX = (
    Workload("web-s", "plain", "100m", "128Mi", 0.20),
    Workload("web-m", "plain", "250m", "512Mi", 0.15),
    Workload("web-l", "plain", "1", "2Gi", 0.10),
    Workload("ssd-cache", "selector", "200m", "1Gi", 0.15),
    Workload("db", "anti", "500m", "1Gi", 0.20),
    Workload("api", "spread", "300m", "512Mi", 0.20),
)
# Anti-affinity and spread workloads are split into apps of this many
# replicas: anti-affine replicas need one node each.
APP_SIZE = 2_500


def node_object(i: int) -> Obj:
    labels = {"kubernetes.io/hostname": f"node-{i}", "topology.kubernetes.io/zone": f"zone-{i % 3}"}
    if i % 3 == 0:
        labels["disktype"] = "ssd"
    res = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"node-{i}", "labels": labels},
            "spec": {},
            "status": {"capacity": res, "allocatable": res,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def template(w: Workload, app: str) -> Obj:
    """The pod template of one app (what a Deployment's spec.template holds)."""
    spec: Obj = {"containers": [{"name": "app", "image": "bench",
                                 "resources": {"requests": {"cpu": w.cpu, "memory": w.memory}}}]}
    sel = {"matchLabels": {"app": app}}
    if w.kind == "selector":
        spec["nodeSelector"] = {"disktype": "ssd"}
    elif w.kind == "anti":
        spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": sel, "topologyKey": "kubernetes.io/hostname"}]}}
    elif w.kind == "spread":
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                              "whenUnsatisfiable": "DoNotSchedule", "labelSelector": sel}]
    return {"metadata": {"labels": {"app": app}}, "spec": spec}


def apps(total: int, nodes: int = 5000) -> list[tuple[str, Workload, int]]:
    """(app name, workload, replicas) adding up to ``total`` pods; an
    anti-affine app has at most half as many replicas as there are nodes."""
    out = []
    size = max(1, min(APP_SIZE, nodes // 2))
    for w in MIX:
        count = int(total * w.share)
        per = size if w.kind in ("anti", "spread") else count
        i = 0
        while count > 0:
            n = min(per, count)
            out.append((f"{w.name}-{i}", w, n))
            count -= n
            i += 1
    short = total - sum(n for _, _, n in out)
    if short:
        name, w, n = out[0]
        out[0] = (name, w, n + short)
    return out


def pods(total: int, seed: int = 1, chunk: int = 50, nodes: int = 5000) -> list[Obj]:
    """Every pod, in the interleaved order a burst of ReplicaSets creates them."""
    rng = random.Random(seed)
    queues = []
    for app, w, n in apps(total, nodes):
        tpl = template(w, app)
        made = []
        for i in range(n):
            made.append({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": f"{app}-{i}", "namespace": NAMESPACE,
                                      "labels": dict(tpl["metadata"]["labels"]),
                                      "creationTimestamp": "2026-01-01T00:00:00Z", "uid": f"{app}-{i}"},
                         "spec": tpl["spec"]})
        queues.append(made)
    out: list[Obj] = []
    while queues:
        q = rng.choice(queues)
        out.extend(q[:chunk])
        del q[:chunk]
        if not q:
            queues.remove(q)
    return out
