"""A container's environment and its ``$(VAR)`` references, as the kubelet
builds them: ``envFrom`` first, then ``env`` in order (later wins), each value
able to refer to variables defined before it."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from corral.agent.downward import DownwardError, resource_value
from corral.client.api import ApiClient
from corral.client.errors import ApiError, NotFoundError
from corral.client.resources import CONFIGMAPS, SECRETS
from corral.runtime.protocol import StartError

CONFIG_ERROR = "CreateContainerConfigError"


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes variable expansion: ``$(NAME)`` becomes its value when
    NAME is defined, ``$$`` escapes a dollar, anything else stays as it is."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env[name] if name in env else text[i : end + 1])
                    i = end + 1
                    continue
        out.append(ch)
        i += 1
    return "".join(out)


def field_value(path: str, pod: dict[str, Any], host_ip: str, pod_ip: str) -> str:
    meta = pod.get("metadata") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "spec.serviceAccount": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((meta.get(source) or {}).get(path[len(prefix) + 2 : -2], ""))
    raise StartError(CONFIG_ERROR, f"fieldRef: unsupported fieldPath {path!r}")


class EnvBuilder:
    def __init__(self, client: ApiClient, allocatable: dict[str, str] | None = None) -> None:
        self.client = client
        self.allocatable = allocatable if allocatable is not None else {}
        """The node's allocatable: what resourceFieldRef reports without a limit."""
        self.network: Callable[[dict[str, Any]], dict[str, str]] | None = None
        """Service and cluster DNS variables for a pod (set by the agent's
        network side); they come before envFrom/env, which may refer to them."""

    async def build(
        self, pod: dict[str, Any], container: dict[str, Any], *, host_ip: str, pod_ip: str
    ) -> dict[str, str]:
        namespace = (pod.get("metadata") or {}).get("namespace", "default")
        env: dict[str, str] = {"HOSTNAME": str((pod.get("metadata") or {}).get("name", ""))}
        if self.network is not None:
            env.update(self.network(pod))
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix") or ""
            for key, value in (await self._source_data(source, namespace)).items():
                env[prefix + key] = value
        for i, var in enumerate(container.get("env") or []):
            name = var.get("name")
            if not isinstance(name, str) or not name:
                raise StartError(CONFIG_ERROR, f"env[{i}].name: must be a non-empty string")
            if "valueFrom" in var:
                value = await self._value_from(
                    var["valueFrom"], pod, container, namespace, host_ip, pod_ip
                )
                if value is None:
                    continue
                env[name] = value
            else:
                env[name] = expand(str(var.get("value") or ""), env)
        return env

    async def _value_from(
        self,
        ref: dict[str, Any],
        pod: dict[str, Any],
        container: dict[str, Any],
        namespace: str,
        host_ip: str,
        pod_ip: str,
    ) -> str | None:
        if "fieldRef" in ref:
            return field_value(str(ref["fieldRef"].get("fieldPath", "")), pod, host_ip, pod_ip)
        for kind, res, decode in (
            ("configMapKeyRef", CONFIGMAPS, False),
            ("secretKeyRef", SECRETS, True),
        ):
            if kind in ref:
                sel = ref[kind]
                data = await self._data(res, str(sel.get("name", "")), namespace, decode, sel)
                if data is None:
                    return None
                key = str(sel.get("key", ""))
                if key not in data:
                    if sel.get("optional"):
                        return None
                    raise StartError(
                        CONFIG_ERROR,
                        f"couldn't find key {key} in {res.kind} {namespace}/{sel.get('name')}",
                    )
                return data[key]
        if "resourceFieldRef" in ref:
            sel = ref["resourceFieldRef"] or {}
            named = sel.get("containerName") or container.get("name")
            spec = pod.get("spec") or {}
            target = next(
                (c for c in spec.get("containers") or [] if c.get("name") == named), None
            )
            if target is None:
                raise StartError(
                    CONFIG_ERROR, f"resourceFieldRef.containerName: no container named {named!r}"
                )
            try:
                return resource_value(sel, target, self.allocatable, "resourceFieldRef")
            except DownwardError as exc:
                raise StartError(CONFIG_ERROR, str(exc)) from None
        raise StartError(CONFIG_ERROR, "valueFrom: needs fieldRef, configMapKeyRef or secretKeyRef")

    async def _source_data(self, source: dict[str, Any], namespace: str) -> dict[str, str]:
        for kind, res, decode in (
            ("configMapRef", CONFIGMAPS, False),
            ("secretRef", SECRETS, True),
        ):
            if kind in source:
                sel = source[kind]
                data = await self._data(res, str(sel.get("name", "")), namespace, decode, sel)
                return data or {}
        raise StartError(CONFIG_ERROR, "envFrom: needs configMapRef or secretRef")

    async def _data(
        self, res: Any, name: str, namespace: str, decode: bool, sel: dict[str, Any]
    ) -> dict[str, str] | None:
        try:
            obj = await self.client.get(res, name, namespace)
        except NotFoundError:
            if sel.get("optional"):
                return None
            raise StartError(CONFIG_ERROR, f'{res.kind.lower()} "{name}" not found') from None
        except ApiError as exc:
            raise StartError(CONFIG_ERROR, f"reading {res.kind} {name}: {exc.message}") from exc
        raw = obj.get("data") or {}
        if not decode:
            return {str(k): str(v) for k, v in raw.items()}
        out = {}
        for key, value in raw.items():
            try:
                out[str(key)] = base64.b64decode(value).decode("utf-8", "replace")
            except (ValueError, TypeError):
                raise StartError(CONFIG_ERROR, f"secret {name}: key {key} is not base64") from None
        return out


def expand_command(container: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """The container with ``$(VAR)`` references in command/args resolved."""
    out = dict(container)
    for field in ("command", "args"):
        if container.get(field):
            out[field] = [expand(str(a), env) for a in container[field]]
    return out
