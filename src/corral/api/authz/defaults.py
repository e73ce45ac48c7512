"""The default ClusterRoles and ClusterRoleBindings every cluster starts with.

Names, labels and the aggregation chain follow Kubernetes (admin ← edit ←
view through ``rbac.authorization.k8s.io/aggregate-to-*`` labels), so
manifests written for Kubernetes that extend the default roles work here.
The rules cover the kinds corral serves and the ones other corral issues
add; a rule naming a kind that does not exist yet is harmless.
"""

from __future__ import annotations

from typing import Any

from corral.api.codec import deep_copy

GROUP = "rbac.authorization.k8s.io"
AGG = "rbac.authorization.k8s.io/aggregate-to-"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
Obj = dict[str, Any]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> Obj:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _url_rule(urls: list[str], verbs: list[str]) -> Obj:
    return {"nonResourceURLs": urls, "verbs": verbs}


def _role(name: str, rules: list[Obj] | None = None, *, labels: dict[str, str] | None = None,
          aggregate: str = "") -> Obj:
    role: Obj = {
        "apiVersion": f"{GROUP}/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {**BOOTSTRAP_LABELS, **(labels or {})}, "annotations": dict(AUTOUPDATE)},
        "rules": rules or [],
    }
    if aggregate:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {f"{AGG}{aggregate}": "true"}}]}
    return role


def _binding(name: str, role: str, groups: list[str]) -> Obj:
    return {
        "apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": dict(BOOTSTRAP_LABELS), "annotations": dict(AUTOUPDATE)},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups],
    }


_VIEW_CORE = ["pods", "pods/log", "pods/status", "configmaps", "endpoints", "persistentvolumeclaims",
              "persistentvolumeclaims/status", "replicationcontrollers", "replicationcontrollers/scale",
              "replicationcontrollers/status", "serviceaccounts", "services", "services/status",
              "bindings", "events", "limitranges", "namespaces/status", "resourcequotas",
              "resourcequotas/status", "pods/log"]
_APPS = ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
         "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
         "statefulsets/scale", "statefulsets/status"]
_EDIT_CORE = ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "configmaps",
              "endpoints", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale",
              "secrets", "serviceaccounts", "services", "services/proxy"]
_APPS_WRITE = ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
               "replicasets/scale", "statefulsets", "statefulsets/scale"]


def _view_rules() -> list[Obj]:
    return [
        _rule([""], sorted(set(_VIEW_CORE)), READ),
        _rule([""], ["namespaces"], READ),
        _rule(["apps"], _APPS, READ),
        _rule(["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], READ),
        _rule(["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
        _rule(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], READ),
        _rule(["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"], READ),
        _rule(["discovery.k8s.io"], ["endpointslices"], READ),
        _rule(["events.k8s.io"], ["events"], READ),
    ]


def _edit_rules() -> list[Obj]:
    return [
        _rule([""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"], READ),
        _rule([""], ["serviceaccounts"], ["impersonate"]),
        _rule([""], _EDIT_CORE, WRITE),
        _rule([""], ["pods/eviction"], ["create"]),
        _rule([""], ["serviceaccounts/token"], ["create"]),
        _rule(["apps"], _APPS_WRITE, WRITE),
        _rule(["autoscaling"], ["horizontalpodautoscalers"], WRITE),
        _rule(["batch"], ["cronjobs", "jobs"], WRITE),
        _rule(["policy"], ["poddisruptionbudgets"], WRITE),
        _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], WRITE),
        _rule(["discovery.k8s.io"], ["endpointslices"], WRITE),
        _rule(["coordination.k8s.io"], ["leases"], READ + WRITE),
    ]


def _admin_rules() -> list[Obj]:
    return [
        _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
        _rule([GROUP], ["rolebindings", "roles"], READ + WRITE),
    ]


_DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
                   "/readyz", "/version", "/version/"]


_ISSUER_DISCOVERY_URLS = ["/.well-known/openid-configuration", "/.well-known/openid-configuration/",
                          "/openid/v1/jwks", "/openid/v1/jwks/"]


def default_cluster_roles() -> list[Obj]:
    return deep_copy([
        _role("cluster-admin", [_rule(["*"], ["*"], ["*"]), _url_rule(["*"], ["*"])]),
        _role("admin", aggregate="admin"),
        _role("edit", aggregate="edit", labels={f"{AGG}admin": "true"}),
        _role("view", aggregate="view", labels={f"{AGG}edit": "true"}),
        _role("system:aggregate-to-admin", _admin_rules(), labels={f"{AGG}admin": "true"}),
        _role("system:aggregate-to-edit", _edit_rules(), labels={f"{AGG}edit": "true"}),
        _role("system:aggregate-to-view", _view_rules(), labels={f"{AGG}view": "true"}),
        _role("system:discovery", [_url_rule(_DISCOVERY_URLS, ["get"])]),
        _role("system:public-info-viewer", [_url_rule(["/healthz", "/livez", "/readyz", "/version", "/version/"], ["get"])]),
        _role("system:service-account-issuer-discovery", [_url_rule(_ISSUER_DISCOVERY_URLS, ["get"])]),
        _role("system:node-bootstrapper", [
            _rule(["certificates.k8s.io"], ["certificatesigningrequests"], ["create", "get", "list", "watch"]),
        ]),
        _role("system:basic-user", [
            _rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], ["create"]),
            _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"]),
        ]),
    ])


def default_cluster_role_bindings() -> list[Obj]:
    return [
        _binding("cluster-admin", "cluster-admin", ["system:masters"]),
        _binding("system:discovery", "system:discovery", ["system:authenticated"]),
        _binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
        _binding("system:node-bootstrapper", "system:node-bootstrapper", ["system:bootstrappers"]),
        _binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
                 ["system:serviceaccounts"]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 ["system:authenticated", "system:unauthenticated"]),
    ]
