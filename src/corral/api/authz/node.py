"""The node authorizer: an agent, known by its certificate as
``system:node:<name>`` in ``system:nodes``, may touch its own Node and Lease,
the pods bound to it, and read only the Secrets, ConfigMaps, volume claims
and ServiceAccounts those pods use.

As in Kubernetes, the relationships come from a graph kept in memory: one
list of pods, then the pod events of the process's watch fan-out (the
stream its pod watchers are served from, api/fanout.py: no second store
watch, and each change decoded once for both), map each pod to its node
and each node to the objects its pods reference. A decision is a few
dictionary look-ups. Requests the authorizer has no rule for are left to
RBAC, where nodes have no bindings by default. A process that serves no
node (the store's owner behind API workers) keeps no graph (``lazy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any

import orjson

from corral.api.auth import User
from corral.api.authz.attributes import Attributes
from corral.api.certs import NODE_GROUP, NODE_PREFIX
from corral.api.errors import Forbidden, TooManyRequests
from corral.api.fanout import ApiEvent, WatchFanout
from corral.resources.types import ResourceType
from corral.store.protocol import CompactedError, KeyValue, Store

log = logging.getLogger(__name__)
PODS = "/registry/core/pods/"
READ = frozenset({"get", "list", "watch"})
Ref = tuple[str, str, str]  # (resource, namespace, name)


def node_name(user: User) -> str | None:
    if NODE_GROUP in user.groups and user.name.startswith(NODE_PREFIX):
        return user.name[len(NODE_PREFIX):]
    return None


def pod_refs(pod: dict[str, Any]) -> set[Ref]:
    """Everything a pod's agent must read to run it."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    ns = str(meta.get("namespace") or "")
    refs: set[Ref] = {("serviceaccounts", ns, str(spec.get("serviceAccountName") or "default"))}
    for s in spec.get("imagePullSecrets") or []:
        if isinstance(s, dict) and s.get("name"):
            refs.add(("secrets", ns, str(s["name"])))
    for vol in spec.get("volumes") or []:
        if not isinstance(vol, dict):
            continue
        if isinstance(vol.get("secret"), dict):
            refs.add(("secrets", ns, str(vol["secret"].get("secretName"))))
        if isinstance(vol.get("configMap"), dict):
            refs.add(("configmaps", ns, str(vol["configMap"].get("name"))))
        if isinstance(vol.get("persistentVolumeClaim"), dict):
            refs.add(("persistentvolumeclaims", ns, str(vol["persistentVolumeClaim"].get("claimName"))))
        for src in (vol.get("projected") or {}).get("sources") or []:
            if isinstance(src, dict):
                for key, res in (("secret", "secrets"), ("configMap", "configmaps")):
                    if isinstance(src.get(key), dict):
                        refs.add((res, ns, str(src[key].get("name"))))
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                refs |= _container_refs(c, ns)
    return refs


def _container_refs(c: dict[str, Any], ns: str) -> set[Ref]:
    refs: set[Ref] = set()
    for env in c.get("env") or []:
        source = (env or {}).get("valueFrom") or {} if isinstance(env, dict) else {}
        if isinstance(source.get("secretKeyRef"), dict):
            refs.add(("secrets", ns, str(source["secretKeyRef"].get("name"))))
        if isinstance(source.get("configMapKeyRef"), dict):
            refs.add(("configmaps", ns, str(source["configMapKeyRef"].get("name"))))
    for src in c.get("envFrom") or []:
        if isinstance(src, dict):
            if isinstance(src.get("secretRef"), dict):
                refs.add(("secrets", ns, str(src["secretRef"].get("name"))))
            if isinstance(src.get("configMapRef"), dict):
                refs.add(("configmaps", ns, str(src["configMapRef"].get("name"))))
    return refs


