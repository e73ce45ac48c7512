"""Inter-pod affinity/anti-affinity and topology spread on small clusters."""

from helpers import bind, cluster, node, place, pod, why

from corral.scheduler.podinfo import PodClass


def zones(n_per_zone=2, zones=("z1", "z2")):
    return [node(f"{z}-{i}", labels={"zone": z}) for z in zones for i in range(n_per_zone)]


def term(app, key="kubernetes.io/hostname", **extra):
    return {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key, **extra}


def anti(*terms):
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def affinity(*terms):
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def test_anti_affinity_one_per_zone():
    core = cluster(*zones())
    got = place(core, *(pod(f"db{i}", labels={"app": "db"}, affinity=anti(term("db", "zone"))) for i in range(2)))
    assert {n.split("-")[0] for n in got} == {"z1", "z2"}
    assert why(core, pod("db2", labels={"app": "db"}, affinity=anti(term("db", "zone")))).startswith(
        "0/4 nodes are available: 4 node(s) didn't match pod anti-affinity rules.")


def test_existing_pods_anti_affinity_is_symmetric():
    core = cluster(node("a"), node("b"))
    bind(core, pod("loner", labels={"app": "loner"}, affinity=anti(term("web"))), "a")
    assert place(core, pod("w", labels={"app": "web"})) == ["b"]
    assert why(core, pod("w2", labels={"app": "web"}, nodeName="a")).startswith(
        "0/2 nodes are available: 1 node(s) didn't match the requested node name, "
        "1 node(s) didn't satisfy existing pods anti-affinity rules.")


def test_affinity_follows_matching_pods_and_first_pod_rule():
    core = cluster(*zones())
    # No cache pod yet, and the pod matches its own term: it may start anywhere.
    first = place(core, pod("c0", labels={"app": "cache"}, affinity=affinity(term("cache", "zone"))))[0]
    rest = place(core, *(pod(f"c{i}", labels={"app": "cache"}, affinity=affinity(term("cache", "zone")))
                         for i in range(1, 4)))
    assert {n.split("-")[0] for n in rest} == {first.split("-")[0]}
    # A pod that needs a "queue" pod nearby, when there is none, fits nowhere (unresolvable).
    assert why(core, pod("web", affinity=affinity(term("queue", "zone")))) == (
        "0/4 nodes are available: 4 node(s) didn't match pod affinity rules. "
        "preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling.")


def test_namespaces_and_namespace_selector():
    core = cluster(node("a"), node("b"))
    core.state.set_namespace("prod", {"env": "prod"})
    bind(core, pod("p", labels={"app": "x"}, ns="prod"), "a")
    same_ns = pod("q", labels={}, affinity=anti(term("x")))
    assert place(core, same_ns)[0] in ("a", "b")  # default scope: own namespace only
    core.state.unplace("default/q")
    by_sel = pod("r", affinity=anti(term("x", namespaceSelector={"matchLabels": {"env": "prod"}})))
    assert place(core, by_sel) == ["b"]
    by_name = pod("s", affinity=anti(term("x", namespaces=["prod"])))
    assert place(core, by_name) == ["b"]


def test_preferred_inter_pod_terms_score():
    core = cluster(node("a"), node("b"))
    bind(core, pod("db", labels={"app": "db"}), "a")
    near = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": term("db")}]}}
    far = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": term("db")}]}}
    assert place(core, pod("n", affinity=near)) == ["a"]
    assert place(core, pod("f", affinity=far)) == ["b"]


def spread(key="zone", skew=1, hard=True, **extra):
    return [{"maxSkew": skew, "topologyKey": key,
             "whenUnsatisfiable": "DoNotSchedule" if hard else "ScheduleAnyway",
             "labelSelector": {"matchLabels": {"app": "api"}}, **extra}]


def test_spread_keeps_max_skew_in_one_burst():
    core = cluster(*zones(3, ("z1", "z2", "z3")))
    got = place(core, *(pod(f"a{i}", labels={"app": "api"}, topologySpreadConstraints=spread())
                        for i in range(10)))
    counts = {z: sum(n.startswith(z) for n in got) for z in ("z1", "z2", "z3")}
    assert max(counts.values()) - min(counts.values()) <= 1 and sum(counts.values()) == 10


def test_spread_refuses_skew_and_explains():
    core = cluster(node("z1-a", labels={"zone": "z1"}, cpu="1"), node("z2-a", labels={"zone": "z2"}),
                   node("nozone"))
    for i in range(2):
        bind(core, pod(f"old{i}", labels={"app": "api"}), "z2-a")
    bind(core, pod("hog", cpu="1"), "z1-a")
    msg = why(core, pod("new", labels={"app": "api"}, topologySpreadConstraints=spread()))
    assert msg.startswith(
        "0/3 nodes are available: 1 Insufficient cpu, "
        "1 node(s) didn't match pod topology spread constraints, "
        "1 node(s) didn't match pod topology spread constraints (missing required label).")


def test_min_domains_counts_missing_domains_as_empty():
    core = cluster(node("z1-a", labels={"zone": "z1"}), node("z2-a", labels={"zone": "z2"}))
    bind(core, pod("o1", labels={"app": "api"}), "z1-a")
    bind(core, pod("o2", labels={"app": "api"}), "z2-a")
    plain = pod("p", labels={"app": "api"}, topologySpreadConstraints=spread())
    assert place(core, plain)[0] in ("z1-a", "z2-a")
    strict = pod("q", labels={"app": "api"}, topologySpreadConstraints=spread(minDomains=3))
    assert "didn't match pod topology spread constraints" in why(core, strict)


def test_node_affinity_policy_limits_eligible_domains():
    core = cluster(node("z1-a", labels={"zone": "z1", "pool": "a"}), node("z2-a", labels={"zone": "z2"}))
    bind(core, pod("o1", labels={"app": "api"}), "z1-a")
    honour = pod("h", labels={"app": "api"}, nodeSelector={"pool": "a"},
                 topologySpreadConstraints=spread())
    assert place(core, honour) == ["z1-a"]  # z2 is not eligible, so no skew
    ignore = pod("i", labels={"app": "api"}, nodeSelector={"pool": "a"},
                 topologySpreadConstraints=spread(nodeAffinityPolicy="Ignore"))
    assert "didn't match pod topology spread constraints" in why(core, ignore)


def test_schedule_anyway_prefers_emptier_domain():
    core = cluster(*zones(1))
    for i in range(3):
        bind(core, pod(f"o{i}", labels={"app": "api"}), "z1-0")
    assert place(core, pod("p", labels={"app": "api"}, topologySpreadConstraints=spread(hard=False))) == ["z2-0"]


def test_identical_pods_share_one_class():
    core = cluster(node("a"))
    a, b = pod("x", labels={"app": "api"}), pod("y", labels={"app": "api"})
    assert core.classes.of(a) is core.classes.of(b)
    assert isinstance(core.classes.of(a), PodClass)
