"""The pruned field diff equals comparing the two full walks."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.api.patch.fielddiff import changed_fields
from corral.api.patch.fieldpath import field_values
from corral.api.patch.managed_fields import compare
from corral.resources.schemas import kind_schema

POD = kind_schema("", "v1", "Pod")
DEPLOYMENT = kind_schema("apps", "v1", "Deployment")

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, 1.0, 1.5]),
                    st.sampled_from(["", "a", "b", "web"]))
names = st.sampled_from(["a", "b", "web", "side"])


def json_values(depth: int = 3) -> st.SearchStrategy[Any]:
    if depth == 0:
        return scalars
    inner = json_values(depth - 1)
    return st.one_of(scalars, st.lists(inner, max_size=3),
                     st.dictionaries(st.sampled_from(["x", "y", "name", "image", "port"]), inner, max_size=3))


containers = st.lists(st.fixed_dictionaries(
    {"name": names},
    optional={"image": st.sampled_from(["i:1", "i:2"]), "args": st.lists(st.sampled_from(["-v", "-q"]), max_size=2),
              "ports": st.lists(st.fixed_dictionaries({"containerPort": st.sampled_from([80, 443])},
                                                      optional={"protocol": st.sampled_from(["TCP", "UDP"])}),
                                max_size=2),
              "env": st.lists(st.fixed_dictionaries({"name": names}, optional={"value": st.sampled_from(["1", "2"])}),
                              max_size=2)}), max_size=3)

pods = st.fixed_dictionaries({
    "metadata": st.fixed_dictionaries({}, optional={
        "labels": st.dictionaries(names, st.sampled_from(["1", "2"]), max_size=2),
        "annotations": st.dictionaries(names, st.sampled_from(["x", ""]), max_size=2),
        "finalizers": st.lists(st.sampled_from(["f1", "f2"]), max_size=2),
        "resourceVersion": st.sampled_from(["1", "2"]),
    }),
    "spec": st.fixed_dictionaries({}, optional={
        "containers": containers,
        "nodeName": st.sampled_from(["", "n1"]),
        "nodeSelector": st.dictionaries(names, st.sampled_from(["1", "2"]), max_size=2),
        "extra": json_values(),
    }),
    "status": json_values(),
})


def full(old: dict, new: dict, schema) -> tuple:
    return compare(field_values(old, schema), field_values(new, schema))


@settings(max_examples=400, deadline=None)
@given(pods, pods)
def test_pruned_diff_equals_full_walk(old: dict, new: dict) -> None:
    assert changed_fields(old, new, POD) == full(old, new, POD)


@settings(max_examples=200, deadline=None)
@given(json_values(4), json_values(4))
def test_schema_less_values(old: Any, new: Any) -> None:
    old, new = {"spec": old}, {"spec": new}
    assert changed_fields(old, new, None) == full(old, new, None)


def test_bool_and_int_are_different_values() -> None:
    assert changed_fields({"spec": {"replicas": 1}}, {"spec": {"replicas": True}}, DEPLOYMENT)[1] == {
        ("f:spec", "f:replicas")}


def test_create_is_all_added() -> None:
    new = {"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"replicas": 2}}
    assert changed_fields({}, new, DEPLOYMENT) == full({}, new, DEPLOYMENT)


@settings(max_examples=300, deadline=None)
@given(json_values(4), json_values(4))
def test_status_only_diff_equals_full_walk(old: Any, new: Any) -> None:
    """What a status write compares: no top-level key a path could be
    ignored under, so the result is not filtered at all."""
    old, new = {"status": old}, {"status": new}
    assert changed_fields(old, new, POD) == full(old, new, POD)
    assert changed_fields({}, new, POD) == full({}, new, POD)
    assert changed_fields(old, {}, POD) == full(old, {}, POD)


condition = st.fixed_dictionaries({"type": st.sampled_from(["Ready", "Initialized"])},
                                  optional={"status": st.sampled_from(["True", "False"]),
                                            "lastTransitionTime": st.sampled_from(["t1", "t2"])})
container_status = st.fixed_dictionaries({}, optional={  # no name: an item without its key
    "name": names, "ready": st.booleans(), "state": st.fixed_dictionaries({}, optional={
        "running": st.fixed_dictionaries({"startedAt": st.sampled_from(["t1", "t2"])})})})
pod_statuses = st.fixed_dictionaries({}, optional={
    "conditions": st.lists(st.one_of(condition, scalars), max_size=3),  # duplicates and scalars included
    "containerStatuses": st.lists(container_status, max_size=3),
    "podIPs": st.lists(st.fixed_dictionaries({"ip": st.sampled_from(["a", "b"])}), max_size=2)})


@settings(max_examples=400, deadline=None)
@given(pod_statuses, pod_statuses)
def test_keyed_lists_compared_item_by_item_equal_the_full_walk(old: dict, new: dict) -> None:
    old, new = {"status": old}, {"status": new}
    assert changed_fields(old, new, POD) == full(old, new, POD)