class NodeGraph:
    """pod → node and node → referenced objects."""

    def __init__(self) -> None:
        self.pod_node: dict[tuple[str, str], str] = {}
        self._pod_refs: dict[tuple[str, str], set[Ref]] = {}
        self.node_refs: dict[str, Counter[Ref]] = {}

    def put(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            self.remove(key)
            return
        refs = pod_refs(pod)
        if self.pod_node.get(key) == node and self._pod_refs.get(key) == refs:
            return  # most changes of a bound pod are status writes: nothing to recount
        self.remove(key)
        self.pod_node[key] = node
        self._pod_refs[key] = refs
        self.node_refs.setdefault(node, Counter()).update(refs)

    def remove(self, key: tuple[str, str]) -> None:
        node = self.pod_node.pop(key, None)
        refs = self._pod_refs.pop(key, set())
        if node is not None:
            counts = self.node_refs.get(node)
            if counts is not None:
                counts.subtract(refs)
                for ref in [r for r, n in counts.items() if n <= 0]:
                    del counts[ref]

    def node_uses(self, node: str, ref: Ref) -> bool:
        return ref in self.node_refs.get(node, ())


class NodeAuthorizer:
    def __init__(self, store: Store, *, lazy: bool = False, fanout: WatchFanout | None = None,
                 pods: ResourceType | None = None) -> None:
        """``lazy``: for a process that may never serve a node, such as the
        store's owner while API worker processes serve the port. Keeping
        the graph means decoding every pod change; lazily that starts with
        the first node request that needs the graph, and such requests are
        answered 429 (retry after a second) until the graph is loaded.

        ``fanout`` and ``pods``: the server's watch fan-out and its pod
        kind; the graph follows the pod events the fan-out hands its pod
        watchers (the same decoded objects, never modified here), so a
        change costs one store watch and one decode in the process. Without
        them the authorizer keeps a fan-out of its own."""
        self.store = store
        self.lazy = lazy
        self.fanout = fanout or WatchFanout()
        self.pods = pods or _pod_kind()
        self.graph = NodeGraph()
        self.revision = 0
        self.loaded = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.lazy:
            return
        await self._relist()
        self._task = asyncio.create_task(self._follow(), name="node-authorizer-graph")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _relist(self) -> None:
        result = await self.store.list(PODS)
        graph = NodeGraph()
        for kv in result.items:
            graph.put(orjson.loads(kv.value))
        self.graph, self.revision = graph, result.revision
        self.loaded = True

    async def _load_then_follow(self) -> None:
        while not self.loaded:
            try:
                await self._relist()
            except Exception:
                log.exception("node authorizer: cannot list pods; retrying in 1s")
                await asyncio.sleep(1.0)
        await self._follow()

    def _graph(self, node: str) -> NodeGraph:
        """The graph, once loaded; until then (lazy) a 429 that starts loading it."""
        if self.loaded:
            return self.graph
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._load_then_follow(),
                                                                 name="node-authorizer-graph")
        raise TooManyRequests(f'the node authorizer is loading the pods of node "{node}"; retry shortly',
                              retry_after=1)

    async def _follow(self) -> None:
        """Apply the fan-out's pod events after the graph's revision, for
        good. Caught up, they are applied as the fan-out hands them out (in
        the same turn of the loop as the pod watchers get them, so a node
        that sees its pod bound finds the graph knows it too); behind (a
        replay from the store after a re-list), through the subscription's
        queue. Falling too far behind ends in 410, and a re-list."""
        from corral.api.listwatch import Filter

        while True:
            sub = None
            try:
                sub = await self.fanout.subscribe(self.store, self.pods, None, Filter([], []), self.revision)
                sub.attach(self._apply)
                async for event in sub:
                    self._apply(event)
                    sub.attach(self._apply)
                await asyncio.sleep(0.5)  # the dispatcher ended quietly: follow a new one
            except CompactedError:
                await self._relist()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node authorizer: pod watch failed; re-listing in 1s")
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    await self._relist()
            finally:
                if sub is not None:
                    await sub.aclose()

    def _apply(self, event: ApiEvent) -> bool:
        """One pod event into the graph (a fan-out sink: always taken)."""
        if event.type == "DELETED":
            meta = event.object.get("metadata") or {}
            self.graph.remove((str(meta.get("namespace")), str(meta.get("name"))))
        else:
            self.graph.put(event.object)
        self.revision = event.revision
        return True

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        node = node_name(attrs.user)
        if node is None or not attrs.resource_request:
            return False, ""
        allowed = self._decide(node, attrs)
        if allowed:
            return True, f'node "{node}" may {attrs.verb} its own {attrs.resource}'
        return False, f'node "{node}" has no relationship to this object'

    def _decide(self, node: str, a: Attributes) -> bool:
        res, verb, g = a.resource, a.verb, a.api_group
        if g == "" and res == "nodes":  # nodes/proxy (another agent's API) is never a node's
            return a.subresource in ("", "status") and (verb in READ or a.name == node or (verb == "create" and not a.name))
        if g == "coordination.k8s.io" and res == "leases":
            return a.namespace == "kube-node-lease" and (a.name == node or (verb == "create" and not a.name))
        if g == "" and res == "pods":
            if verb in ("list", "watch") and not a.subresource:
                return True
            if not a.name or not (verb in ("get", "delete") or a.subresource == "status"):
                return False
            return self._graph(node).pod_node.get((a.namespace, a.name)) == node
        if g in ("", "events.k8s.io") and res == "events":
            return verb in ("create", "patch", "update")
        if g == "" and res in ("secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts"):
            if res == "serviceaccounts" and a.subresource == "token":
                return verb == "create" and self._graph(node).node_uses(node, (res, a.namespace, a.name))
            return verb in READ and bool(a.name) and self._graph(node).node_uses(node, (res, a.namespace, a.name))
        if res in ("services", "endpoints", "endpointslices", "runtimeclasses"):
            return verb in READ
        if g == "certificates.k8s.io" and res == "certificatesigningrequests":
            return verb in ("create", "get", "list", "watch")
        return False


    async def confirm_pod(self, attrs: Attributes) -> bool:
        """A node's request about one pod that the graph refused: is the
        pod, as stored now, bound to that node? The graph follows the store
        a few milliseconds behind, and a node acts on a pod the moment its
        own watch (served, maybe, by another API process) shows it bound;
        Kubernetes decides pod writes against the stored object too
        (NodeRestriction). The graph is left to its watch, which brings the
        same change in order."""
        node = node_name(attrs.user)
        if (node is None or not self.loaded or attrs.api_group != "" or attrs.resource != "pods"
                or not attrs.name or not (attrs.verb in ("get", "delete") or attrs.subresource == "status")):
            return False
        kv = await self.store.get(f"{PODS}{attrs.namespace}/{attrs.name}")
        if kv is None:
            return False
        return (_decode(kv).get("spec") or {}).get("nodeName") == node


def check_node_write(user: User, plural: str, group: str, obj: dict[str, Any]) -> None:
    """NodeRestriction: a node may create only the Node and Lease named after it."""
    node = node_name(user)
    if node is None:
        return
    name = (obj.get("metadata") or {}).get("name")
    if (group, plural) in (("", "nodes"), ("coordination.k8s.io", "leases")) and name != node:
        raise Forbidden(f'{plural} "{name}" is forbidden: node "{node}" may only write its own {plural}',
                        kind=plural, name=str(name or ""), group=group)


def _decode(kv: KeyValue) -> dict[str, Any]:
    pod: dict[str, Any] = orjson.loads(kv.value)
    return pod


def _pod_kind() -> ResourceType:
    """Pods as the fan-out needs them (keys, field values), for an
    authorizer given no server's kinds."""
    from corral.resources.pods import pod_type
    from corral.resources.schema import Schema

    return pod_type(Schema())
