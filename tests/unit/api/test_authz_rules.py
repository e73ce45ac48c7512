"""RBAC matching, request attributes, Kubernetes' refusal sentence and the
default roles' aggregation, as pure logic."""

from __future__ import annotations

import pytest

from corral.api.auth import User
from corral.api.authz.attributes import Attributes, forbidden_message, request_attributes
from corral.api.authz.chain import Authorizer
from corral.api.authz.defaults import default_cluster_role_bindings, default_cluster_roles
from corral.api.authz.rbac import PREFIX, RbacPolicy
from corral.api.authz.rules import Rule, covers

ALICE = User("alice", "", ("system:authenticated",))


def _attrs(verb: str, resource: str, *, ns: str = "", group: str = "", sub: str = "", name: str = "") -> Attributes:
    return Attributes(ALICE, verb, True, namespace=ns, api_group=group, resource=resource, subresource=sub, name=name)


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/api/v1/namespaces/a/pods", {}, ("list", "a", "", "pods", "", "")),
    ("GET", "/api/v1/namespaces/a/pods", {"watch": "true"}, ("watch", "a", "", "pods", "", "")),
    ("GET", "/api/v1/namespaces/a/pods/p/log", {}, ("get", "a", "", "pods", "log", "p")),
    ("DELETE", "/apis/apps/v1/namespaces/a/deployments", {}, ("deletecollection", "a", "apps", "deployments", "", "")),
    ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale", {}, ("patch", "a", "apps", "deployments", "scale", "d")),
    ("GET", "/api/v1/namespaces/a", {}, ("get", "a", "", "namespaces", "", "a")),
    ("PUT", "/api/v1/namespaces/a/finalize", {}, ("update", "a", "", "namespaces", "finalize", "a")),
    ("GET", "/api/v1/nodes", {"fieldSelector": "metadata.name=n1"}, ("list", "", "", "nodes", "", "n1")),
    ("POST", "/api/v1/namespaces/a/serviceaccounts/bot/token", {}, ("create", "a", "", "serviceaccounts", "token", "bot")),
])
def test_request_attributes(method: str, path: str, query: dict[str, str], expected: tuple[str, ...]) -> None:
    a = request_attributes(ALICE, method, path, query)
    assert a.resource_request
    assert (a.verb, a.namespace, a.api_group, a.resource, a.subresource, a.name) == expected


def test_non_resource_paths() -> None:
    for path in ("/version", "/healthz", "/apis", "/api", "/openapi/v3/apis/apps/v1"):
        a = request_attributes(ALICE, "GET", path, {})
        assert not a.resource_request and a.verb == "get"


def test_forbidden_sentences() -> None:
    assert forbidden_message(_attrs("list", "secrets", ns="team-a")) == (
        'secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "team-a"')
    assert forbidden_message(_attrs("get", "deployments", group="apps", ns="b", name="d", sub="scale")) == (
        'deployments.apps "d" is forbidden: User "alice" cannot get resource "deployments/scale" '
        'in API group "apps" in the namespace "b"')
    assert forbidden_message(_attrs("list", "nodes")).endswith("at the cluster scope")
    nonres = Attributes(ALICE, "get", False, path="/metrics")
    assert forbidden_message(nonres) == 'forbidden: User "alice" cannot get path "/metrics"'


def test_rule_matching_follows_kubernetes() -> None:
    pods = Rule.compile({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]})
    assert pods is not None
    assert pods.allows(_attrs("get", "pods", ns="x"))
    assert not pods.allows(_attrs("get", "pods", ns="x", sub="log"))  # pods does not grant pods/log
    assert not pods.allows(_attrs("delete", "pods"))
    assert not pods.allows(_attrs("get", "pods", group="apps"))
    scale = Rule.compile({"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]})
    assert scale is not None and scale.allows(_attrs("update", "deployments", group="apps", sub="scale"))
    named = Rule.compile({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"], "verbs": ["get", "list"]})
    assert named is not None
    assert named.allows(_attrs("get", "configmaps", name="one"))
    assert not named.allows(_attrs("get", "configmaps", name="two"))
    assert not named.allows(_attrs("list", "configmaps"))  # a list without a name is not limited to "one"
    urls = Rule.compile({"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]})
    assert urls is not None
    assert urls.allows(Attributes(ALICE, "get", False, path="/apis/apps"))
    assert not urls.allows(Attributes(ALICE, "get", False, path="/metrics"))
    assert not urls.allows(_attrs("get", "pods"))


def test_covers_for_escalation() -> None:
    admin = (Rule.compile({"apiGroups": ["", "apps"], "resources": ["*"], "verbs": ["get", "list"]}),)
    assert covers(admin, Rule.compile({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}))  # type: ignore[arg-type]
    assert not covers(admin, Rule.compile({"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}))  # type: ignore[arg-type]
    assert not covers(admin, Rule.compile({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}))  # type: ignore[arg-type]


def _policy(*extra: dict) -> RbacPolicy:
    policy = RbacPolicy()
    objs = {f"{PREFIX}clusterroles/{r['metadata']['name']}": r for r in default_cluster_roles()}
    objs |= {f"{PREFIX}clusterrolebindings/{b['metadata']['name']}": b for b in default_cluster_role_bindings()}
    for obj in extra:
        plural = obj["kind"].lower() + "s"
        ns = obj["metadata"].get("namespace")
        objs[f"{PREFIX}{plural}/{ns + '/' if ns else ''}{obj['metadata']['name']}"] = obj
    policy.replace_all(objs)
    return policy


def _binding(role: str, user: str, ns: str) -> dict:
    return {"kind": "RoleBinding", "metadata": {"name": f"{user}-{role}", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}


def test_default_roles_aggregate_view_into_edit_into_admin() -> None:
    roles = _policy().cluster_role_rules()

    def grants(role: str, verb: str, resource: str, group: str = "") -> bool:
        return any(r.allows(_attrs(verb, resource, group=group, ns="x")) for r in roles[role])

    assert grants("view", "list", "pods") and not grants("view", "get", "secrets")
    assert grants("edit", "list", "pods") and grants("edit", "create", "secrets")
    assert not grants("edit", "create", "rolebindings", "rbac.authorization.k8s.io")
    assert grants("admin", "create", "rolebindings", "rbac.authorization.k8s.io") and grants("admin", "get", "secrets")


def test_policy_decisions_and_cache_invalidation() -> None:
    policy = _policy(_binding("view", "alice", "team-a"))
    authz = Authorizer(_Rbac(policy))
    assert authz.authorize(_attrs("list", "pods", ns="team-a"))[0]
    assert not authz.authorize(_attrs("list", "secrets", ns="team-a"))[0]
    assert not authz.authorize(_attrs("list", "pods", ns="team-b"))[0]
    assert authz.authorize(Attributes(ALICE, "get", False, path="/apis"))[0]  # system:discovery
    policy.put(f"{PREFIX}rolebindings/team-b/alice-edit", _binding("edit", "alice", "team-b"))
    assert authz.authorize(_attrs("create", "secrets", ns="team-b"))[0]
    policy.remove(f"{PREFIX}rolebindings/team-b/alice-edit")
    assert not authz.authorize(_attrs("create", "secrets", ns="team-b"))[0]
    root = User("root", "", ("system:masters",))
    assert authz.authorize(Attributes(root, "delete", True, resource="nodes"))[0]


class _Rbac:
    def __init__(self, policy: RbacPolicy) -> None:
        self.policy = policy

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        return self.policy.allows(attrs), ""
