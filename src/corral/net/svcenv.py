"""The environment variables Kubernetes gives every container about the
Services it can see: ``{SVC}_SERVICE_HOST``/``_PORT`` (and one
``_SERVICE_PORT_{NAME}`` per named port) plus the Docker-link style
``{SVC}_PORT``, ``{SVC}_PORT_{port}_{PROTO}``, ``..._PROTO``, ``..._PORT`` and
``..._ADDR``.

With ``enableServiceLinks: false`` only the API server's own ``kubernetes``
Service (namespace default) is described, as in the kubelet.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(svc: Obj) -> dict[str, str]:
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP")
    ports = [p for p in spec.get("ports") or [] if p.get("port")]
    if not ip or ip == "None" or spec.get("type") == "ExternalName" or not ports:
        return {}
    prefix = _env_name(str((svc.get("metadata") or {}).get("name", "")))
    first = ports[0]
    env = {
        f"{prefix}_SERVICE_HOST": str(ip),
        f"{prefix}_SERVICE_PORT": str(first["port"]),
        f"{prefix}_PORT": f"{str(first.get('protocol', 'TCP')).lower()}://{ip}:{first['port']}",
    }
    for port in ports:
        number, proto = port["port"], str(port.get("protocol", "TCP"))
        if port.get("name"):
            env[f"{prefix}_SERVICE_PORT_{_env_name(str(port['name']))}"] = str(number)
        link = f"{prefix}_PORT_{number}_{proto.upper()}"
        env[link] = f"{proto.lower()}://{ip}:{number}"
        env[f"{link}_PROTO"] = proto.lower()
        env[f"{link}_PORT"] = str(number)
        env[f"{link}_ADDR"] = str(ip)
    return env


def services_env(pod: Obj, namespace_services: list[Obj], master: Obj | None) -> dict[str, str]:
    """All service variables for a pod; services sorted by name so the
    result is stable, the master service last (it wins a clash, as in the kubelet)."""
    env: dict[str, str] = {}
    if (pod.get("spec") or {}).get("enableServiceLinks", True):
        for svc in sorted(namespace_services, key=lambda s: str((s.get("metadata") or {}).get("name"))):
            env.update(service_env(svc))
    if master is not None:
        env.update(service_env(master))
    return env


def dns_env(pod: Obj, server: str | None, domain: str = "cluster.local") -> dict[str, str]:
    """Where a pod that shares the host's network (and /etc/resolv.conf)
    finds the cluster DNS: ``CORRAL_DNS_SERVER`` (ip:port) and the search
    list a resolv.conf would carry. ``dnsPolicy: Default`` opts out."""
    spec = pod.get("spec") or {}
    if server is None or spec.get("dnsPolicy") == "Default":
        return {}
    ns = str((pod.get("metadata") or {}).get("namespace", "default"))
    return {"CORRAL_DNS_SERVER": server,
            "CORRAL_DNS_SEARCH": f"{ns}.svc.{domain} svc.{domain} {domain}"}
