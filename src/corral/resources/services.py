"""v1 Service and Endpoints.

ClusterIP and nodePort allocation belong to the API layer (they need the
store); here are the defaults, the rules a Service must obey, and the Table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from corral.resources import validation as v
from corral.resources.schema import Schema
from corral.resources.tables import (
    AGE_COLUMN,
    NAME_COLUMN,
    as_list,
    dicts,
    format_labels,
    get_path,
)
from corral.resources.types import Column, FieldCause, Obj, ResourceType

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
NODE_PORT_RANGE = (30000, 32767)

# --- Service ----------------------------------------------------------------------


def default_service(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    kind = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        config = spec.setdefault("sessionAffinityConfig", {})
        if isinstance(config, dict):
            config.setdefault("clientIP", {}).setdefault("timeoutSeconds", 10800)
    for port in dicts(spec.get("ports")):
        port.setdefault("protocol", "TCP")
        if "port" in port:
            port.setdefault("targetPort", port["port"])
    if kind != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("ipFamilies", ["IPv4"])
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("loadBalancer", {})


def _validate_service_port(port: Any, p: str, kind: str, many: bool) -> list[FieldCause]:
    if not isinstance(port, dict):
        return [v.invalid(p, port, "must be an object")]
    causes: list[FieldCause] = []
    name = port.get("name")
    if many and not name:
        causes.append(v.required(f"{p}.name"))
    elif name:
        causes += v.check(f"{p}.name", name, v.dns1123_label_errors(str(name)))
    causes += v.port_number(f"{p}.port", port.get("port"))
    causes += v.protocol(f"{p}.protocol", port.get("protocol"))
    target = port.get("targetPort")
    if isinstance(target, str):
        causes += v.check(f"{p}.targetPort", target, v.iana_svc_name_errors(target))
    elif target is not None:
        causes += v.port_number(f"{p}.targetPort", target)
    node_port = port.get("nodePort")
    if node_port not in (None, 0):
        if kind not in ("NodePort", "LoadBalancer"):
            causes.append(v.forbidden(f"{p}.nodePort",
                                      f"may not be used when `type` is '{kind}'"))
        elif not v.is_int(node_port) or not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
            causes.append(v.invalid(f"{p}.nodePort", node_port,
                                    "provided port is not in the valid range. The range of "
                                    f"valid ports is {NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}"))
    return causes


def _validate_service_ports(spec: dict[str, Any], kind: str) -> list[FieldCause]:
    ports = as_list(spec.get("ports"))
    headless = spec.get("clusterIP") == "None"
    if not ports and kind != "ExternalName" and not headless:
        return [v.required("spec.ports")]
    causes: list[FieldCause] = []
    names: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    node_ports: set[tuple[str, str]] = set()
    for i, port in enumerate(ports):
        p = f"spec.ports[{i}]"
        causes += _validate_service_port(port, p, kind, len(ports) > 1)
        if not isinstance(port, dict):
            continue
        name = port.get("name")
        if isinstance(name, str) and name:
            if name in names:
                causes.append(v.duplicate(f"{p}.name", name))
            names.add(name)
        pair = (v.go_value(port.get("port")), v.go_value(port.get("protocol")))
        if pair in pairs:
            causes.append(v.duplicate(p, {"port": port.get("port"),
                                          "protocol": port.get("protocol")}))
        pairs.add(pair)
        if port.get("nodePort"):
            key = (v.go_value(port["nodePort"]), v.go_value(port.get("protocol")))
            if key in node_ports:
                causes.append(v.duplicate(f"{p}.nodePort", port["nodePort"]))
            node_ports.add(key)
    return causes


def _validate_cluster_ip(spec: dict[str, Any], kind: str) -> list[FieldCause]:
    ip = spec.get("clusterIP")
    if kind == "ExternalName":
        if ip:
            return [v.forbidden("spec.clusterIP", "may not be set for ExternalName services")]
        return []
    if ip in (None, ""):
        return []
    if ip == "None":
        if kind != "ClusterIP":
            return [v.invalid("spec.clusterIPs[0]", ip,
                              f"may not be set to 'None' for {kind} services")]
        return []
    return v.check("spec.clusterIPs[0]", ip, v.ip_errors(ip))


def validate_service(new: Obj, old: Obj | None) -> list[FieldCause]:
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return [v.required("spec")]
    kind = spec.get("type")
    causes = v.stricter_name(new.get("metadata"), "dns1035")
    type_causes = v.one_of("spec.type", kind, SERVICE_TYPES)
    if type_causes:
        return causes + type_causes
    causes += _validate_service_ports(spec, kind)
    causes += _validate_cluster_ip(spec, kind)
    if kind == "ExternalName":
        name = spec.get("externalName")
        if not name:
            causes.append(v.required("spec.externalName"))
        else:
            causes += v.check("spec.externalName", name,
                              v.dns1123_subdomain_errors(str(name).rstrip(".")))
    causes += v.validate_labels(spec.get("selector"), "spec.selector")
    causes += v.one_of("spec.sessionAffinity", spec.get("sessionAffinity"), AFFINITIES)
    for key in ("internalTrafficPolicy", "externalTrafficPolicy"):
        causes += v.one_of(f"spec.{key}", spec.get(key), TRAFFIC_POLICIES, need=False)
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        causes += v.check(f"spec.externalIPs[{i}]", ip, v.ip_errors(ip))
    if old is not None:
        causes += _validate_service_update(spec, old.get("spec") or {})
    return causes


def _validate_service_update(spec: dict[str, Any], old: dict[str, Any]) -> list[FieldCause]:
    """A clusterIP, once allocated, stays until the Service leaves the ClusterIP family."""
    if spec.get("type") == "ExternalName" or old.get("type") == "ExternalName":
        return []
    old_ip, new_ip = old.get("clusterIP"), spec.get("clusterIP")
    if old_ip and new_ip and new_ip != old_ip:
        return [v.invalid("spec.clusterIPs[0]", [new_ip], "may not change once set")]
    return []


def _cluster_ip(svc: Obj, now: datetime) -> str:
    ips = as_list(get_path(svc, "spec", "clusterIPs"))
    ip = ips[0] if ips else get_path(svc, "spec", "clusterIP", default="")
    return str(ip) or "<none>"


def _external_ip(svc: Obj, now: datetime) -> str:
    kind = get_path(svc, "spec", "type", default="")
    external = [str(ip) for ip in as_list(get_path(svc, "spec", "externalIPs"))]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        ingress = dicts(get_path(svc, "status", "loadBalancer", "ingress"))
        lb = [str(i.get("ip") or i.get("hostname") or "") for i in ingress]
        lb = [x for x in lb if x]
        return ",".join(lb + external) or "<pending>"
    if kind == "ExternalName":
        return str(get_path(svc, "spec", "externalName", default=""))
    return "<unknown>"


def _ports(svc: Obj, now: datetime) -> str:
    pieces = []
    for port in dicts(get_path(svc, "spec", "ports")):
        proto = port.get("protocol", "TCP")
        if port.get("nodePort"):
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{proto}")
        else:
            pieces.append(f"{port.get('port')}/{proto}")
    return ",".join(pieces) or "<none>"


SERVICE_COLUMNS = (
    NAME_COLUMN,
    Column("Type", "string", lambda o, n: str(get_path(o, "spec", "type", default="")),
           "type determines how the Service is exposed."),
    Column("Cluster-IP", "string", _cluster_ip,
           "clusterIP is the IP address of the service and is usually assigned randomly."),
    Column("External-IP", "string", _external_ip,
           "externalIPs is a list of IP addresses for which nodes in the cluster will also "
           "accept traffic for this service."),
    Column("Port(s)", "string", _ports,
           "The list of ports that are exposed by this service."),
    AGE_COLUMN,
    Column("Selector", "string", lambda o, n: format_labels(get_path(o, "spec", "selector")),
           "Route service traffic to pods with label keys and values matching this selector.",
           priority=1),
)


def keep_allocations(new: Obj, old: Obj) -> None:
    """An update that leaves out the cluster IP or a node port keeps the
    allocated one, as in Kubernetes (``kubectl apply`` never sends them)."""
    new_spec, old_spec = new.get("spec"), old.get("spec") or {}
    if not isinstance(new_spec, dict):
        return
    for field in ("clusterIP", "clusterIPs"):
        if not new_spec.get(field) and old_spec.get(field):
            new_spec[field] = old_spec[field]
    old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in dicts(old_spec.get("ports"))}
    if new_spec.get("type", "ClusterIP") in ("NodePort", "LoadBalancer"):
        for port in dicts(new_spec.get("ports")):
            previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
            if not port.get("nodePort") and previous:
                port["nodePort"] = previous


def service_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="", version="v1", kind="Service", plural="services", singular="service",
        namespaced=True, schema=schema, short_names=("svc",), categories=("all",),
        subresources=("status",), columns=SERVICE_COLUMNS, defaulter=default_service,
        validator=validate_service, prepare_update=keep_allocations, has_status=True,
    )


# --- Endpoints --------------------------------------------------------------------


def default_endpoints(obj: Obj) -> None:
    for subset in dicts(obj.get("subsets")):
        for port in dicts(subset.get("ports")):
            port.setdefault("protocol", "TCP")


def validate_endpoints(new: Obj, old: Obj | None) -> list[FieldCause]:
    causes: list[FieldCause] = []
    for i, subset in enumerate(as_list(new.get("subsets"))):
        p = f"subsets[{i}]"
        if not isinstance(subset, dict):
            causes.append(v.invalid(p, subset, "must be an object"))
            continue
        for key in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(as_list(subset.get(key))):
                ip = addr.get("ip") if isinstance(addr, dict) else None
                if not ip:
                    causes.append(v.required(f"{p}.{key}[{j}].ip"))
                else:
                    causes += v.check(f"{p}.{key}[{j}].ip", ip, v.ip_errors(ip))
        ports = as_list(subset.get("ports"))
        for j, port in enumerate(ports):
            pp = f"{p}.ports[{j}]"
            if not isinstance(port, dict):
                causes.append(v.invalid(pp, port, "must be an object"))
                continue
            if len(ports) > 1 and not port.get("name"):
                causes.append(v.required(f"{pp}.name"))
            elif port.get("name"):
                causes += v.check(f"{pp}.name", port["name"],
                                  v.dns1123_label_errors(str(port["name"])))
            causes += v.port_number(f"{pp}.port", port.get("port"))
            causes += v.protocol(f"{pp}.protocol", port.get("protocol"))
    return causes


def format_endpoints(obj: Obj, limit: int = 3) -> str:
    """``ip:port,...`` with at most three entries, then ``+ N more...`` as kubectl prints."""
    shown: list[str] = []
    count = 0
    for subset in dicts(obj.get("subsets")):
        addresses = [str(a.get("ip", "")) for a in dicts(subset.get("addresses"))]
        ports = dicts(subset.get("ports"))
        hosts = [(ip, None) for ip in addresses] if not ports else [
            (ip, p.get("port")) for p in ports for ip in addresses]
        count += len(hosts)
        for ip, port in hosts:
            if len(shown) < limit:
                if port is None:
                    shown.append(ip)
                else:
                    shown.append(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}")
    text = ",".join(shown)
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or "<none>"


ENDPOINTS_COLUMNS = (
    NAME_COLUMN,
    Column("Endpoints", "string", lambda o, n: format_endpoints(o),
           "Endpoints of the service"),
    AGE_COLUMN,
)


def endpoints_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="", version="v1", kind="Endpoints", plural="endpoints", singular="endpoints",
        namespaced=True, schema=schema, short_names=("ep",), columns=ENDPOINTS_COLUMNS,
        defaulter=default_endpoints, validator=validate_endpoints,
    )
