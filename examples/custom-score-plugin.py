"""An example custom score plugin for the corral scheduler.

Load it from a scheduler profile (CORRAL_SCHEDULER_CONFIG=profiles.yaml)::

    profiles:
    - schedulerName: default-scheduler
      strategy: spread
      scorePlugins:
      - path: examples/custom-score-plugin.py:PreferLabel
        weight: 2
        args: {label: disktype, value: ssd}

A score plugin has a ``name`` and ``score(cycle, idxs)``: ``idxs`` are the
node slots that passed every filter, and the answer is one number per slot
in 0..100 (higher is better) as a numpy array, or None to abstain. The
framework multiplies it by the profile's weight and adds it to the other
plugins' scores. Read the cluster from ``cycle.state`` (a
:class:`corral.scheduler.nodestate.NodeState`: label columns, allocatable
and requested amounts per resource row) and the pod from ``cycle.cls`` (its
:class:`corral.scheduler.podinfo.PodClass`: labels, requests, spec). Work on
whole arrays: the same call scores 5 or 5,000 nodes.
"""

from __future__ import annotations

import numpy as np

from corral.scheduler.framework import Cycle


class PreferLabel:
    """Prefer nodes carrying ``label=value``; a pod labelled
    ``corral.dev/ignore-preference: "true"`` opts out."""

    name = "PreferLabel"

    def __init__(self, label: str, value: str) -> None:
        if not label:
            raise ValueError("args.label: Required value")
        self.label = label
        self.value = str(value)

    def score(self, cycle: Cycle, idxs: np.ndarray) -> np.ndarray | None:
        if cycle.cls.labels.get("corral.dev/ignore-preference") == "true":
            return None
        column = cycle.state.labels.column(self.label)
        if column is None or self.value not in column.vocab:
            return None  # no node has it: nothing to prefer
        hit = column.ids[idxs] == column.vocab[self.value]
        return hit * 100.0
