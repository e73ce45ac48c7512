"""Unknown fields a write sent are dropped from what it changed, never from
the maps it shares with the stored version (a status patch shares the pod's
spec, and the watch fan-out's cache holds that version for every watcher)."""

from __future__ import annotations

import copy

from corral.api.prune import prune_unknown
from corral.api.rest import _prune_unshared
from corral.resources.schemas import kind_schema

POD = kind_schema("", "v1", "Pod")


def test_shared_maps_are_left_alone_and_the_rest_is_pruned() -> None:
    stored = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}], "stale": 1},
              "status": {"phase": "Pending"}}
    written = dict(stored)
    written["metadata"] = dict(stored["metadata"])
    written["status"] = {"phase": "Running", "bogus": True}
    written["extra"] = {"x": 1}
    _prune_unshared(written, stored, POD)
    assert written["status"] == {"phase": "Running"}
    assert "extra" not in written
    assert written["spec"] is stored["spec"] and stored["spec"]["stale"] == 1


def test_nothing_shared_prunes_exactly_as_prune_unknown() -> None:
    obj = {"metadata": {"name": "p", "junk": 1}, "spec": {"containers": [{"name": "c", "image": "i", "nope": 2}],
                                                         "zzz": 3},
           "status": {"phase": "Running", "bogus": True}, "extra": 4}
    old = copy.deepcopy(obj)
    expected = copy.deepcopy(obj)
    prune_unknown(expected, POD)
    _prune_unshared(obj, old, POD)
    assert obj == expected


def test_maps_shared_below_the_top_level_are_left_alone() -> None:
    """A merge patch's status shares the maps the patch left alone with the
    stored status: pruning what the client sent must not reach into them."""
    stored = {"metadata": {"name": "p"}, "status": {"phase": "Pending",
                                                    "conditions": [{"type": "Ready", "stale": 1}]}}
    written = dict(stored)
    written["status"] = {**stored["status"], "phase": "Running", "bogus": True}
    before = copy.deepcopy(stored)
    _prune_unshared(written, stored, POD)
    assert written["status"] == {"phase": "Running", "conditions": [{"type": "Ready"}]}
    assert stored == before
