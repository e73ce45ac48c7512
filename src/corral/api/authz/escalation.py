"""RBAC's escalation check: no one grants what they do not hold.

Creating or changing a Role/ClusterRole needs every one of its rules to be
held by the writer already (or the ``escalate`` verb on roles); creating a
binding needs the bound role's rules (or the ``bind`` verb on that role).
Without this, ``admin`` in one namespace could make itself cluster-admin.
"""

from __future__ import annotations

from typing import Any

from corral.api.auth import User
from corral.api.authz.attributes import Attributes
from corral.api.authz.chain import Authorizer
from corral.api.authz.rules import Rule, compile_rules, covers
from corral.api.errors import Forbidden

GROUP = "rbac.authorization.k8s.io"
ROLE_KINDS = {"roles": "Role", "clusterroles": "ClusterRole"}
BINDING_KINDS = {"rolebindings": "RoleBinding", "clusterrolebindings": "ClusterRoleBinding"}


def _allowed(authz: Authorizer, user: User, verb: str, resource: str, name: str, namespace: str) -> bool:
    attrs = Attributes(user, verb, True, namespace=namespace, api_group=GROUP, resource=resource, name=name)
    return authz.authorize(attrs)[0]


def _held(authz: Authorizer, user: User, namespace: str) -> tuple[Rule, ...]:
    rbac = authz.deciders[-1]
    return rbac.policy.rules_of(user).rules_for(namespace)


def _refuse(plural: str, name: str, user: User, missing: list[Rule]) -> Forbidden:
    listed = ", ".join(str(r.as_dict()) for r in missing[:10])
    return Forbidden(
        f'{plural}.{GROUP} "{name}" is forbidden: user "{user.name}" (groups={list(user.groups)}) is attempting '
        f"to grant RBAC permissions not currently held: {listed}",
        kind=plural, name=name, group=GROUP,
    )


def check_rbac_write(authz: Authorizer, user: User, plural: str, namespace: str, obj: dict[str, Any]) -> None:
    """Raise Forbidden if ``user`` may not write ``obj`` (a role or binding)."""
    if authz.authorize(Attributes(user, "*", True, namespace=namespace, resource="*", api_group="*"))[0]:
        return  # holds everything everywhere
    name = str((obj.get("metadata") or {}).get("name") or "")
    if plural in ROLE_KINDS:
        if _allowed(authz, user, "escalate", plural, name, namespace):
            return
        if obj.get("aggregationRule"):
            raise _refuse(plural, name, user, [])
        held = _held(authz, user, namespace)
        missing = [r for r in compile_rules(obj.get("rules")) if not covers(held, r)]
        if missing:
            raise _refuse(plural, name, user, missing)
    elif plural in BINDING_KINDS:
        ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
        ref_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        if _allowed(authz, user, "bind", ref_plural, str(ref.get("name") or ""), namespace):
            return
        rbac = authz.deciders[-1]
        granted = rbac.policy.role_rules(ref, namespace)
        held = _held(authz, user, namespace)
        missing = [r for r in granted if not covers(held, r)]
        if missing:
            raise _refuse(plural, name, user, missing)
