"""The set of kinds one API server serves, with the look-ups handlers need."""

from __future__ import annotations

from collections.abc import Iterable

from corral.resources.types import ResourceType


class Registry:
    def __init__(self, types: Iterable[ResourceType]) -> None:
        self._types: list[ResourceType] = []
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        self._groups: dict[str, list[str]] = {}
        for rt in types:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        path = (rt.group, rt.version, rt.plural)
        if path in self._by_path:
            raise ValueError(f"resource {rt.group}/{rt.version}/{rt.plural} defined twice")
        self._types.append(rt)
        self._by_path[path] = rt
        self._by_kind.setdefault((rt.group, rt.kind), rt)
        versions = self._groups.setdefault(rt.group, [])
        if rt.version not in versions:
            versions.append(rt.version)

    def all(self) -> list[ResourceType]:
        return list(self._types)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((group, kind))

    def groups(self) -> list[tuple[str, list[str]]]:
        """(group, versions with the preferred first); the core group is ""."""
        return [(g, list(v)) for g, v in self._groups.items()]

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types if rt.group == group and rt.version == version]
