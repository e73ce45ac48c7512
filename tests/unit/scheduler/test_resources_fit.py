from helpers import bind, cluster, node, place, pod, why

from corral.scheduler.podinfo import pod_requests
from corral.scheduler.quantity import milli, units


def test_quantities():
    assert milli("100m") == 100 and milli("1.5") == 1500 and milli(2) == 2000
    assert units("128Mi") == 128 * 2**20 and units("1G") == 10**9 and units("1e3") == 1000


def test_requests_include_init_max_and_overhead():
    p = pod("p", cpu="100m")
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "500m"}}}]
    p["spec"]["overhead"] = {"cpu": "10m"}
    assert pod_requests(p)["cpu"] == 510


def test_bad_quantity_names_the_field():
    core = cluster(node("a"))
    d = core.schedule([pod("p", cpu="lots")])[0]
    assert d.node is None and "spec.containers[0].resources.requests.cpu" in d.message


def test_insufficient_cpu_message():
    assert why(cluster(node("n1")), pod("big", cpu="4")) == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")


def test_every_resource_is_explained():
    core = cluster(node("a", cpu="1", memory="1Gi", extra={"ephemeral-storage": "1Gi", "example.com/gpu": "1"}),
                   node("b", cpu="8", memory="1Gi"), node("c", cpu="8", memory="64Gi", pods="0"))
    msg = why(core, pod("p", cpu="2", memory="2Gi",
                        requests={"ephemeral-storage": "2Gi", "example.com/gpu": "2"}))
    assert msg.startswith(
        "0/3 nodes are available: 1 Insufficient cpu, 1 Too many pods, 2 Insufficient memory, "
        "3 Insufficient ephemeral-storage, 3 Insufficient example.com/gpu.")


def test_extended_resource_fits_where_offered():
    core = cluster(node("plain"), node("gpu", extra={"example.com/gpu": "2"}))
    assert place(core, pod("g1", requests={"example.com/gpu": "1"}),
                 pod("g2", requests={"example.com/gpu": "1"})) == ["gpu", "gpu"]
    assert "Insufficient example.com/gpu" in why(core, pod("g3", requests={"example.com/gpu": "1"}))


def test_pod_count_limit():
    core = cluster(node("n", pods="1"))
    bind(core, pod("existing"), "n")
    assert "1 Too many pods" in why(core, pod("p"))


def test_burst_is_assumed_and_fills_exactly():
    core = cluster(node("a", cpu="1"), node("b", cpu="1"))
    placed = place(core, *(pod(f"p{i}", cpu="500m") for i in range(4)))
    assert sorted(placed) == ["a", "a", "b", "b"]
    assert "2 Insufficient cpu" in why(core, pod("p4", cpu="500m"))
    core.state.unplace("default/p1")
    assert place(core, pod("p5", cpu="500m")) == [placed[1]]


def test_finished_and_removed_pods_free_room():
    core = cluster(node("a", cpu="1"))
    bind(core, pod("x", cpu="1"), "a")
    assert why(core, pod("y", cpu="1"))
    core.state.unplace("default/x")
    assert place(core, pod("y", cpu="1")) == ["a"]


def test_pod_seen_before_its_node_counts_once_node_appears():
    core = cluster()
    bind(core, pod("early", cpu="1500m"), "late")
    core.state.set_node(node("late", cpu="2"))
    assert "Insufficient cpu" in why(core, pod("p", cpu="1"))
    core.state.set_node(node("late", cpu="4"))  # an update keeps the pods
    assert place(core, pod("p", cpu="1")) == ["late"]


def test_removed_node_slot_is_reused_cleanly():
    core = cluster(node("a", cpu="1"), node("b", cpu="1"))
    bind(core, pod("x", cpu="1"), "a")
    core.state.remove_node("a")
    core.state.set_node(node("c", cpu="1"))
    assert sorted(place(core, pod("p", cpu="1"), pod("q", cpu="1"))) == ["b", "c"]
    core.state.set_node(node("a", cpu="1"))  # x comes back with its node
    assert "Insufficient cpu" in why(core, pod("r", cpu="1"))
