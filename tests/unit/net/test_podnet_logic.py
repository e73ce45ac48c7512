"""The pure parts of the pod network: resolv.conf per dnsPolicy, portmap's
runtime config, the masquerade table, the conflist, which nodes get a
route, and how a CNI plugin's error is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corral.net.cni import CniError, _error, _plugin_config, result_ips
from corral.net.podnet import PodNetwork, host_ports, names, render_table, resolv_conf


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "shop", "uid": "u1"}, "spec": spec}


def test_resolv_conf_cluster_first_default_and_none(tmp_path: Path) -> None:
    text = resolv_conf(pod(), "198.18.16.1")
    assert text.splitlines() == [
        "nameserver 198.18.16.1",
        "search shop.svc.cluster.local svc.cluster.local cluster.local",
        "options ndots:5",
    ]
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 198.18.9.9\nsearch example.test\n")
    assert resolv_conf(pod(dnsPolicy="Default"), "198.18.16.1", host) == \
        "nameserver 198.18.9.9\nsearch example.test\n"
    custom = pod(dnsPolicy="None", dnsConfig={"nameservers": ["198.18.1.1"], "searches": ["a.test"],
                                              "options": [{"name": "ndots", "value": "2"},
                                                          {"name": "edns0"}]})
    assert resolv_conf(custom, "198.18.16.1").splitlines() == [
        "nameserver 198.18.1.1", "search a.test", "options ndots:2 edns0"]


def test_host_ports_become_port_mappings() -> None:
    p = pod(containers=[{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080},
                                                 {"containerPort": 53, "protocol": "UDP", "hostPort": 5353},
                                                 {"containerPort": 9000}]}])
    assert host_ports(p) == [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                             {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]


def test_names_are_short_and_distinct_per_node() -> None:
    (b1, t1), (b2, t2) = names("node-1"), names("node-2")
    assert len(b1) <= 15 and b1 != b2 and t1 != t2  # IFNAMSIZ


def test_masquerade_spares_pod_to_pod_traffic() -> None:
    script = render_table("corral_pn_x", "198.18.16.0/24", "crlx", ["198.18.16.0/24", "198.18.17.0/24"])
    assert script.startswith("table ip corral_pn_x {}\ndelete table ip corral_pn_x\n")
    assert ('ip saddr 198.18.16.0/24 ip daddr != { 198.18.16.0/24, 198.18.17.0/24 } '
            'oifname != "crlx" masquerade') in script


class _NoClient:
    pass


def network(tmp_path: Path, address: str = "198.18.200.11") -> PodNetwork:
    return PodNetwork(_NoClient(), node_name="node-1", address=address,  # type: ignore[arg-type]
                      state_dir=tmp_path, plugin_dir=tmp_path)


def node(name: str, cidr: str | None, ip: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def test_routes_go_to_other_nodes_with_a_range_and_a_real_address(tmp_path: Path) -> None:
    net = network(tmp_path)
    wanted = net.routes_wanted([
        node("node-1", "198.18.16.0/24", "198.18.200.11"),  # ourselves
        node("node-2", "198.18.17.0/24", "198.18.200.12"),
        node("node-3", None, "198.18.200.13"),               # no range yet
        node("node-4", "198.18.19.0/24", "127.0.0.1"),       # on this host: its bridge is here
    ])
    assert wanted == {"198.18.17.0/24": "198.18.200.12"}


async def test_conflist_and_state_survive_a_restart(tmp_path: Path) -> None:
    import ipaddress
    import json

    net = network(tmp_path)
    net.pod_cidr, net.gateway = ipaddress.IPv4Network("198.18.16.0/24"), "198.18.16.1"
    conf = net.conflist(with_portmap=True)
    bridge = conf["plugins"][0]
    assert bridge["bridge"] == net.bridge and bridge["isGateway"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "198.18.16.0/24", "gateway": "198.18.16.1"}]]
    assert bridge["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    assert conf["plugins"][1]["type"] == "portmap"
    state = {"uid": "u1", "netns": "/run/netns/x", "own": True, "containerId": "u1",
             "conflist": conf, "runtimeConfig": {}, "result": None, "ip": "198.18.16.5"}
    (tmp_path / "pods" / "u1.json").write_text(json.dumps(state))
    assert network(tmp_path).pod_ip("u1") == "198.18.16.5"  # a restarted agent still knows
    assert network(tmp_path).pod_ip("other") is None


def test_plugin_config_carries_prev_result_and_only_declared_capabilities() -> None:
    conflist = {"cniVersion": "1.0.0", "name": "n", "plugins": []}
    portmap = {"type": "portmap", "capabilities": {"portMappings": True}}
    cfg = _plugin_config(conflist, portmap, {"ips": []}, {"portMappings": [1], "bandwidth": {}})
    assert cfg["name"] == "n" and cfg["cniVersion"] == "1.0.0"
    assert cfg["prevResult"] == {"ips": []} and cfg["runtimeConfig"] == {"portMappings": [1]}
    assert "runtimeConfig" not in _plugin_config(conflist, {"type": "bridge"}, None, {"portMappings": [1]})


def test_plugin_errors_and_results_are_read() -> None:
    err = _error("bridge", "ADD", b'{"code": 11, "msg": "failed to allocate", "details": "range full"}', b"", 1)
    assert isinstance(err, CniError) and err.code == 11
    assert str(err) == "CNI ADD with plugin bridge failed (code 11): failed to allocate: range full"
    assert "exited with 2: boom" in str(_error("x", "DEL", b"", b"boom\n", 2))
    assert result_ips({"ips": [{"address": "198.18.16.2/24"}, {"address": ""}]}) == ["198.18.16.2"]
