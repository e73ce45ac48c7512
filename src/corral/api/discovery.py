"""Discovery documents, legacy and aggregated, derived from the registry.

kubectl 1.32 asks for aggregated discovery (``apidiscovery.k8s.io/v2``) and
only believes it when the response's Content-Type names it exactly; it
falls back to the legacy per-group documents otherwise, and ``kubectl
drain`` always reads legacy ``/api/v1``. Both are served from one
description of each resource so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from corral.resources.registry import Registry
from corral.resources.types import ResourceType

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

STATUS_VERBS = ["get", "patch", "update"]


class Virtual(Protocol):
    """A resource that is served, not stored (metrics.k8s.io): discovery
    lists it beside the registry's kinds."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]


def _virtual_groups(virtual: Sequence[Virtual]) -> list[tuple[str, list[str]]]:
    out: dict[str, list[str]] = {}
    for v in virtual:
        versions = out.setdefault(v.group, [])
        if v.version not in versions:
            versions.append(v.version)
    return list(out.items())


def _virtual_entry(v: Virtual) -> dict[str, Any]:
    return {"name": v.plural, "singularName": v.singular, "namespaced": v.namespaced,
            "kind": v.kind, "verbs": list(v.verbs)}


def _virtual_aggregated(v: Virtual) -> dict[str, Any]:
    return {"resource": v.plural, "responseKind": {"group": v.group, "version": v.version, "kind": v.kind},
            "scope": "Namespaced" if v.namespaced else "Cluster", "singularResource": v.singular,
            "verbs": list(v.verbs)}


def _subresource_facts(rt: ResourceType, sub: str) -> tuple[dict[str, str], list[str]] | None:
    """(response kind, verbs) of a subresource, as Kubernetes advertises them."""
    own = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    table: dict[str, tuple[dict[str, str], list[str]]] = {
        "status": (own, STATUS_VERBS),
        "scale": ({"group": "autoscaling", "version": "v1", "kind": "Scale"}, STATUS_VERBS),
        "binding": ({"group": "", "version": "v1", "kind": "Binding"}, ["create"]),
        "eviction": ({"group": "policy", "version": "v1", "kind": "Eviction"}, ["create"]),
        "log": ({"group": "", "version": "v1", "kind": "Pod"}, ["get"]),
        "exec": ({"group": "", "version": "v1", "kind": "PodExecOptions"}, ["create", "get"]),
        "portforward": ({"group": "", "version": "v1", "kind": "PodPortForwardOptions"}, ["create", "get"]),
        "finalize": (own, ["update"]),
        "approval": (own, ["update"]),
        "proxy": ({"group": "", "version": "v1", "kind": f"{rt.kind}ProxyOptions"}, ["get"]),  # nodeproxy.py
    }
    return table.get(sub)


def legacy_resource_list(registry: Registry, group: str, version: str,
                         virtual: Sequence[Virtual] = ()) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    served = [v for v in virtual if v.group == group and v.version == version]
    if served and not types:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}",
                "resources": [_virtual_entry(v) for v in served]}
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            facts = _subresource_facts(rt, sub)
            if facts is None:
                continue
            kind, verbs = facts
            sub_entry: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind["kind"],
                "verbs": verbs,
            }
            if kind["group"] != rt.group or kind["version"] != rt.version:
                sub_entry["group"], sub_entry["version"] = kind["group"], kind["version"]
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def legacy_api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def legacy_group_list(registry: Registry, virtual: Sequence[Virtual] = ()) -> dict[str, Any]:
    groups = [*registry.groups(), *_virtual_groups(virtual)]
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, v) for g, v in groups if g],
    }


def legacy_group(registry: Registry, group: str, virtual: Sequence[Virtual] = ()) -> dict[str, Any] | None:
    for g, versions in [*registry.groups(), *_virtual_groups(virtual)]:
        if g == group and g:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(g, versions)}
    return None


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subs = []
    for sub in rt.subresources:
        facts = _subresource_facts(rt, sub)
        if facts is not None:
            subs.append({"subresource": sub, "responseKind": facts[0], "verbs": facts[1]})
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(registry: Registry, *, core: bool, version: str = "v2",
               virtual: Sequence[Virtual] = ()) -> dict[str, Any]:
    """``/api`` (core=True: one item with an empty name) or ``/apis``."""
    items = []
    if not core:
        for group, versions in _virtual_groups(virtual):
            items.append({
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": ver,
                        "resources": [_virtual_aggregated(v) for v in virtual
                                      if v.group == group and v.version == ver],
                        "freshness": "Current",
                    }
                    for ver in versions
                ],
            })
    for group, versions in registry.groups():
        if bool(group) == core:
            continue
        items.append({
            "metadata": {"name": group, "creationTimestamp": None},
            "versions": [
                {
                    "version": v,
                    "resources": [_aggregated_resource(rt) for rt in registry.in_group_version(group, v)],
                    "freshness": "Current",
                }
                for v in versions
            ],
        })
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def wants_aggregated(accept: str) -> str | None:
    """The aggregated version the client accepts first ("v2" or "v2beta1"), if any."""
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[-1].strip() for p in part.split(";")[1:]}
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") in ("v2", "v2beta1"):
                return params["v"]
    return None
