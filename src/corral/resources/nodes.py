"""v1 Node: what an agent registers, and the STATUS/ROLES columns of ``get nodes``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from corral.resources import validation as v
from corral.resources.podspec import TAINT_EFFECTS
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, as_dict, as_list, dicts, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType

ROLE_PREFIX = "node-role.kubernetes.io/"


def default_node(obj: Obj) -> None:
    status = obj.get("status")
    if isinstance(status, dict) and isinstance(status.get("capacity"), dict):
        status.setdefault("allocatable", dict(status["capacity"]))


def _validate_taints(taints: Any) -> list[FieldCause]:
    causes: list[FieldCause] = []
    seen: set[tuple[Any, Any]] = set()
    for i, taint in enumerate(as_list(taints)):
        p = f"spec.taints[{i}]"
        if not isinstance(taint, dict):
            causes.append(v.invalid(p, taint, "must be an object"))
            continue
        key = taint.get("key")
        if not key:
            causes.append(v.required(f"{p}.key"))
        else:
            causes += v.check(f"{p}.key", key, v.qualified_name_errors(str(key)))
        if taint.get("value"):
            causes += v.check(f"{p}.value", taint["value"],
                              v.label_value_errors(str(taint["value"])))
        causes += v.one_of(f"{p}.effect", taint.get("effect"), TAINT_EFFECTS)
        pair = (v.go_value(key), v.go_value(taint.get("effect")))
        if pair in seen:
            causes.append(v.duplicate(p, {"key": key, "effect": taint.get("effect")}))
        seen.add(pair)
    return causes


def validate_node(new: Obj, old: Obj | None) -> list[FieldCause]:
    spec = new.get("spec") or {}
    causes: list[FieldCause] = []
    if not isinstance(spec, dict):
        return [v.invalid("spec", spec, "must be an object")]
    for key in ("podCIDR",):
        if spec.get(key):
            causes += v.check(f"spec.{key}", spec[key], v.cidr_errors(spec[key]))
    for i, cidr in enumerate(as_list(spec.get("podCIDRs"))):
        causes += v.check(f"spec.podCIDRs[{i}]", cidr, v.cidr_errors(cidr))
    causes += _validate_taints(spec.get("taints"))
    if spec.get("unschedulable") not in (None, True, False):
        causes.append(v.invalid("spec.unschedulable", spec["unschedulable"], "must be a boolean"))
    status = as_dict(new.get("status"))
    for kind in ("capacity", "allocatable"):
        for name, value in as_dict(status.get(kind)).items():
            causes += v.quantity(f"status.{kind}[{name}]", value)
    for i, addr in enumerate(as_list(status.get("addresses"))):
        if not isinstance(addr, dict) or not addr.get("type"):
            causes.append(v.required(f"status.addresses[{i}].type"))
    if old is not None:
        old_cidr = get_path(old, "spec", "podCIDR")
        if old_cidr and spec.get("podCIDR") != old_cidr:
            causes.append(v.forbidden("spec.podCIDR", "node updates may not change podCIDR "
                                      "except from \"\" to valid"))
    return causes


def node_status(node: Obj, now: datetime) -> str:
    parts = []
    for cond in dicts(get_path(node, "status", "conditions")):
        if cond.get("type") == "Ready":
            parts = ["Ready" if cond.get("status") == "True" else "NotReady"]
    if not parts:
        parts = ["Unknown"]
    if get_path(node, "spec", "unschedulable") is True:
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def node_roles(node: Obj, now: datetime) -> str:
    roles: set[str] = set()
    for key, value in as_dict(get_path(node, "metadata", "labels")).items():
        if key.startswith(ROLE_PREFIX) and key[len(ROLE_PREFIX):]:
            roles.add(key[len(ROLE_PREFIX):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _address(kind: str) -> Callable[[Obj, datetime], str]:
    def cell(node: Obj, now: datetime) -> str:
        for addr in dicts(get_path(node, "status", "addresses")):
            if addr.get("type") == kind:
                return str(addr.get("address", ""))
        return "<none>"

    return cell


def _info(field: str) -> Callable[[Obj, datetime], str]:
    def cell(node: Obj, now: datetime) -> str:
        return str(get_path(node, "status", "nodeInfo", field, default="")) or "<unknown>"

    return cell


COLUMNS = (
    NAME_COLUMN,
    Column("Status", "string", node_status, "The status of the node"),
    Column("Roles", "string", node_roles, "The roles of the node"),
    AGE_COLUMN,
    Column("Version", "string",
           lambda o, n: str(get_path(o, "status", "nodeInfo", "kubeletVersion", default="")),
           "Kubelet Version reported by the node."),
    Column("Internal-IP", "string", _address("InternalIP"), "List of internal IPs.", priority=1),
    Column("External-IP", "string", _address("ExternalIP"), "List of external IPs.", priority=1),
    Column("OS-Image", "string", _info("osImage"),
           "OS Image reported by the node from /etc/os-release.", priority=1),
    Column("Kernel-Version", "string", _info("kernelVersion"),
           "Kernel Version reported by the node from 'uname -r'.", priority=1),
    Column("Container-Runtime", "string", _info("containerRuntimeVersion"),
           "Container Runtime Version reported by the node through runtime remote API.",
           priority=1),
)


def node_fields(node: Obj) -> dict[str, str]:
    return {"spec.unschedulable": "true" if get_path(node, "spec", "unschedulable") is True
            else "false"}


def node_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="", version="v1", kind="Node", plural="nodes", singular="node", namespaced=False,
        schema=schema, short_names=("no",), subresources=("status", "proxy"), columns=COLUMNS,
        defaulter=default_node, validator=validate_node, field_selectors=node_fields,
        has_status=True,
    )
