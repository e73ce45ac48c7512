"""Table cells as ``kubectl get`` shows them against Kubernetes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from corral.resources.builtin import build_registry
from corral.resources.tables import (
    format_age,
    format_label_selector,
    format_labels,
    human_duration,
    render_row,
)

REGISTRY = build_registry()
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rt(plural: str) -> Any:
    found = next(t for t in REGISTRY.all() if t.plural == plural)
    return found


def cells(plural: str, obj: dict[str, Any]) -> dict[str, Any]:
    t = rt(plural)
    return dict(zip([c.name for c in t.columns], render_row(t.columns, obj, NOW), strict=True))


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"),
    (5 * 60 + 3, "5m3s"), (9 * 60, "9m"), (10 * 60 + 30, "10m"), (179 * 60, "179m"),
    (3 * 3600 + 2 * 60, "3h2m"), (5 * 3600, "5h"), (8 * 3600 + 59 * 60, "8h"), (47 * 3600, "47h"),
    (2 * 86400, "2d"), (3 * 86400 + 5 * 3600, "3d5h"), (8 * 86400 + 5 * 3600, "8d"),
    (729 * 86400, "729d"), (2 * 365 * 86400 + 3 * 86400, "2y3d"), (9 * 365 * 86400, "9y"),
])
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_format_age_takes_a_timedelta() -> None:
    assert format_age(timedelta(hours=3, minutes=2, seconds=59)) == "3h2m"


@pytest.mark.parametrize(("plural", "names"), [
    ("pods", ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node",
              "Readiness Gates"]),
    ("deployments", ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images",
                     "Selector"]),
    ("replicasets", ["Name", "Desired", "Current", "Ready", "Age", "Containers", "Images",
                     "Selector"]),
    ("services", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]),
    ("nodes", ["Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP",
               "OS-Image", "Kernel-Version", "Container-Runtime"]),
    ("namespaces", ["Name", "Status", "Age"]),
    ("configmaps", ["Name", "Data", "Age"]),
    ("secrets", ["Name", "Type", "Data", "Age"]),
    ("endpoints", ["Name", "Endpoints", "Age"]),
    ("serviceaccounts", ["Name", "Secrets", "Age"]),
    ("leases", ["Name", "Holder", "Age"]),
])
def test_columns_and_wide_split(plural: str, names: list[str]) -> None:
    """kubectl upper-cases these names; priority>0 ones show only with -o wide."""
    t = rt(plural)
    assert [c.name for c in t.columns] == names
    assert t.columns[0].format == "name"
    narrow = [c.name.upper() for c in t.columns if c.priority == 0]
    expected_narrow = {"pods": 5, "deployments": 5, "replicasets": 5, "services": 6, "nodes": 5}
    assert len(narrow) == expected_narrow.get(plural, len(names))


def test_events_columns() -> None:
    narrow = [c.name.upper() for c in rt("events").columns if c.priority == 0]
    assert narrow == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]


def pod(statuses: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": "web", "creationTimestamp": ago(minutes=7)},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "containerStatuses": statuses or []},
    }
    for key, value in extra.items():
        obj[key].update(value)
    return obj


RUNNING = {"ready": True, "restartCount": 0, "state": {"running": {"startedAt": ago(minutes=6)}}}


@pytest.mark.parametrize(("obj", "ready", "status", "restarts"), [
    (pod([RUNNING, RUNNING]), "2/2", "Running", "0"),
    (pod(status={"phase": "Pending", "containerStatuses": []}), "0/2", "Pending", "0"),
    (pod([RUNNING, {"ready": False, "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}}}]),
     "1/2", "ContainerCreating", "0"),
    (pod([RUNNING, {"ready": False, "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=5)}}}]),
     "1/2", "CrashLoopBackOff", "4 (5m ago)"),
    (pod([{"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}] * 2,
         status={"phase": "Succeeded"}), "0/2", "Completed", "0"),
    (pod([{"state": {"terminated": {"reason": "Error", "exitCode": 2}}}, RUNNING],
         status={"phase": "Failed"}), "1/2", "Error", "0"),
    (pod([{"state": {"terminated": {"exitCode": 137}}}, RUNNING]), "1/2", "ExitCode:137", "0"),
    (pod([{"state": {"terminated": {"signal": 9}}}, RUNNING]), "1/2", "Signal:9", "0"),
    (pod([RUNNING, RUNNING], metadata={"deletionTimestamp": ago(seconds=3)}),
     "2/2", "Terminating", "0"),
    (pod([{"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}],
         metadata={"deletionTimestamp": ago(seconds=3)}, status={"phase": "Succeeded"}),
     "0/2", "Completed", "0"),
    (pod(status={"phase": "Failed", "reason": "Evicted"}), "0/2", "Evicted", "0"),
    (pod([RUNNING, {"ready": False, "state": {"terminated": {"reason": "Completed",
                                                             "exitCode": 0}}}],
         status={"conditions": [{"type": "Ready", "status": "False"}]}),
     "1/2", "NotReady", "0"),
])
def test_pod_ready_status_restarts(obj: dict[str, Any], ready: str, status: str,
                                   restarts: str) -> None:
    row = cells("pods", obj)
    assert (row["Ready"], row["Status"], row["Restarts"]) == (ready, status, restarts)
    assert row["Age"] == "7m"


def test_pod_init_containers() -> None:
    base = pod(spec={"initContainers": [{"name": "setup"}, {"name": "migrate"}]},
               status={"phase": "Pending"})
    waiting = dict(base, status={"phase": "Pending", "initContainerStatuses": [
        {"name": "setup", "state": {"terminated": {"exitCode": 0}}},
        {"name": "migrate", "state": {"running": {}}}]})
    assert cells("pods", waiting)["Status"] == "Init:1/2"
    crash = dict(base, status={"phase": "Pending", "initContainerStatuses": [
        {"name": "setup", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]})
    row = cells("pods", crash)
    assert (row["Status"], row["Restarts"]) == ("Init:CrashLoopBackOff", "3")
    failed = dict(base, status={"phase": "Pending", "initContainerStatuses": [
        {"name": "setup", "state": {"terminated": {"exitCode": 3}}}]})
    assert cells("pods", failed)["Status"] == "Init:ExitCode:3"


def test_sidecar_counts_toward_ready() -> None:
    obj = pod([RUNNING, RUNNING], spec={"initContainers": [{"name": "proxy",
                                                            "restartPolicy": "Always"}]})
    obj["status"]["initContainerStatuses"] = [{"name": "proxy", "started": True, "ready": True,
                                               "state": {"running": {}}}]
    assert cells("pods", obj)["Ready"] == "3/3"


def test_pod_wide_columns() -> None:
    obj = pod([RUNNING, RUNNING], spec={"nodeName": "n1",
                                        "readinessGates": [{"conditionType": "x/ok"}]},
              status={"podIPs": [{"ip": "198.18.1.4"}],
                      "conditions": [{"type": "x/ok", "status": "True"}]})
    row = cells("pods", obj)
    assert (row["IP"], row["Node"], row["Nominated Node"], row["Readiness Gates"]) == (
        "198.18.1.4", "n1", "<none>", "1/1")
    bare = cells("pods", pod())
    assert (bare["IP"], bare["Node"], bare["Readiness Gates"]) == ("<none>", "<none>", "<none>")


def test_scheduling_gated_pod() -> None:
    obj = pod(status={"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]})
    assert cells("pods", obj)["Status"] == "SchedulingGated"


def test_deployment_and_replicaset_rows() -> None:
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1"},
                                        {"name": "log", "image": "busybox"}]}}
    selector = {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]}
    deploy = {"metadata": {"name": "web", "creationTimestamp": ago(hours=3, minutes=2)},
              "spec": {"replicas": 3, "selector": selector, "template": template},
              "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert list(cells("deployments", deploy).values()) == [
        "web", "2/3", 3, 2, "3h2m", "web,log", "nginx:1,busybox", "app=web,tier in (a,b)"]
    rs = {"metadata": {"name": "web-abc", "creationTimestamp": ago(days=2)},
          "spec": {"replicas": 3, "selector": selector, "template": template},
          "status": {"replicas": 3}}
    assert list(cells("replicasets", rs).values()) == [
        "web-abc", 3, 3, 0, "2d", "web,log", "nginx:1,busybox", "app=web,tier in (a,b)"]
    fresh = {"metadata": {"name": "new"}, "spec": {"replicas": 1}}
    assert cells("deployments", fresh)["Ready"] == "0/1"
    assert cells("deployments", fresh)["Age"] == "<unknown>"


@pytest.mark.parametrize(("spec", "status", "expected"), [
    ({"type": "ClusterIP", "clusterIP": "127.10.0.1", "clusterIPs": ["127.10.0.1"],
      "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}, {},
     ["ClusterIP", "127.10.0.1", "<none>", "80/TCP", "app=web"]),
    ({"type": "NodePort", "clusterIP": "127.10.0.2",
      "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                {"port": 53, "protocol": "UDP"}]}, {},
     ["NodePort", "127.10.0.2", "<none>", "80:30080/TCP,53/UDP", "<none>"]),
    ({"type": "LoadBalancer", "clusterIP": "127.10.0.3", "ports": [{"port": 443,
                                                                   "protocol": "TCP"}]}, {},
     ["LoadBalancer", "127.10.0.3", "<pending>", "443/TCP", "<none>"]),
    ({"type": "LoadBalancer", "clusterIP": "127.10.0.3", "externalIPs": ["198.18.0.9"],
      "ports": [{"port": 443, "protocol": "TCP"}]},
     {"loadBalancer": {"ingress": [{"ip": "198.18.0.8"}]}},
     ["LoadBalancer", "127.10.0.3", "198.18.0.8,198.18.0.9", "443/TCP", "<none>"]),
    ({"type": "ExternalName", "externalName": "db.example.com"}, {},
     ["ExternalName", "<none>", "db.example.com", "<none>", "<none>"]),
    ({"type": "ClusterIP", "clusterIP": "None", "ports": []}, {},
     ["ClusterIP", "None", "<none>", "<none>", "<none>"]),
])
def test_service_rows(spec: dict[str, Any], status: dict[str, Any], expected: list[str]) -> None:
    row = cells("services", {"metadata": {"name": "s", "creationTimestamp": ago(seconds=30)},
                             "spec": spec, "status": status})
    assert [row["Type"], row["Cluster-IP"], row["External-IP"], row["Port(s)"],
            row["Selector"]] == expected
    assert row["Age"] == "30s"


def test_node_rows() -> None:
    node = {"metadata": {"name": "n1", "creationTimestamp": ago(days=10),
                         "labels": {"node-role.kubernetes.io/control-plane": "",
                                    "node-role.kubernetes.io/worker": "",
                                    "kubernetes.io/role": "edge"}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "Hostname", "address": "n1"},
                                     {"type": "InternalIP", "address": "198.18.0.1"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian",
                                    "kernelVersion": "6.1", "containerRuntimeVersion": "docker://20"}}}
    assert list(cells("nodes", node).values()) == [
        "n1", "Ready,SchedulingDisabled", "control-plane,edge,worker", "10d", "v1.32.0",
        "198.18.0.1", "<none>", "Debian", "6.1", "docker://20"]
    not_ready = {"metadata": {"name": "n2"}, "status": {"conditions": [
        {"type": "Ready", "status": "Unknown"}]}}
    row = cells("nodes", not_ready)
    assert (row["Status"], row["Roles"], row["OS-Image"]) == ("NotReady", "<none>", "<unknown>")
    assert cells("nodes", {"metadata": {"name": "n3"}})["Status"] == "Unknown"


def test_endpoints_rows() -> None:
    subsets = [{"addresses": [{"ip": f"198.18.0.{i}"} for i in range(1, 4)],
                "ports": [{"port": 80}, {"port": 443}]}]
    row = cells("endpoints", {"metadata": {"name": "web"}, "subsets": subsets})
    assert row["Endpoints"] == "198.18.0.1:80,198.18.0.2:80,198.18.0.3:80 + 3 more..."
    one = [{"addresses": [{"ip": "198.18.0.1"}], "ports": [{"port": 80}]}]
    assert cells("endpoints", {"metadata": {"name": "w"}, "subsets": one})["Endpoints"] == (
        "198.18.0.1:80")
    assert cells("endpoints", {"metadata": {"name": "w"}})["Endpoints"] == "<none>"
    headless = [{"addresses": [{"ip": "198.18.0.1"}]}]
    assert cells("endpoints", {"metadata": {"name": "w"}, "subsets": headless})["Endpoints"] == (
        "198.18.0.1")


def test_event_rows() -> None:
    ev = {"metadata": {"name": "web.1"}, "type": "Warning", "reason": "BackOff",
          "message": "Back-off restarting failed container\n",
          "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
          "source": {"component": "kubelet", "host": "n1"},
          "firstTimestamp": ago(minutes=30), "lastTimestamp": ago(minutes=2), "count": 7}
    assert list(cells("events", ev).values()) == [
        "2m", "Warning", "BackOff", "pod/web", "spec.containers{web}", "kubelet, n1",
        "Back-off restarting failed container", "30m", 7, "web.1"]
    new_style = {"metadata": {"name": "e"}, "type": "Normal", "eventTime": ago(seconds=40),
                 "reportingComponent": "corral-scheduler", "involvedObject": {"kind": "Node"}}
    row = cells("events", new_style)
    assert (row["Last Seen"], row["Object"], row["Source"], row["Count"]) == (
        "40s", "node", "corral-scheduler", 1)


def test_small_kinds_rows() -> None:
    meta = {"name": "x", "creationTimestamp": ago(hours=50)}
    assert list(cells("namespaces", {"metadata": meta, "status": {"phase": "Active"}}).values()) \
        == ["x", "Active", "2d2h"]
    assert list(cells("configmaps", {"metadata": meta, "data": {"a": "1"},
                                     "binaryData": {"b": "eA=="}}).values()) == ["x", 2, "2d2h"]
    assert list(cells("secrets", {"metadata": meta, "type": "Opaque",
                                  "data": {"a": "eA=="}}).values()) == ["x", "Opaque", 1, "2d2h"]
    assert list(cells("serviceaccounts", {"metadata": meta}).values()) == ["x", 0, "2d2h"]
    assert list(cells("leases", {"metadata": meta, "spec": {"holderIdentity": "n1"}}).values()) \
        == ["x", "n1", "2d2h"]


@pytest.mark.parametrize(("selector", "text"), [
    (None, "<none>"), ({}, "<none>"), ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
    ({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["q", "p"]},
                           {"key": "g", "operator": "Exists"},
                           {"key": "h", "operator": "DoesNotExist"}]},
     "g,!h,x notin (p,q)"),
    ({"matchExpressions": [{"key": "x", "operator": "Near"}]}, "<error>"),
])
def test_format_label_selector(selector: Any, text: str) -> None:
    assert format_label_selector(selector) == text


def test_format_labels() -> None:
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == "<none>"
