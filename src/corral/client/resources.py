"""The kinds the client knows how to address, and their REST paths.

A :class:`Resource` is the client's view of a kind: enough to build the
Kubernetes URL for it. Components name what they touch with the module
constants below rather than spelling paths by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """``/api/v1/namespaces/NS/pods/NAME/status`` and friends.

        A namespaced resource without a namespace addresses the collection
        across all namespaces (list/watch only), as in Kubernetes.
        """
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [base]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{_segment(namespace, 'namespace')}")
        elif not self.namespaced and namespace:
            raise ValueError(f"namespace: {self.plural} are cluster-scoped, got {namespace!r}")
        parts.append(self.plural)
        if name is not None:
            parts.append(_segment(name, "name"))
        if subresource:
            if name is None:
                raise ValueError(f"subresource: {subresource!r} needs an object name")
            parts.append(_segment(subresource, "subresource"))
        return "/".join(parts)


def _segment(value: str, field: str) -> str:
    if not value or value in (".", "..") or "/" in value:
        raise ValueError(f"{field}: {value!r} is not a valid path segment")
    return quote(value, safe="")


PODS = Resource("", "v1", "pods", "Pod", True)
NODES = Resource("", "v1", "nodes", "Node", False)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)
SERVICES = Resource("", "v1", "services", "Service", True)
ENDPOINTS = Resource("", "v1", "endpoints", "Endpoints", True)
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", True)
SECRETS = Resource("", "v1", "secrets", "Secret", True)
EVENTS = Resource("", "v1", "events", "Event", True)
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment", True)
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet", True)
DAEMONSETS = Resource("apps", "v1", "daemonsets", "DaemonSet", True)
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet", True)
CONTROLLERREVISIONS = Resource("apps", "v1", "controllerrevisions", "ControllerRevision", True)
JOBS = Resource("batch", "v1", "jobs", "Job", True)
CRONJOBS = Resource("batch", "v1", "cronjobs", "CronJob", True)
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True)
PDBS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True)
RUNTIMECLASSES = Resource("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False)
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True)
ROLEBINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True)
RESOURCEQUOTAS = Resource("", "v1", "resourcequotas", "ResourceQuota", True)
LIMITRANGES = Resource("", "v1", "limitranges", "LimitRange", True)
CERTIFICATESIGNINGREQUESTS = Resource(
    "certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", False)

ALL: tuple[Resource, ...] = (
    PODS,
    NODES,
    NAMESPACES,
    SERVICES,
    ENDPOINTS,
    CONFIGMAPS,
    SECRETS,
    EVENTS,
    SERVICEACCOUNTS,
    LEASES,
    DEPLOYMENTS,
    REPLICASETS,
    RUNTIMECLASSES,
    ROLES,
    ROLEBINDINGS,
    RESOURCEQUOTAS,
    LIMITRANGES,
)


_BY_KIND: dict[tuple[str, str], Resource] = {(res.api_version, res.kind): res for res in reversed(ALL)}
"""(apiVersion, kind) -> resource; reversed so the first of ALL wins, as a walk would."""


def by_kind(api_version: str, kind: str) -> Resource:
    """The resource for an object's ``apiVersion``/``kind`` (e.g. an ownerReference)."""
    res = _BY_KIND.get((api_version, kind))
    if res is None:
        raise KeyError(f"unknown kind {kind!r} in {api_version!r}")
    return res
