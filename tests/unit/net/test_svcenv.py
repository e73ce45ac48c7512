"""Kubernetes' service environment variables, as the kubelet writes them."""

from __future__ import annotations

from corral.net.svcenv import dns_env, service_env, services_env

WEB = {"metadata": {"name": "my-web"},
       "spec": {"clusterIP": "127.43.0.9", "ports": [
           {"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}


def test_service_and_docker_link_variables() -> None:
    assert service_env(WEB) == {
        "MY_WEB_SERVICE_HOST": "127.43.0.9", "MY_WEB_SERVICE_PORT": "80",
        "MY_WEB_SERVICE_PORT_HTTP": "80", "MY_WEB_SERVICE_PORT_DNS": "53",
        "MY_WEB_PORT": "tcp://127.43.0.9:80",
        "MY_WEB_PORT_80_TCP": "tcp://127.43.0.9:80", "MY_WEB_PORT_80_TCP_PROTO": "tcp",
        "MY_WEB_PORT_80_TCP_PORT": "80", "MY_WEB_PORT_80_TCP_ADDR": "127.43.0.9",
        "MY_WEB_PORT_53_UDP": "udp://127.43.0.9:53", "MY_WEB_PORT_53_UDP_PROTO": "udp",
        "MY_WEB_PORT_53_UDP_PORT": "53", "MY_WEB_PORT_53_UDP_ADDR": "127.43.0.9",
    }


def test_headless_and_external_name_get_none() -> None:
    assert service_env({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}) == {}
    assert service_env({"metadata": {"name": "e"}, "spec": {"type": "ExternalName"}}) == {}


def test_enable_service_links_false_keeps_only_the_master() -> None:
    master = {"metadata": {"name": "kubernetes"}, "spec": {"clusterIP": "127.43.0.1", "ports": [{"port": 443}]}}
    pod = {"spec": {"enableServiceLinks": False}}
    assert set(services_env(pod, [WEB], master)) == {
        "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_PORT",
        "KUBERNETES_PORT_443_TCP", "KUBERNETES_PORT_443_TCP_PROTO", "KUBERNETES_PORT_443_TCP_PORT",
        "KUBERNETES_PORT_443_TCP_ADDR"}
    assert "MY_WEB_SERVICE_HOST" in services_env({"spec": {}}, [WEB], None)


def test_dns_env() -> None:
    pod = {"metadata": {"namespace": "team"}, "spec": {}}
    assert dns_env(pod, "127.0.0.1:5353") == {
        "CORRAL_DNS_SERVER": "127.0.0.1:5353",
        "CORRAL_DNS_SEARCH": "team.svc.cluster.local svc.cluster.local cluster.local"}
    assert dns_env({"spec": {"dnsPolicy": "Default"}}, "127.0.0.1:5353") == {}
    assert dns_env(pod, None) == {}
