from corral.clock import FakeClock
from corral.controllers.expectations import Expectations
from corral.controllers.garbagecollector import OwnerState, blocking_dependents, dangling_decision
from corral.controllers.namespace import remaining_finalizers
from corral.controllers.objects import matches_selector, selector_string


def refs(*uids):
    return [{"uid": u, "kind": "ReplicaSet", "name": u} for u in uids]


def test_dangling_decisions():
    P, A, U = OwnerState.PRESENT, OwnerState.ABSENT, OwnerState.UNKNOWN
    assert dangling_decision(refs("a"), {"a": A}) == "delete"
    assert dangling_decision(refs("a", "b"), {"a": A, "b": P}) == "strip"
    assert dangling_decision(refs("a", "b"), {"a": A, "b": A}) == "delete"
    assert dangling_decision(refs("a"), {"a": P}) == "keep"
    assert dangling_decision(refs("a"), {"a": U}) == "keep"
    assert dangling_decision([], {}) == "keep"


def test_blocking_dependents():
    deps = [{"metadata": {"name": "x", "ownerReferences": [{"uid": "o", "blockOwnerDeletion": True}]}},
            {"metadata": {"name": "y", "ownerReferences": [{"uid": "o"}]}},
            {"metadata": {"name": "z", "ownerReferences": [{"uid": "other", "blockOwnerDeletion": True}]}}]
    assert [d["metadata"]["name"] for d in blocking_dependents("o", deps)] == ["x"]


def test_selectors():
    sel = {"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "DoesNotExist"}]}
    assert matches_selector(sel, {"app": "web", "tier": "a"})
    assert not matches_selector(sel, {"app": "web", "tier": "c"})
    assert not matches_selector(sel, {"app": "web", "tier": "a", "x": "1"})
    assert not matches_selector({}, {"app": "web"})
    assert selector_string(sel) == "app=web,tier in (a,b),!x"


async def test_expectations_block_until_observed_or_expired():
    clock = FakeClock()
    exp = Expectations(clock, ttl=60)
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.expect_deletions("ns/rs", ["ns/p1"])
    assert not exp.satisfied("ns/rs")
    await clock.advance(61)
    assert exp.satisfied("ns/rs")


def test_namespace_finalizers():
    assert remaining_finalizers({"spec": {"finalizers": ["kubernetes", "x"]}}) == ["x"]
