"""Node labels as integer columns: one int32 array per label key holding
each node's value id (-1 when the node lacks the key).

Label selectors on nodes become ``np.isin`` over a column, and a topology
domain (zone, hostname, any key) is simply a column's value id, so counting
pods per domain is one ``np.bincount``.
"""

from __future__ import annotations

import numpy as np


class LabelColumn:
    __slots__ = ("vocab", "values", "ids", "_numbers")

    def __init__(self, capacity: int) -> None:
        self.vocab: dict[str, int] = {}
        self.values: list[str] = []
        self.ids = np.full(capacity, -1, dtype=np.int32)
        self._numbers: np.ndarray | None = None

    def value_id(self, value: str) -> int:
        vid = self.vocab.get(value)
        if vid is None:
            vid = self.vocab[value] = len(self.values)
            self.values.append(value)
            self._numbers = None
        return vid

    def numbers(self) -> np.ndarray:
        """Each value id's integer reading (NaN if not an integer), for Gt/Lt."""
        if self._numbers is None or len(self._numbers) != max(1, len(self.values)):
            out = np.full(max(1, len(self.values)), np.nan)
            for i, v in enumerate(self.values):
                try:
                    out[i] = int(v)
                except ValueError:
                    pass
            self._numbers = out
        return self._numbers

    def grow(self, capacity: int) -> None:
        extra = np.full(capacity - len(self.ids), -1, dtype=np.int32)
        self.ids = np.concatenate([self.ids, extra])


class LabelColumns:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._cols: dict[str, LabelColumn] = {}

    def column(self, key: str) -> LabelColumn | None:
        return self._cols.get(key)

    def keys(self) -> list[str]:
        return list(self._cols)

    def grow(self, capacity: int) -> None:
        for col in self._cols.values():
            col.grow(capacity)
        self.capacity = capacity

    def set(self, idx: int, labels: dict[str, str], old: dict[str, str]) -> None:
        for key in old:
            if key not in labels:
                col = self._cols.get(key)
                if col is not None:
                    col.ids[idx] = -1
        for key, value in labels.items():
            col = self._cols.get(key)
            if col is None:
                col = self._cols[key] = LabelColumn(self.capacity)
            col.ids[idx] = col.value_id(str(value))

    def domains(self, key: str, size: int) -> np.ndarray:
        """Domain id per node for a topology key (-1: node lacks the key)."""
        col = self._cols.get(key)
        if col is None:
            return np.full(size, -1, dtype=np.int32)
        return col.ids[:size]
