"""Backend choice: round-robin, least-connections, ClientIP affinity, and
that removed backends are never picked."""

from __future__ import annotations

from collections import Counter

import pytest

from corral.net.balancer import Balancer
from corral.net.servicetable import ListenKey, plan, ready_backends

A, B, C = ("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_round_robin_spreads_evenly_and_skips_removed() -> None:
    b = Balancer(now=Clock())
    b.set_backends([A, B, C])
    assert Counter(b.pick().address for _ in range(30)) == {A: 10, B: 10, C: 10}
    b.set_backends([A, C])
    assert {b.pick().address for _ in range(10)} == {A, C}
    b.set_backends([])
    assert b.pick() is None


def test_least_connections_prefers_the_idle_backend() -> None:
    b = Balancer("least-connections", now=Clock())
    b.set_backends([A, B, C])
    busy = b.pick()
    busy.active += 5
    assert all(b.pick().address != busy.address for _ in range(10))


def test_a_kept_backend_keeps_its_counts() -> None:
    b = Balancer("least-connections", now=Clock())
    b.set_backends([A, B])
    first = b.pick()
    first.active += 1
    b.set_backends([A, B, C])
    assert next(x for x in b.backends if x.address == first.address).active == 1


def test_client_ip_affinity_sticks_until_timeout() -> None:
    clock = Clock()
    b = Balancer(affinity_seconds=10, now=clock)
    b.set_backends([A, B, C])
    first = b.pick("10.0.0.1").address
    assert {b.pick("10.0.0.1").address for _ in range(5)} == {first}
    clock.t = 11
    b.pick("10.0.0.1")
    clock.t = 30
    seen = {b.pick("10.0.0.1").address for _ in range(1)}
    b.set_backends([x for x in (A, B, C) if x not in seen])
    assert b.pick("10.0.0.1").address not in seen  # a removed sticky backend is let go


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        Balancer("random", now=Clock())


def _slice(name: str, port: int, endpoints: list[tuple[str, dict]]) -> dict:
    return {"metadata": {"namespace": "ns", "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": "web", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": c} for ip, c in endpoints]}


def test_ready_backends_rules() -> None:
    slices = [_slice("s", 80, [("10.0.0.1", {"ready": True}), ("10.0.0.2", {"ready": False}),
                               ("10.0.0.3", {}), ("10.0.0.4", {"ready": True, "terminating": True})])]
    assert ready_backends(slices, "web", "TCP") == [("10.0.0.1", 80), ("10.0.0.3", 80)]
    assert ready_backends(slices, "other", "TCP") == []
    assert ready_backends(slices, "web", "UDP") == []


def test_plan_listens_on_cluster_ip_and_node_ports() -> None:
    services = [
        {"metadata": {"namespace": "ns", "name": "s"},
         "spec": {"type": "NodePort", "clusterIP": "127.43.0.9", "sessionAffinity": "ClientIP",
                  "ports": [{"name": "web", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}},
        {"metadata": {"namespace": "ns", "name": "headless"},
         "spec": {"clusterIP": "None", "ports": [{"port": 80}]}},
        {"metadata": {"namespace": "ns", "name": "ext"},
         "spec": {"type": "ExternalName", "externalName": "example.org"}},
    ]
    plans = plan(services, [_slice("s", 8080, [("10.0.0.1", {"ready": True})])], ["127.0.0.1"])
    assert len(plans) == 1
    (p,) = plans
    assert p.listen == [ListenKey("TCP", "127.43.0.9", 80), ListenKey("TCP", "127.0.0.1", 30080)]
    assert p.backends == [("10.0.0.1", 8080)]
    assert p.affinity_seconds == 10800


def test_nft_render_dnat_reject_and_affinity() -> None:
    from corral.net.nft import render
    from corral.net.servicetable import PortPlan

    plans = [PortPlan("ns/a", "web", "TCP", [ListenKey("TCP", "127.43.0.5", 80)], [A, B]),
             PortPlan("ns/b", "", "TCP", [ListenKey("TCP", "127.43.0.6", 80)], []),
             PortPlan("ns/c", "", "UDP", [ListenKey("UDP", "127.43.0.7", 53)], [C], affinity_seconds=10)]
    script = render("corral_t", plans)
    assert script.startswith("table ip corral_t {}\ndelete table ip corral_t\n")
    assert ("ip daddr 127.43.0.5 tcp dport 80 dnat ip to numgen inc mod 2 map "
            "{ 0 : 127.0.0.1 . 1, 1 : 127.0.0.1 . 2 }") in script
    assert "ip daddr 127.43.0.6 tcp dport 80 reject with tcp reset" in script
    assert "ip daddr 127.43.0.7 udp dport 53 dnat ip to jhash ip saddr mod 1 map { 0 : 127.0.0.1 . 3 }" in script
    assert script.count("type nat hook output") == 1 and script.count("type nat hook prerouting") == 1
