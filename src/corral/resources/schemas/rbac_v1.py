"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding."""

from __future__ import annotations

from corral.resources.schemas.dsl import arr, kind_object, obj, string, strings
from corral.resources.schemas.meta import LABEL_SELECTOR, OBJECT_META

RBAC = "io.k8s.api.rbac.v1"

POLICY_RULE = obj(
    "What a rule allows: verbs on resources of API groups (optionally only named "
    "objects), or verbs on non-resource URLs such as /healthz.",
    {
        "apiGroups": strings("API groups of the resources; \"\" is the core group, \"*\" all."),
        "nonResourceURLs": strings("URL paths (a trailing * is a prefix match); only in ClusterRoles."),
        "resourceNames": strings("Names of objects the rule is limited to; empty means all."),
        "resources": strings("Resources (plural names, resource/subresource, \"*\")."),
        "verbs": strings("Verbs: get, list, watch, create, update, patch, delete, deletecollection, \"*\"."),
    },
    required=("verbs",),
    ref=f"{RBAC}.PolicyRule",
)

AGGREGATION_RULE = obj(
    "Which ClusterRoles' rules are gathered into this one.",
    {"clusterRoleSelectors": arr(LABEL_SELECTOR, "ClusterRoles matching any selector are aggregated.")},
    ref=f"{RBAC}.AggregationRule",
)

SUBJECT = obj(
    "Who a binding grants to: a User, a Group or a ServiceAccount.",
    {
        "apiGroup": string("rbac.authorization.k8s.io for User and Group, \"\" for ServiceAccount."),
        "kind": string("User, Group or ServiceAccount."),
        "name": string("Name of the subject."),
        "namespace": string("Namespace of a ServiceAccount subject."),
    },
    required=("kind", "name"),
    ref=f"{RBAC}.Subject",
    map_type="atomic",
)

ROLE_REF = obj(
    "The role a binding grants; it cannot change once the binding exists.",
    {
        "apiGroup": string("Always rbac.authorization.k8s.io."),
        "kind": string("Role or ClusterRole."),
        "name": string("Name of the role."),
    },
    required=("apiGroup", "kind", "name"),
    ref=f"{RBAC}.RoleRef",
    map_type="atomic",
)

_RULES = arr(POLICY_RULE, "The rules of this role.")
_SUBJECTS = arr(SUBJECT, "Who the role is granted to.")

ROLE = kind_object(
    f"{RBAC}.Role", "A namespaced set of permissions.", {"rules": _RULES}, metadata=OBJECT_META,
)

CLUSTER_ROLE = kind_object(
    f"{RBAC}.ClusterRole",
    "A cluster-wide set of permissions, usable in any namespace through a RoleBinding.",
    {"rules": _RULES, "aggregationRule": AGGREGATION_RULE},
    metadata=OBJECT_META,
)

ROLE_BINDING = kind_object(
    f"{RBAC}.RoleBinding",
    "Grants a Role or ClusterRole to subjects within one namespace.",
    {"roleRef": ROLE_REF, "subjects": _SUBJECTS},
    metadata=OBJECT_META,
    required=("roleRef",),
)

CLUSTER_ROLE_BINDING = kind_object(
    f"{RBAC}.ClusterRoleBinding",
    "Grants a ClusterRole to subjects in every namespace and at the cluster scope.",
    {"roleRef": ROLE_REF, "subjects": _SUBJECTS},
    metadata=OBJECT_META,
    required=("roleRef",),
)
