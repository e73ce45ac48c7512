"""Scheduler profiles: which pods (by spec.schedulerName) get which plugins,
scoring strategy and weights.

Profiles come from a YAML file (``corral server --scheduler-config``, or the
``CORRAL_SCHEDULER_CONFIG`` environment variable)::

    profiles:
    - schedulerName: default-scheduler
      strategy: spread            # spread | binpack | balanced | random
    - schedulerName: batch
      strategy: binpack
      disabled: [PodTopologySpread]
      weights: {TaintToleration: 1}
      scorePlugins:               # your own Python plugins (see docs/scheduler.md)
      - path: examples/custom-score-plugin.py:PreferLabel
        weight: 2
        args: {label: disktype, value: ssd}

Filters are chained cheapest first; a disabled filter is simply skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corral.scheduler.framework import FilterPlugin, Framework, ScorePlugin
from corral.scheduler.plugins.hostports import NodePorts
from corral.scheduler.plugins.interpod import InterPodAffinity
from corral.scheduler.plugins.nodeaffinity import NodeAffinity
from corral.scheduler.plugins.nodename import NodeName
from corral.scheduler.plugins.resources import ResourcesFit, ResourceStrategy
from corral.scheduler.plugins.runtime import RuntimeAvailable
from corral.scheduler.plugins.taints import TaintToleration
from corral.scheduler.plugins.topologyspread import PodTopologySpread
from corral.scheduler.plugins.unschedulable import NodeReady, NodeUnschedulable

DEFAULT_WEIGHTS = {"NodeResourcesFit": 1.0, "NodeAffinity": 2.0, "TaintToleration": 3.0,
                   "InterPodAffinity": 2.0, "PodTopologySpread": 2.0}


def default_filters() -> list[FilterPlugin]:
    # Per-node flags and cached per-class masks first, arithmetic next,
    # pod-counting checks last.
    return [NodeReady(), NodeUnschedulable(), NodeName(), NodeAffinity(), TaintToleration(),
            RuntimeAvailable(), NodePorts(), ResourcesFit(), InterPodAffinity(), PodTopologySpread()]


def load_plugin(path: str, args: dict[str, Any] | None = None) -> Any:
    """``package.module:Class`` or ``some/file.py:Class``, constructed with ``args``."""
    target, sep, attr = path.rpartition(":")
    if not sep or not target or not attr:
        raise ValueError(f"plugin path {path!r}: expected module:Class or file.py:Class")
    if target.endswith(".py"):
        file = Path(target)
        spec = importlib.util.spec_from_file_location(f"corral_plugin_{file.stem.replace('-', '_')}", file)
        if spec is None or spec.loader is None or not file.is_file():
            raise ValueError(f"plugin path {path!r}: no such file {file}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    factory = getattr(module, attr, None)
    if factory is None:
        raise ValueError(f"plugin path {path!r}: {target} has no {attr}")
    plugin = factory(**(args or {}))
    if not callable(getattr(plugin, "score", None)) or not getattr(plugin, "name", None):
        raise ValueError(f"plugin {path!r}: a score plugin needs a name and a score(cycle, idxs) method")
    return plugin


@dataclass
class Profile:
    scheduler_name: str = "default-scheduler"
    strategy: str = "spread"
    weights: dict[str, float] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()
    extra_scores: list[tuple[ScorePlugin, float]] = field(default_factory=list)

    def framework(self, rng: random.Random | None = None) -> Framework:
        filters = [f for f in default_filters() if f.name not in self.disabled]
        by_name = {f.name: f for f in filters}
        w = {**DEFAULT_WEIGHTS, **self.weights}
        scores: list[tuple[ScorePlugin, float]] = [(ResourceStrategy(self.strategy), w["NodeResourcesFit"])]
        for name in ("NodeAffinity", "TaintToleration", "InterPodAffinity", "PodTopologySpread"):
            plugin = by_name.get(name)
            if plugin is not None and w.get(name, 0) > 0:
                scores.append((plugin, w[name]))  # type: ignore[arg-type]
        return Framework(filters, [*scores, *self.extra_scores], rng)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "profiles[0]") -> Profile:
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: must be a mapping")
        strategy = raw.get("strategy", "spread")
        if strategy not in ResourceStrategy.STRATEGIES:
            raise ValueError(f"{where}.strategy: {strategy!r} is not one of "
                             f"{', '.join(ResourceStrategy.STRATEGIES)}")
        weights = raw.get("weights") or {}
        for k, v in weights.items():
            if k not in DEFAULT_WEIGHTS or not isinstance(v, int | float) or v < 0:
                raise ValueError(f"{where}.weights.{k}: must name a score plugin "
                                 f"({', '.join(DEFAULT_WEIGHTS)}) with a weight >= 0")
        extra = []
        for i, p in enumerate(raw.get("scorePlugins") or []):
            if not isinstance(p, dict) or not p.get("path"):
                raise ValueError(f"{where}.scorePlugins[{i}].path: Required value")
            extra.append((load_plugin(p["path"], p.get("args")), float(p.get("weight", 1))))
        return cls(str(raw.get("schedulerName") or "default-scheduler"), strategy,
                   {k: float(v) for k, v in weights.items()}, frozenset(raw.get("disabled") or []),
                   extra)


def load_profiles_file(path: str | Path) -> list[Profile]:
    """Profiles from a YAML file (``--scheduler-config`` or
    CORRAL_SCHEDULER_CONFIG); a ValueError names the file and what is wrong."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"scheduler config {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        return load_profiles(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_profiles(text: str | None) -> list[Profile]:
    """Profiles from YAML text; none given means one default profile."""
    if not text:
        return [Profile()]
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"scheduler config: not valid YAML: {exc}") from None
    raw = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise ValueError("scheduler config: profiles: must be a non-empty list")
    profiles = [Profile.from_dict(p, f"profiles[{i}]") for i, p in enumerate(raw)]
    names = [p.scheduler_name for p in profiles]
    if len(set(names)) != len(names):
        raise ValueError("scheduler config: profiles: schedulerName values must be unique")
    return profiles
