"""apps/v1 DaemonSet, StatefulSet and ControllerRevision: defaults,
validation with Kubernetes' messages, and their ``kubectl get`` columns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from corral.resources import validation as v
from corral.resources.apps import _go_selector, _validate_int_or_percent, validate_workload_selector
from corral.resources.podspec import default_pod_template, validate_pod_template
from corral.resources.schema import Schema
from corral.resources.tables import (
    AGE_COLUMN,
    NAME_COLUMN,
    as_dict,
    as_int,
    containers_cell,
    format_labels,
    get_path,
    images_cell,
    selector_column,
)
from corral.resources.types import Column, FieldCause, Obj, ResourceType, ScaleSpec

UPDATE_TYPES = ("OnDelete", "RollingUpdate")
POD_MANAGEMENT = ("OrderedReady", "Parallel")
RETENTION = ("Retain", "Delete")
_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds", "revisionHistoryLimit")

# --- defaults ---------------------------------------------------------------------


def default_daemonset(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxUnavailable", 1)
                rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    default_pod_template(spec.get("template"))


def default_statefulset(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    if isinstance(retention, dict):
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
    default_pod_template(spec.get("template"))


# --- validation -------------------------------------------------------------------


def _selector_immutable(spec: dict[str, Any], old: Obj | None) -> list[FieldCause]:
    if old is None:
        return []
    old_selector = get_path(old, "spec", "selector")
    if spec.get("selector") == old_selector:
        return []
    return [FieldCause("spec.selector",
                       f"Invalid value: {_go_selector(spec.get('selector'))}: field is immutable",
                       "FieldValueInvalid")]


def _validate_ds_strategy(strategy: Any) -> list[FieldCause]:
    if not isinstance(strategy, dict):
        return [v.required("spec.updateStrategy")]
    kind = strategy.get("type")
    causes = v.one_of("spec.updateStrategy.type", kind, UPDATE_TYPES)
    rolling = strategy.get("rollingUpdate")
    if kind == "RollingUpdate" and isinstance(rolling, dict):
        p = "spec.updateStrategy.rollingUpdate"
        unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
        causes += _validate_int_or_percent(f"{p}.maxUnavailable", unavailable)
        causes += _validate_int_or_percent(f"{p}.maxSurge", surge)
        if unavailable in (0, "0%") and surge in (0, "0%", None):
            causes.append(v.invalid(f"{p}.maxUnavailable", unavailable, "cannot be 0 when maxSurge is 0"))
        if unavailable not in (0, "0%", None) and surge not in (0, "0%", None):
            causes.append(v.invalid(f"{p}.maxSurge", surge,
                                    "may not be set when maxUnavailable is non-zero"))
    return causes


def validate_daemonset(new: Obj, old: Obj | None) -> list[FieldCause]:
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return [v.required("spec")]
    causes = validate_workload_selector(spec)
    causes += validate_pod_template(spec.get("template"), "spec.template")
    causes += v.non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    causes += v.non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    causes += _validate_ds_strategy(spec.get("updateStrategy"))
    return causes + _selector_immutable(spec, old)


def validate_statefulset(new: Obj, old: Obj | None) -> list[FieldCause]:
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return [v.required("spec")]
    causes = v.non_negative("spec.replicas", spec.get("replicas"))
    causes += v.non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    causes += v.non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    causes += validate_workload_selector(spec)
    causes += validate_pod_template(spec.get("template"), "spec.template")
    causes += v.one_of("spec.podManagementPolicy", spec.get("podManagementPolicy"), POD_MANAGEMENT)
    strategy = as_dict(spec.get("updateStrategy"))
    causes += v.one_of("spec.updateStrategy.type", strategy.get("type"), UPDATE_TYPES)
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type") == "OnDelete" and rolling is not None:
        causes.append(v.invalid("spec.updateStrategy.rollingUpdate", rolling,
                                "only allowed for updateStrategy 'RollingUpdate'"))
    if isinstance(rolling, dict):
        causes += v.non_negative("spec.updateStrategy.rollingUpdate.partition", rolling.get("partition"))
    start = get_path(spec, "ordinals", "start")
    causes += v.non_negative("spec.ordinals.start", start)
    retention = as_dict(spec.get("persistentVolumeClaimRetentionPolicy"))
    for key in ("whenDeleted", "whenScaled"):
        causes += v.one_of(f"spec.persistentVolumeClaimRetentionPolicy.{key}", retention.get(key),
                           RETENTION, need=False)
    if old is not None:
        old_spec = as_dict(old.get("spec"))
        rest_new = {k: val for k, val in spec.items() if k not in _STS_MUTABLE}
        rest_old = {k: val for k, val in old_spec.items() if k not in _STS_MUTABLE}
        if rest_new != rest_old:
            causes.append(v.forbidden(
                "spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                "'minReadySeconds' are forbidden"))
    return causes


def validate_controllerrevision(new: Obj, old: Obj | None) -> list[FieldCause]:
    causes = v.non_negative("revision", new.get("revision"))
    if old is not None:
        causes += v.immutable_field("data", new.get("data"), old.get("data"))
    return causes


# --- tables -------------------------------------------------------------------------

_TEMPLATE = ("spec", "template")


def _status(name: str) -> Column:
    labels = {
        "desiredNumberScheduled": ("Desired", "The total number of nodes that should be running "
                                   "the daemon pod."),
        "currentNumberScheduled": ("Current", "The number of nodes that are running at least 1 "
                                   "daemon pod and are supposed to run the daemon pod."),
        "numberReady": ("Ready", "The number of nodes that should be running the daemon pod and "
                        "have one or more of the daemon pod running and ready."),
        "updatedNumberScheduled": ("Up-to-date", "The total number of nodes that are running "
                                   "updated daemon pod."),
        "numberAvailable": ("Available", "The number of nodes that should be running the daemon "
                            "pod and have one or more of the daemon pod running and available."),
    }
    title, desc = labels[name]
    return Column(title, "integer", lambda o, n: as_int(get_path(o, "status", name)), desc)


DAEMONSET_COLUMNS = (
    NAME_COLUMN,
    _status("desiredNumberScheduled"),
    _status("currentNumberScheduled"),
    _status("numberReady"),
    _status("updatedNumberScheduled"),
    _status("numberAvailable"),
    Column("Node Selector", "string",
           lambda o, n: format_labels(get_path(o, "spec", "template", "spec", "nodeSelector")),
           "NodeSelector is a selector which must be true for the pod to fit on a node."),
    AGE_COLUMN,
    containers_cell(_TEMPLATE),
    images_cell(_TEMPLATE),
    selector_column("A label query over pods that are managed by the daemon set."),
)


def _sts_ready(obj: Obj, now: datetime) -> str:
    return f"{as_int(get_path(obj, 'status', 'readyReplicas'))}/{as_int(get_path(obj, 'spec', 'replicas'))}"


STATEFULSET_COLUMNS = (
    NAME_COLUMN,
    Column("Ready", "string", _sts_ready, "Number of the pod with ready state"),
    AGE_COLUMN,
    containers_cell(_TEMPLATE),
    images_cell(_TEMPLATE),
)


def _revision_controller(obj: Obj, now: datetime) -> str:
    for ref in get_path(obj, "metadata", "ownerReferences", default=[]) or []:
        ref = as_dict(ref)
        if ref.get("controller"):
            group = str(ref.get("apiVersion", "")).rpartition("/")[0]
            kind = str(ref.get("kind", "")).lower()
            return f"{kind}.{group}/{ref.get('name')}" if group else f"{kind}/{ref.get('name')}"
    return "<none>"


CONTROLLERREVISION_COLUMNS = (
    NAME_COLUMN,
    Column("Controller", "string", _revision_controller, "Controller of the object."),
    Column("Revision", "integer", lambda o, n: as_int(o.get("revision")),
           "Revision indicates the revision of the state represented by Data."),
    AGE_COLUMN,
)


def daemonset_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="apps", version="v1", kind="DaemonSet", plural="daemonsets", singular="daemonset",
        namespaced=True, schema=schema, short_names=("ds",), categories=("all",),
        subresources=("status",), columns=DAEMONSET_COLUMNS, defaulter=default_daemonset,
        validator=validate_daemonset, has_status=True,
    )


def statefulset_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="apps", version="v1", kind="StatefulSet", plural="statefulsets",
        singular="statefulset", namespaced=True, schema=schema, short_names=("sts",),
        categories=("all",), subresources=("status", "scale"), columns=STATEFULSET_COLUMNS,
        defaulter=default_statefulset, validator=validate_statefulset, scale=ScaleSpec(),
        has_status=True,
    )


def controllerrevision_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="apps", version="v1", kind="ControllerRevision", plural="controllerrevisions",
        singular="controllerrevision", namespaced=True, schema=schema,
        columns=CONTROLLERREVISION_COLUMNS, validator=validate_controllerrevision,
    )
