"""Compiled RBAC policy rules and their matching.

A rule is compiled once into frozensets so that a decision is a handful of
set look-ups; the matching follows Kubernetes exactly: ``pods`` does not
grant ``pods/log``, ``*/scale`` grants every scale subresource, a non-empty
resourceNames never grants a list without a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral.api.authz.attributes import Attributes


def _strings(value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str))


@dataclass(frozen=True, slots=True)
class Rule:
    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    names: frozenset[str]
    urls: tuple[str, ...]

    @classmethod
    def compile(cls, rule: Any) -> Rule | None:
        if not isinstance(rule, dict):
            return None
        urls = tuple(u for u in rule.get("nonResourceURLs") or [] if isinstance(u, str))
        return cls(_strings(rule.get("verbs")), _strings(rule.get("apiGroups")),
                   _strings(rule.get("resources")), _strings(rule.get("resourceNames")), urls)

    def allows(self, attrs: Attributes) -> bool:
        if "*" not in self.verbs and attrs.verb not in self.verbs:
            return False
        if not attrs.resource_request:
            return self._url_matches(attrs.path)
        if "*" not in self.groups and attrs.api_group not in self.groups:
            return False
        if not self._resource_matches(attrs.resource, attrs.subresource):
            return False
        return not self.names or attrs.name in self.names

    def _resource_matches(self, resource: str, subresource: str) -> bool:
        res = self.resources
        if "*" in res:
            return True
        if not subresource:
            return resource in res
        return f"{resource}/{subresource}" in res or f"*/{subresource}" in res

    def _url_matches(self, path: str) -> bool:
        for url in self.urls:
            if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
                return True
        return False

    def as_dict(self) -> dict[str, list[str]]:
        if self.urls:
            return {"verbs": sorted(self.verbs), "nonResourceURLs": list(self.urls)}
        out = {"verbs": sorted(self.verbs), "apiGroups": sorted(self.groups), "resources": sorted(self.resources)}
        if self.names:
            out["resourceNames"] = sorted(self.names)
        return out


def compile_rules(rules: Any) -> tuple[Rule, ...]:
    compiled = (Rule.compile(r) for r in rules or [] if isinstance(rules, list))
    return tuple(r for r in compiled if r is not None)


def covers(owned: tuple[Rule, ...], wanted: Rule) -> bool:
    """Whether the rules ``owned`` grant everything ``wanted`` grants, checked
    as Kubernetes' escalation check does: by breaking ``wanted`` into single
    (verb, group, resource, name) or (verb, url) grants."""
    verbs = wanted.verbs or frozenset({""})
    if wanted.urls:
        return all(any(o.urls and ("*" in o.verbs or v in o.verbs) and _url_covered(o.urls, u) for o in owned)
                   for v in verbs for u in wanted.urls)
    for verb in verbs:
        for group in wanted.groups:
            for resource in wanted.resources:
                for name in wanted.names or frozenset({""}):
                    if not any(_rule_covers(o, verb, group, resource, name) for o in owned):
                        return False
    return True


def _url_covered(urls: tuple[str, ...], url: str) -> bool:
    return any(u == "*" or u == url or (u.endswith("*") and url.startswith(u[:-1])) for u in urls)


def _rule_covers(o: Rule, verb: str, group: str, resource: str, name: str) -> bool:
    if o.urls:
        return False
    if "*" not in o.verbs and verb not in o.verbs:
        return False
    if "*" not in o.groups and group not in o.groups:
        return False
    if "*" not in o.resources and resource not in o.resources:
        sub = resource.partition("/")[2]
        if not (sub and f"*/{sub}" in o.resources):
            return False
    return not o.names or (bool(name) and name in o.names)
