"""Request → authorization attributes, the way Kubernetes' RequestInfo does it.

Parsed from the path alone (no registry), so the authorizer can run before
routing and refuse a request for a resource that does not exist without
telling an unauthorized caller whether it exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from corral.api.auth import User

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True, slots=True)
class Attributes:
    user: User
    verb: str
    resource_request: bool
    path: str = ""
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    def qualified_resource(self) -> str:
        """Kubernetes' GroupResource string: ``secrets``, ``deployments.apps``."""
        return f"{self.resource}.{self.api_group}" if self.api_group else self.resource


def _resource_verb(method: str, has_name: bool, query: Mapping[str, str]) -> str:
    if method in ("GET", "HEAD"):
        if has_name:
            return "get"
        return "watch" if query.get("watch") in ("1", "true", "True") else "list"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return _VERBS.get(method, method.lower())


def _name_from_field_selector(query: Mapping[str, str]) -> str:
    """A list or watch of one object by ``metadata.name=X`` is authorized
    against X, so resourceNames rules can allow watching a single object."""
    raw = query.get("fieldSelector") or ""
    for term in raw.split(","):
        key, sep, value = term.partition("=")
        if sep and key.strip() == "metadata.name":
            return value.lstrip("=").strip()
    return ""


def request_attributes(user: User, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        rest = []
    if not rest:
        return Attributes(user, method.lower(), False, path=path)
    if rest[0] == "watch":  # the deprecated /watch/ prefix
        rest, query = rest[1:], {**query, "watch": "true"}
        if not rest:
            return Attributes(user, method.lower(), False, path=path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    verb = _resource_verb(method, bool(name), query)
    if verb in ("list", "watch") and not name:
        name = _name_from_field_selector(query)
    return Attributes(user, verb, True, path=path, namespace=namespace, api_group=group,
                      api_version=version, resource=resource, subresource=subresource, name=name)


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """Kubernetes' wording, so clients and people see the familiar sentence."""
    user = attrs.user.name
    if not attrs.resource_request:
        msg = f'forbidden: User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    else:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        what = f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}"'
        where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
        head = attrs.qualified_resource()
        head = f'{head} "{attrs.name}"' if attrs.name else head
        msg = f"{head} is forbidden: {what} {where}"
    return f"{msg}: {reason}" if reason else msg
