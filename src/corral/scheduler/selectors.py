"""Label selectors (pods) and node selector terms, as Kubernetes defines them.

A pod label selector is matched against one pod's labels; a node selector
term is turned into a boolean mask over all nodes at once from the node
label columns, so a term costs a few vector operations whatever the cluster
size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from corral.scheduler.nodestate import NodeState

Obj = dict[str, Any]


class LabelSelector:
    """metav1.LabelSelector: matchLabels and matchExpressions (In, NotIn,
    Exists, DoesNotExist), all ANDed. An empty selector matches everything;
    a missing one (None) matches nothing, as for pod affinity terms."""

    __slots__ = ("exprs", "key", "anchor")

    def __init__(self, raw: Obj | None) -> None:
        raw = raw or {}
        exprs: list[tuple[str, str, frozenset[str]]] = []
        for k, v in sorted((raw.get("matchLabels") or {}).items()):
            exprs.append((k, "In", frozenset([str(v)])))
        for e in raw.get("matchExpressions") or []:
            op = e.get("operator")
            if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
                raise ValueError(f"labelSelector operator {op!r} is not In, NotIn, Exists or DoesNotExist")
            exprs.append((str(e.get("key")), op, frozenset(map(str, e.get("values") or []))))
        self.exprs = tuple(exprs)
        self.key = tuple((k, op, tuple(sorted(vals))) for k, op, vals in exprs)
        # One (key, value) every matching pod must carry: lets an index skip
        # the pods that cannot match.
        self.anchor = next(((k, next(iter(v))) for k, op, v in exprs if op == "In" and len(v) == 1), None)

    def matches(self, labels: Mapping[str, str]) -> bool:
        for k, op, vals in self.exprs:
            present = k in labels
            if op == "In":
                if not present or labels[k] not in vals:
                    return False
            elif op == "NotIn":
                if present and labels[k] in vals:
                    return False
            elif op == "Exists":
                if not present:
                    return False
            elif present:
                return False
        return True


def _requirement_mask(state: NodeState, req: Obj, fields: bool) -> np.ndarray:
    key, op = str(req.get("key")), req.get("operator")
    values = [str(v) for v in req.get("values") or []]
    n = state.size
    if fields:
        if key != "metadata.name":
            raise ValueError(f"matchFields key {key!r} is not supported (only metadata.name)")
        ids = state.name_ids()
        wanted = np.array([state.index.get(v, -2) for v in values], dtype=np.int32)
        hit = np.isin(ids, wanted)
        if op == "In":
            return hit
        if op == "NotIn":
            return ~hit
        raise ValueError(f"matchFields operator {op!r} is not In or NotIn")
    col = state.labels.column(key)
    if col is None:
        present = np.zeros(n, dtype=bool)
        if op in ("NotIn", "DoesNotExist"):
            return ~present
        if op in ("In", "Exists", "Gt", "Lt"):
            return present
    else:
        ids = col.ids[:n]
        present = ids >= 0
        if op == "Exists":
            return present
        if op == "DoesNotExist":
            return ~present
        if op in ("In", "NotIn"):
            wanted = np.array([col.vocab[v] for v in values if v in col.vocab], dtype=np.int32)
            hit = np.isin(ids, wanted) if len(wanted) else np.zeros(n, dtype=bool)
            return hit if op == "In" else ~hit
        if op in ("Gt", "Lt"):
            if len(values) != 1:
                raise ValueError(f"operator {op} needs exactly one value, got {len(values)}")
            try:
                bound = int(values[0])
            except ValueError:
                raise ValueError(f"operator {op} needs an integer value, got {values[0]!r}") from None
            nums = col.numbers()[np.where(present, ids, 0)]
            with np.errstate(invalid="ignore"):
                cmp = nums > bound if op == "Gt" else nums < bound
            return present & cmp & ~np.isnan(nums)
    raise ValueError(f"node selector operator {op!r} is not In, NotIn, Exists, DoesNotExist, Gt or Lt")


def node_term_mask(state: NodeState, term: Obj) -> np.ndarray:
    """One NodeSelectorTerm: its requirements ANDed; an empty term matches
    no node (Kubernetes' rule)."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return np.zeros(state.size, dtype=bool)
    mask = np.ones(state.size, dtype=bool)
    for req in exprs:
        mask &= _requirement_mask(state, req, fields=False)
    for req in fields:
        mask &= _requirement_mask(state, req, fields=True)
    return mask


def node_selector_mask(state: NodeState, selector: Obj) -> np.ndarray:
    """NodeSelector: terms ORed."""
    mask = np.zeros(state.size, dtype=bool)
    for term in selector.get("nodeSelectorTerms") or []:
        mask |= node_term_mask(state, term)
    return mask


def match_labels_mask(state: NodeState, labels: Mapping[str, str]) -> np.ndarray:
    """spec.nodeSelector: every key equal."""
    mask = np.ones(state.size, dtype=bool)
    for k, v in labels.items():
        col = state.labels.column(k)
        vid = None if col is None else col.vocab.get(str(v))
        if vid is None:
            return np.zeros(state.size, dtype=bool)
        mask &= col.ids[: state.size] == vid  # type: ignore[union-attr]
    return mask
