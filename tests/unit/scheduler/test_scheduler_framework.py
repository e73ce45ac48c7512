import random

import pytest

from corral.scheduler.cache import SchedulerCache
from corral.scheduler.framework import Framework
from corral.scheduler.nodeinfo import NodeInfo, PodInfo, pod_requests
from corral.scheduler.quantity import milli, units


def node(name, cpu="2", memory="4Gi", pods="110", ready=True, unschedulable=False, labels=None, taints=None):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"unschedulable": unschedulable, "taints": taints or []},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name, cpu=None, memory=None, node_name="", selector=None, tolerations=None, phase="Pending"):
    req = {}
    if cpu:
        req["cpu"] = cpu
    if memory:
        req["memory"] = memory
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node_name, "nodeSelector": selector or {}, "tolerations": tolerations or [],
                     "containers": [{"name": "c", "resources": {"requests": req}}]},
            "status": {"phase": phase}}


def test_quantities():
    assert milli("100m") == 100 and milli("1.5") == 1500 and milli(2) == 2000
    assert units("128Mi") == 128 * 2**20 and units("1G") == 10**9 and units("1e3") == 1000
    with pytest.raises(ValueError, match="memory"):
        units("lots", field="memory")


def test_requests_include_init_max_and_overhead():
    p = pod("p", cpu="100m")
    p["spec"]["initContainers"] = [{"resources": {"requests": {"cpu": "500m"}}}]
    p["spec"]["overhead"] = {"cpu": "10m"}
    assert pod_requests(p)["cpu"] == 510


def test_insufficient_cpu_message():
    fw = Framework()
    result = fw.schedule(PodInfo.of(pod("big", cpu="4")), [NodeInfo.of(node("n1"))])
    assert result.node is None
    assert result.message() == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")


def test_grouped_reasons():
    nodes = [NodeInfo.of(node("a", cpu="1")), NodeInfo.of(node("b", cpu="1")),
             NodeInfo.of(node("c", unschedulable=True)), NodeInfo.of(node("d", ready=False)),
             NodeInfo.of(node("e", labels={"disk": "hdd"}))]
    result = Framework().schedule(PodInfo.of(pod("p", cpu="1500m", selector={"disk": "ssd"})), nodes)
    assert result.message() == (
        "0/5 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable, "
        "3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling.")


def test_no_nodes():
    assert Framework().schedule(PodInfo.of(pod("p")), []).message() == "no nodes available to schedule pods"


def test_cordoned_node_tolerated():
    tol = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    n = NodeInfo.of(node("c", unschedulable=True))
    assert Framework().schedule(PodInfo.of(pod("p", tolerations=tol)), [n]).node == "c"


def test_taints():
    n = NodeInfo.of(node("t", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]))
    r = Framework().schedule(PodInfo.of(pod("p")), [n])
    assert "1 node(s) had untolerated taint {gpu: yes}" in r.message()
    tol = [{"key": "gpu", "operator": "Equal", "value": "yes"}]
    assert Framework().schedule(PodInfo.of(pod("p", tolerations=tol)), [n]).node == "t"


def test_pod_count_limit():
    n = NodeInfo.of(node("n", pods="1"))
    n.add(PodInfo.of(pod("existing", node_name="n")))
    assert "1 Too many pods" in Framework().schedule(PodInfo.of(pod("p")), [n]).message()


def test_least_allocated_prefers_emptier_node():
    busy, idle = NodeInfo.of(node("busy")), NodeInfo.of(node("idle"))
    busy.add(PodInfo.of(pod("x", cpu="1", memory="1Gi", node_name="busy")))
    assert Framework(rng=random.Random(1)).schedule(PodInfo.of(pod("p", cpu="100m")), [busy, idle]).node == "idle"


def test_assumed_pods_spread_a_burst():
    cache = SchedulerCache()
    cache.set_node(node("a", cpu="1"))
    cache.set_node(node("b", cpu="1"))
    fw = Framework(rng=random.Random(0))
    placed = []
    for i in range(4):
        info = PodInfo.of(pod(f"p{i}", cpu="500m"))
        result = fw.schedule(info, list(cache.nodes.values()))
        assert result.node is not None
        cache.assume(info, result.node)
        placed.append(result.node)
    assert sorted(placed) == ["a", "a", "b", "b"]
    fifth = fw.schedule(PodInfo.of(pod("p4", cpu="500m")), list(cache.nodes.values()))
    assert fifth.node is None and "2 Insufficient cpu" in fifth.message()
    # the informer confirms one binding, another is forgotten (binding failed)
    bound = pod("p0", cpu="500m", node_name=placed[0])
    cache.update_pod(bound)
    assert not cache.is_assumed("default/p0")
    cache.forget("default/p1")
    assert fw.schedule(PodInfo.of(pod("p4", cpu="500m")), list(cache.nodes.values())).node == placed[1]
    # a finished pod frees its room
    cache.update_pod(pod("p0", cpu="500m", node_name=placed[0], phase="Succeeded"))
    assert cache.nodes[placed[0]].requested["cpu"] in (0, 500)


def test_node_update_keeps_pods():
    cache = SchedulerCache()
    cache.update_pod(pod("early", cpu="1", node_name="late-node"))  # pod seen before its node
    cache.set_node(node("late-node", cpu="2"))
    assert cache.nodes["late-node"].requested["cpu"] == 1000
    cache.set_node(node("late-node", cpu="4"))
    assert cache.nodes["late-node"].requested["cpu"] == 1000
    cache.remove_pod(pod("early", node_name="late-node"))
    assert cache.nodes["late-node"].requested["cpu"] == 0
