"""The RBAC authorizer over an in-memory copy of every role and binding.

The copy is filled by one list and kept current by one watch on the RBAC
prefix of the store (in-process, so a new binding takes effect within
milliseconds). Each user's effective rules are compiled once and cached;
any change to a role or binding drops the cache. A decision for a cached
user is a dictionary look-up and a few set tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from corral.api.auth import User
from corral.api.authz.attributes import Attributes
from corral.api.authz.rules import Rule, compile_rules
from corral.api.selectors import labels_match, selector_from_label_selector
from corral.store.protocol import CompactedError, EventType, Store

log = logging.getLogger(__name__)

PREFIX = "/registry/rbac.authorization.k8s.io/"
MAX_CACHED_USERS = 4096
MAX_CACHED_DECISIONS = 65536
Obj = dict[str, Any]


@dataclass(slots=True)
class UserRules:
    """What one user may do: rules that hold everywhere and rules per namespace."""

    cluster: tuple[Rule, ...] = ()
    namespaced: dict[str, tuple[Rule, ...]] = field(default_factory=dict)

    def rules_for(self, namespace: str) -> tuple[Rule, ...]:
        return self.cluster + self.namespaced.get(namespace, ()) if namespace else self.cluster


def subject_matches(subject: Any, user: User) -> bool:
    if not isinstance(subject, dict):
        return False
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        return user.name == f"system:serviceaccount:{subject.get('namespace')}:{name}"
    return False


class RbacPolicy:
    """Roles and bindings by key, and the rules they give each user."""

    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}
        self._cluster_roles: dict[str, tuple[Rule, ...]] | None = None
        self._users: OrderedDict[tuple[str, tuple[str, ...]], UserRules] = OrderedDict()
        self._decisions: dict[tuple[Any, ...], bool] = {}
        self.generation = 0

    # -- updates -----------------------------------------------------------

    def replace_all(self, objects: dict[str, Obj]) -> None:
        self.objects = objects
        self._changed()

    def put(self, key: str, obj: Obj) -> None:
        self.objects[key] = obj
        self._changed()

    def remove(self, key: str) -> None:
        self.objects.pop(key, None)
        self._changed()

    def _changed(self) -> None:
        self._cluster_roles = None
        self._users.clear()
        self._decisions.clear()
        self.generation += 1

    # -- role resolution -----------------------------------------------------

    def _of(self, plural: str) -> list[tuple[str, Obj]]:
        head = f"{PREFIX}{plural}/"
        return [(k[len(head):], o) for k, o in self.objects.items() if k.startswith(head)]

    def cluster_role_rules(self) -> dict[str, tuple[Rule, ...]]:
        """Every ClusterRole's effective rules, aggregation applied (chains
        like admin ← edit ← view included, cycles cut)."""
        if self._cluster_roles is None:
            roles = dict(self._of("clusterroles"))
            done: dict[str, tuple[Rule, ...]] = {}
            for name in roles:
                self._effective(name, roles, done, set())
            self._cluster_roles = done
        return self._cluster_roles

    def _effective(self, name: str, roles: dict[str, Obj], done: dict[str, tuple[Rule, ...]],
                   visiting: set[str]) -> tuple[Rule, ...]:
        if name in done:
            return done[name]
        role = roles.get(name)
        if role is None or name in visiting:
            return ()
        visiting.add(name)
        rules = compile_rules(role.get("rules"))
        agg = role.get("aggregationRule")
        if isinstance(agg, dict):
            # The gathered rules replace the role's own, as the aggregation
            # controller overwrites them, so a rule dropped upstream goes away.
            gathered: list[Rule] = []
            for other in self.aggregated_into(role, roles):
                gathered.extend(r for r in self._effective(other, roles, done, visiting) if r not in gathered)
            rules = tuple(gathered)
        visiting.discard(name)
        done[name] = rules
        return rules

    @staticmethod
    def aggregated_into(role: Obj, roles: dict[str, Obj]) -> list[str]:
        """Names of the ClusterRoles an aggregating role gathers, sorted."""
        name = (role.get("metadata") or {}).get("name")
        selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        matched = []
        for other_name, other in sorted(roles.items()):
            if other_name == name:
                continue
            labels = (other.get("metadata") or {}).get("labels") or {}
            for sel in selectors:
                try:
                    if labels_match(selector_from_label_selector(sel), labels):
                        matched.append(other_name)
                        break
                except (ValueError, AttributeError, KeyError, TypeError):
                    continue
        return matched

    def role_rules(self, ref: Any, namespace: str) -> tuple[Rule, ...]:
        if not isinstance(ref, dict):
            return ()
        if ref.get("kind") == "ClusterRole":
            return self.cluster_role_rules().get(str(ref.get("name")), ())
        if ref.get("kind") == "Role" and namespace:
            role = self.objects.get(f"{PREFIX}roles/{namespace}/{ref.get('name')}")
            return compile_rules(role.get("rules")) if role else ()
        return ()

    def rules_of(self, user: User) -> UserRules:
        key = (user.name, user.groups)
        cached = self._users.get(key)
        if cached is not None:
            self._users.move_to_end(key)
            return cached
        cluster: list[Rule] = []
        for _name, crb in self._of("clusterrolebindings"):
            if any(subject_matches(s, user) for s in crb.get("subjects") or []):
                cluster.extend(self.role_rules(crb.get("roleRef"), ""))
        namespaced: dict[str, list[Rule]] = {}
        for nsname, rb in self._of("rolebindings"):
            if any(subject_matches(s, user) for s in rb.get("subjects") or []):
                ns = nsname.partition("/")[0]
                namespaced.setdefault(ns, []).extend(self.role_rules(rb.get("roleRef"), ns))
        compiled = UserRules(tuple(cluster), {ns: tuple(r) for ns, r in namespaced.items()})
        self._users[key] = compiled
        if len(self._users) > MAX_CACHED_USERS:
            self._users.popitem(last=False)
        return compiled

    def allows(self, attrs: Attributes) -> bool:
        """Decisions are remembered until the next RBAC change: the same user
        asking the same thing (an informer's re-list, a controller's updates)
        costs one dictionary look-up."""
        u = attrs.user
        key = (u.name, u.groups, attrs.verb, attrs.namespace, attrs.api_group, attrs.resource,
               attrs.subresource, attrs.name, attrs.path if not attrs.resource_request else "")
        decision = self._decisions.get(key)
        if decision is None:
            rules = self.rules_of(u)
            decision = any(r.allows(attrs) for r in rules.rules_for(attrs.namespace))
            if len(self._decisions) >= MAX_CACHED_DECISIONS:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision


class RbacAuthorizer:
    """Keeps an :class:`RbacPolicy` in step with the store and answers from it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.policy = RbacPolicy()
        self.revision = 0
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Any] = []

    def on_change(self, callback: Any) -> None:
        """``callback(policy)`` after every change (the aggregation writer uses it)."""
        self._listeners.append(callback)

    async def start(self) -> None:
        await self._relist()
        self._task = asyncio.create_task(self._follow(), name="rbac-policy-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    async def _relist(self) -> None:
        result = await self.store.list(PREFIX)
        objects = {kv.key: orjson.loads(kv.value) for kv in result.items}
        self.policy.replace_all(objects)
        self.revision = result.revision
        self._notify()

    async def _follow(self) -> None:
        while True:
            watch = self.store.watch(PREFIX, self.revision)
            try:
                async for event in watch:
                    if event.type is EventType.DELETE:
                        self.policy.remove(event.kv.key)
                    else:
                        self.policy.put(event.kv.key, orjson.loads(event.kv.value))
                    self.revision = event.kv.mod_revision
                    self._notify()
                await asyncio.sleep(0.5)  # the store ended the watch (closing): do not spin
            except CompactedError:
                log.info("rbac: watch history compacted, re-listing")
                await self._relist()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("rbac: policy watch failed; re-listing in 1s")
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    await self._relist()
            finally:
                await watch.close()

    def _notify(self) -> None:
        for callback in self._listeners:
            try:
                callback(self.policy)
            except Exception:
                log.exception("rbac: change listener failed")

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        if self.policy.allows(attrs):
            return True, "allowed by RBAC"
        return False, ""
