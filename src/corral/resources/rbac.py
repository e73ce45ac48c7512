"""rbac.authorization.k8s.io/v1 kinds: roles and the bindings that grant them.

Names follow Kubernetes' RBAC rule (a path segment, so ``system:discovery``
is valid); validation mirrors its messages for rules, subjects and the
immutable roleRef.
"""

from __future__ import annotations

from typing import Any

from corral.resources import validation as v
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, as_list, dicts, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType

GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("User", "Group", "ServiceAccount")


def _rule_causes(rules: Any, path: str, cluster: bool) -> list[FieldCause]:
    causes: list[FieldCause] = []
    if rules is not None and not isinstance(rules, list):
        return [v.invalid(path, rules, "must be a list")]
    for i, rule in enumerate(as_list(rules)):
        at = f"{path}[{i}]"
        if not isinstance(rule, dict):
            causes.append(v.invalid(at, rule, "must be an object"))
            continue
        if not rule.get("verbs"):
            causes.append(v.required(f"{at}.verbs", "verbs must contain at least one value"))
        if rule.get("nonResourceURLs"):
            if not cluster:
                causes.append(v.invalid(f"{at}.nonResourceURLs", rule["nonResourceURLs"],
                                        "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                causes.append(v.invalid(f"{at}.nonResourceURLs", rule["nonResourceURLs"],
                                        "rules cannot apply to both regular resources and non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            causes.append(v.required(f"{at}.apiGroups",
                                     "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            causes.append(v.required(f"{at}.resources",
                                     "resource rules must supply at least one resource"))
    return causes


def validate_role(new: Obj, old: Obj | None) -> list[FieldCause]:
    return _rule_causes(new.get("rules"), "rules", cluster=False)


def validate_cluster_role(new: Obj, old: Obj | None) -> list[FieldCause]:
    causes = _rule_causes(new.get("rules"), "rules", cluster=True)
    agg = new.get("aggregationRule")
    if agg is not None and not (isinstance(agg, dict) and agg.get("clusterRoleSelectors")):
        causes.append(v.required("aggregationRule.clusterRoleSelectors",
                                 "at least one clusterRoleSelector required if aggregationRule is non-nil"))
    return causes


def _binding_causes(new: Obj, old: Obj | None, cluster: bool) -> list[FieldCause]:
    causes: list[FieldCause] = []
    ref = new.get("roleRef")
    if not isinstance(ref, dict):
        return [v.required("roleRef")]
    kinds = ("ClusterRole",) if cluster else ("Role", "ClusterRole")
    if ref.get("apiGroup") != GROUP:
        causes.append(v.not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), (GROUP,)))
    if ref.get("kind") not in kinds:
        causes.append(v.not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    if not ref.get("name"):
        causes.append(v.required("roleRef.name"))
    elif isinstance(ref["name"], str):
        causes += v.check("roleRef.name", ref["name"], v.path_segment_errors(ref["name"]))
    if old is not None and old.get("roleRef") != ref:
        causes.append(v.invalid("roleRef", ref, "cannot change roleRef"))
    for i, subject in enumerate(as_list(new.get("subjects"))):
        causes += _subject_causes(subject, f"subjects[{i}]", cluster)
    return causes


def _subject_causes(subject: Any, at: str, cluster: bool) -> list[FieldCause]:
    if not isinstance(subject, dict):
        return [v.invalid(at, subject, "must be an object")]
    causes: list[FieldCause] = []
    kind, name = subject.get("kind"), subject.get("name")
    if not name:
        causes.append(v.required(f"{at}.name"))
    if kind not in SUBJECT_KINDS:
        causes.append(v.not_supported(f"{at}.kind", kind or "", SUBJECT_KINDS))
    elif kind == "ServiceAccount":
        if subject.get("apiGroup"):
            causes.append(v.not_supported(f"{at}.apiGroup", subject["apiGroup"], ("",)))
        if cluster and not subject.get("namespace"):
            causes.append(v.required(f"{at}.namespace"))
    elif subject.get("apiGroup") != GROUP:
        causes.append(v.not_supported(f"{at}.apiGroup", subject.get("apiGroup", ""), (GROUP,)))
    return causes


def validate_role_binding(new: Obj, old: Obj | None) -> list[FieldCause]:
    return _binding_causes(new, old, cluster=False)


def validate_cluster_role_binding(new: Obj, old: Obj | None) -> list[FieldCause]:
    return _binding_causes(new, old, cluster=True)


def _subjects_of(kind: str) -> Column:
    def cell(o: Obj, _now: Any) -> str:
        names = []
        for s in dicts(o.get("subjects")):
            if s.get("kind") == kind:
                names.append(f"{s.get('namespace')}/{s.get('name')}" if kind == "ServiceAccount" else str(s.get("name")))
        return ", ".join(names)
    header = {"User": "Users", "Group": "Groups", "ServiceAccount": "ServiceAccounts"}[kind]
    return Column(header, "string", cell, f"{header} the role is granted to.", priority=1)


ROLE_COLUMNS = (
    NAME_COLUMN,
    Column("Created At", "date", lambda o, n: str(get_path(o, "metadata", "creationTimestamp", default="")),
           "When the role was created."),
)

BINDING_COLUMNS = (
    NAME_COLUMN,
    Column("Role", "string",
           lambda o, n: f"{get_path(o, 'roleRef', 'kind', default='')}/{get_path(o, 'roleRef', 'name', default='')}",
           "The role granted."),
    AGE_COLUMN,
    _subjects_of("User"),
    _subjects_of("Group"),
    _subjects_of("ServiceAccount"),
)

_PATH_SEGMENT = {"name_format": "path-segment"}


def _rbac_type(kind: str, plural: str, namespaced: bool, schema: Schema, columns: tuple[Column, ...],
               validator: Any) -> ResourceType:
    return ResourceType(
        group=GROUP, version="v1", kind=kind, plural=plural, singular=kind.lower(),
        namespaced=namespaced, schema=schema, columns=columns, validator=validator,
        extra=dict(_PATH_SEGMENT),
    )


def role_type(schema: Schema) -> ResourceType:
    return _rbac_type("Role", "roles", True, schema, ROLE_COLUMNS, validate_role)


def cluster_role_type(schema: Schema) -> ResourceType:
    return _rbac_type("ClusterRole", "clusterroles", False, schema, ROLE_COLUMNS, validate_cluster_role)


def role_binding_type(schema: Schema) -> ResourceType:
    return _rbac_type("RoleBinding", "rolebindings", True, schema, BINDING_COLUMNS, validate_role_binding)


def cluster_role_binding_type(schema: Schema) -> ResourceType:
    return _rbac_type("ClusterRoleBinding", "clusterrolebindings", False, schema, BINDING_COLUMNS,
                      validate_cluster_role_binding)
