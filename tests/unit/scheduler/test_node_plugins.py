"""Node-level filters and scores: readiness, cordons, nodeName,
nodeSelector and node affinity (every operator, matchFields, preferred),
taints, runtimes, host ports."""

from helpers import bind, cluster, node, place, pod, why


def aff(*terms, preferred=None):
    na = {}
    if terms:
        na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": list(terms)}
    if preferred:
        na["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {"nodeAffinity": na}


def expr(key, op, *values):
    return {"key": key, "operator": op, "values": list(values)}


def test_grouped_reasons_in_kubernetes_words():
    core = cluster(node("a", cpu="1"), node("b", cpu="1"), node("c", unschedulable=True),
                   node("d", ready=False), node("e", labels={"disk": "hdd"}))
    assert why(core, pod("p", cpu="1500m", nodeSelector={"disk": "ssd"})) == (
        "0/5 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable, "
        "3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling.")


def test_no_nodes():
    assert why(cluster(), pod("p")) == "no nodes available to schedule pods"


def test_cordoned_node_takes_tolerating_pod():
    tol = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    core = cluster(node("c", unschedulable=True))
    assert place(core, pod("p", tolerations=tol)) == ["c"]


def test_node_name():
    core = cluster(node("a"), node("b"))
    assert place(core, pod("p", nodeName="b")) == ["b"]
    assert "2 node(s) didn't match the requested node name" in why(core, pod("q", nodeName="zz"))


def test_node_affinity_operators():
    core = cluster(node("small", labels={"cores": "4", "tier": "web"}),
                   node("big", labels={"cores": "64", "tier": "db"}),
                   node("bare"))
    cases = {
        "In": (aff({"matchExpressions": [expr("tier", "In", "db", "cache")]}), "big"),
        "NotIn": (aff({"matchExpressions": [expr("tier", "NotIn", "db", "web")]}), "bare"),
        "Exists": (aff({"matchExpressions": [expr("tier", "Exists"), expr("cores", "Lt", "10")]}), "small"),
        "DoesNotExist": (aff({"matchExpressions": [expr("cores", "DoesNotExist")]}), "bare"),
        "Gt": (aff({"matchExpressions": [expr("cores", "Gt", "8")]}), "big"),
        "matchFields": (aff({"matchFields": [expr("metadata.name", "In", "small")]}), "small"),
    }
    for op, (affinity, want) in cases.items():
        assert place(core, pod(f"p-{op.lower()}", affinity=affinity)) == [want], op
    # Terms are ORed; an empty term matches nothing.
    assert place(core, pod("or", affinity=aff({"matchExpressions": [expr("tier", "In", "web")]},
                                                {"matchFields": [expr("metadata.name", "In", "bare")]})))[0] \
        in ("small", "bare")
    msg = why(core, pod("none", affinity=aff({})))
    assert "3 node(s) didn't match Pod's node affinity/selector" in msg


def test_bad_operator_is_reported_not_raised():
    core = cluster(node("a"))
    d = core.schedule([pod("p", affinity=aff({"matchExpressions": [expr("x", "Near", "1")]}))])[0]
    assert d.node is None and "Near" in d.message


def test_preferred_node_affinity_scores():
    core = cluster(node("a", labels={"disk": "hdd"}), node("b", labels={"disk": "ssd"}))
    pref = [{"weight": 80, "preference": {"matchExpressions": [expr("disk", "In", "ssd")]}}]
    assert place(core, *(pod(f"p{i}", affinity=aff(preferred=pref)) for i in range(3))) == ["b"] * 3


def test_taints_filter_and_prefer():
    core = cluster(node("t", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]),
                   node("x", taints=[{"key": "dedicated", "value": "", "effect": "NoExecute"}]))
    assert why(core, pod("p")).startswith(
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: }, "
        "1 node(s) had untolerated taint {gpu: yes}.")
    assert place(core, pod("q", tolerations=[{"key": "gpu", "operator": "Equal", "value": "yes"}])) == ["t"]
    assert place(core, pod("r", tolerations=[{"operator": "Exists"}]))[0] in ("t", "x")
    soft = cluster(node("s", taints=[{"key": "spot", "effect": "PreferNoSchedule"}]), node("plain"))
    assert place(soft, *(pod(f"s{i}") for i in range(3))) == ["plain"] * 3


def test_runtime_availability():
    core = cluster(node("proc"), node("dock", annotations={"corral.dev/runtimes": "process,docker"}))
    assert place(core, pod("d", runtimeClassName="docker")) == ["dock"]
    assert place(core, pod("p", runtimeClassName="process"))[0] in ("proc", "dock")
    assert 'node(s) didn\'t support runtime class "gvisor"' in why(core, pod("g", runtimeClassName="gvisor"))


def test_host_ports():
    core = cluster(node("a"), node("b"))
    port = [{"containerPort": 80, "hostPort": 8080}]
    assert sorted(place(core, pod("w1", ports=port), pod("w2", ports=port))) == ["a", "b"]
    assert "2 node(s) didn't have free ports for the requested pod ports" in why(core, pod("w3", ports=port))
    other_ip = [{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.2"}]
    bind(core, pod("x"), "a")
    assert why(core, pod("w4", ports=other_ip))  # 0.0.0.0 clashes with every address
    udp = [{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]
    assert place(core, pod("u", ports=udp))[0] in ("a", "b")
