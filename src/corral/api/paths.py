"""Resolving a request path to (kind, namespace, name, subresource)."""

from __future__ import annotations

from dataclasses import dataclass

from corral.api.errors import NotFound
from corral.resources.registry import Registry
from corral.resources.types import ResourceType


@dataclass(frozen=True, slots=True)
class Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def is_collection(self) -> bool:
        return self.name is None


def _unknown(path: str) -> NotFound:
    return NotFound(f"the server could not find the requested resource ({path})")


def resolve(registry: Registry, group: str, version: str, segments: list[str], path: str) -> Target:
    """Segments after ``/api/v1`` or ``/apis/G/V``.

    ``namespaces/X/pods/Y`` is a namespaced path, but ``namespaces/X`` and
    ``namespaces/X/status`` name the Namespace X itself; the third segment
    decides which, by whether it is a namespaced resource of this version.
    """
    segs = [s for s in segments if s]
    if len(segs) >= 3 and segs[0] == "namespaces":
        rt = registry.lookup(group, version, segs[2])
        if rt is not None and rt.namespaced:
            if len(segs) > 5:
                raise _unknown(path)
            name = segs[3] if len(segs) >= 4 else None
            sub = segs[4] if len(segs) == 5 else None
            if sub is not None and sub not in rt.subresources:
                raise _unknown(path)
            return Target(rt, segs[1], name, sub)
    if not segs or len(segs) > 3:
        raise _unknown(path)
    rt = registry.lookup(group, version, segs[0])
    if rt is None:
        raise _unknown(path)
    name = segs[1] if len(segs) >= 2 else None
    sub = segs[2] if len(segs) == 3 else None
    if name is not None and rt.namespaced:
        raise _unknown(path)  # a namespaced kind needs its namespace in the path
    if sub is not None and sub not in rt.subresources:
        raise _unknown(path)
    return Target(rt, None, name, sub)
