"""discovery.k8s.io/v1 EndpointSlice: the backends of a Service in bounded pieces.

Kubernetes' rules carried over: ``addressType`` is required, one of IPv4, IPv6
or FQDN, and immutable; every endpoint has 1 to 100 addresses of that type;
a slice holds at most 1000 endpoints and 100 ports; port names are unique
DNS labels (or empty) and port numbers, when set, are valid ports.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from corral.resources import validation as v
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, as_list, dicts, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_ENDPOINTS = 1000
MAX_PORTS = 100
MAX_ADDRESSES = 100


def default_endpointslice(obj: Obj) -> None:
    for port in dicts(obj.get("ports")):
        port.setdefault("protocol", "TCP")
        port.setdefault("name", "")
    for endpoint in dicts(obj.get("endpoints")):
        endpoint.setdefault("conditions", {})


def _address_errors(address_type: str, value: Any) -> list[str]:
    if not isinstance(value, str):
        return ["must be a string"]
    if address_type == "FQDN":
        return v.dns1123_subdomain_errors(value)
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return [f"must be a valid {address_type} address"]
    if (addr.version == 4) != (address_type == "IPv4"):
        return [f"must be a valid {address_type} address"]
    return []


def _validate_endpoints(endpoints: list[Any], address_type: str) -> list[FieldCause]:
    causes: list[FieldCause] = []
    if len(endpoints) > MAX_ENDPOINTS:
        causes.append(v.invalid("endpoints", len(endpoints), f"must have at most {MAX_ENDPOINTS} items"))
    for i, endpoint in enumerate(endpoints):
        p = f"endpoints[{i}]"
        if not isinstance(endpoint, dict):
            causes.append(v.invalid(p, endpoint, "must be an object"))
            continue
        addresses = as_list(endpoint.get("addresses"))
        if not addresses:
            causes.append(v.required(f"{p}.addresses", "must contain at least 1 address"))
        elif len(addresses) > MAX_ADDRESSES:
            causes.append(v.invalid(f"{p}.addresses", len(addresses),
                                    f"must have at most {MAX_ADDRESSES} items"))
        for j, address in enumerate(addresses):
            causes += v.check(f"{p}.addresses[{j}]", address, _address_errors(address_type, address))
        hostname = endpoint.get("hostname")
        if hostname:
            causes += v.check(f"{p}.hostname", hostname, v.dns1123_label_errors(str(hostname)))
    return causes


def _validate_ports(ports: list[Any]) -> list[FieldCause]:
    causes: list[FieldCause] = []
    if len(ports) > MAX_PORTS:
        causes.append(v.invalid("ports", len(ports), f"must have at most {MAX_PORTS} items"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = f"ports[{i}]"
        if not isinstance(port, dict):
            causes.append(v.invalid(p, port, "must be an object"))
            continue
        name = port.get("name") or ""
        if name:
            causes += v.check(f"{p}.name", name, v.dns1123_label_errors(str(name)))
        if name in names:
            causes.append(v.duplicate(f"{p}.name", name))
        names.add(name)
        if port.get("port") is not None:
            causes += v.port_number(f"{p}.port", port.get("port"))
        causes += v.protocol(f"{p}.protocol", port.get("protocol"))
    return causes


def validate_endpointslice(new: Obj, old: Obj | None) -> list[FieldCause]:
    address_type = new.get("addressType")
    causes = v.one_of("addressType", address_type, ADDRESS_TYPES)
    if old is not None:
        causes += v.immutable_field("addressType", address_type, old.get("addressType"))
    if causes:
        return causes
    causes += _validate_endpoints(as_list(new.get("endpoints")), str(address_type))
    causes += _validate_ports(as_list(new.get("ports")))
    return causes


def _ports(obj: Obj, now: Any) -> str:
    ports = [str(p.get("port")) for p in dicts(obj.get("ports")) if p.get("port") is not None]
    return ",".join(ports) or "<unset>"


def _endpoints(obj: Obj, now: Any, limit: int = 3) -> str:
    addresses = [str(a) for e in dicts(obj.get("endpoints")) for a in as_list(e.get("addresses"))]
    if not addresses:
        return "<unset>"
    text = ",".join(addresses[:limit])
    return f"{text} + {len(addresses) - limit} more..." if len(addresses) > limit else text


COLUMNS = (
    NAME_COLUMN,
    Column("AddressType", "string", lambda o, n: str(get_path(o, "addressType", default="")),
           "The address type of the endpoints of this slice."),
    Column("Ports", "string", _ports, "The ports of this slice."),
    Column("Endpoints", "string", _endpoints, "The addresses of the endpoints of this slice."),
    AGE_COLUMN,
)


def endpointslice_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="discovery.k8s.io", version="v1", kind="EndpointSlice", plural="endpointslices",
        singular="endpointslice", namespaced=True, schema=schema, columns=COLUMNS,
        defaulter=default_endpointslice, validator=validate_endpointslice,
    )
