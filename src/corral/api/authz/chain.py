"""The authorizers in order, impersonation, and the 403 a refusal becomes.

Like Kubernetes: ``system:masters`` is always allowed (so the admin token
can never lock itself out), then the node authorizer speaks for agents,
then RBAC. The first that allows wins; nothing allows → 403 with
Kubernetes' sentence naming the user, verb, resource and namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from corral.api.auth import User
from corral.api.authz.attributes import Attributes, forbidden_message, request_attributes
from corral.api.errors import Forbidden

SUPERUSER_GROUP = "system:masters"


class Decider(Protocol):
    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason); a refusal's reason may be empty ("no opinion")."""


class Authorizer:
    def __init__(self, *deciders: Decider) -> None:
        self.deciders = deciders

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        if SUPERUSER_GROUP in attrs.user.groups:
            return True, f"{SUPERUSER_GROUP} may do anything"
        reasons = []
        for decider in self.deciders:
            allowed, reason = decider.authorize(attrs)
            if allowed:
                return True, reason
            if reason:
                reasons.append(reason)
        return False, "; ".join(reasons)

    def check(self, user: User, method: str, path: str, query: Mapping[str, str]) -> Attributes:
        attrs = request_attributes(user, method, path, query)
        allowed, reason = self.authorize(attrs)
        if not allowed:
            raise forbidden(attrs, reason)
        return attrs

    def impersonate(self, user: User, headers: Mapping[str, str] | Any) -> User:
        """Apply ``Impersonate-*`` headers (``kubectl --as``), after checking the
        real user may impersonate each named identity."""
        name = headers.get("Impersonate-User")
        groups = tuple(headers.getall("Impersonate-Group", ())) if hasattr(headers, "getall") else ()
        if not name:
            if groups:
                raise Forbidden("requested impersonation of groups without a user")
            return user
        checks = [("users", name, "")]
        if name.startswith("system:serviceaccount:"):
            ns, _, sa = name[len("system:serviceaccount:"):].partition(":")
            checks = [("serviceaccounts", sa, ns)]
        checks += [("groups", g, "") for g in groups]
        for resource, target, ns in checks:
            attrs = Attributes(user, "impersonate", True, namespace=ns, resource=resource, name=target)
            allowed, reason = self.authorize(attrs)
            if not allowed:
                raise forbidden(attrs, reason)
        if name.startswith("system:serviceaccount:"):
            ns = name.split(":")[2]
            groups = (*groups, "system:serviceaccounts", f"system:serviceaccounts:{ns}")
        return User(name, headers.get("Impersonate-Uid", ""), groups).with_authenticated()


def forbidden(attrs: Attributes, reason: str = "") -> Forbidden:
    if not attrs.resource_request:
        return Forbidden(forbidden_message(attrs, reason))
    return Forbidden(forbidden_message(attrs, reason), kind=attrs.resource, name=attrs.name,
                     group=attrs.api_group)
