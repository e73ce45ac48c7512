"""JSON Patch (RFC 6902) as the API server applies it."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.api.errors import BadRequest, Invalid, RequestEntityTooLarge
from corral.api.patch.json_patch import apply_json_patch, parse_pointer

DOC = {"metadata": {"name": "web", "labels": {"a/b": "1", "m~n": "2"}},
       "spec": {"replicas": 1, "items": ["x", "y", "z"]}}


def test_add_replace_remove_in_order() -> None:
    ops = [
        {"op": "add", "path": "/metadata/labels/new", "value": "v"},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "remove", "path": "/spec/items/0"},
        {"op": "add", "path": "/spec/items/-", "value": "end"},
        {"op": "add", "path": "/spec/items/0", "value": "start"},
    ]
    out = apply_json_patch(DOC, ops)
    assert out["metadata"]["labels"]["new"] == "v"
    assert out["spec"] == {"replicas": 3, "items": ["start", "y", "z", "end"]}


def test_input_is_never_modified() -> None:
    before = copy.deepcopy(DOC)
    apply_json_patch(DOC, [{"op": "add", "path": "/spec/items/-", "value": {"k": 1}}])
    assert DOC == before


def test_pointer_escapes() -> None:
    assert parse_pointer("/metadata/labels/a~1b") == ["metadata", "labels", "a/b"]
    out = apply_json_patch(DOC, [
        {"op": "replace", "path": "/metadata/labels/a~1b", "value": "x"},
        {"op": "remove", "path": "/metadata/labels/m~0n"},
    ])
    assert out["metadata"]["labels"] == {"a/b": "x"}


def test_move_and_copy() -> None:
    out = apply_json_patch(DOC, [
        {"op": "copy", "from": "/spec/items/2", "path": "/spec/first"},
        {"op": "move", "from": "/metadata/labels", "path": "/spec/labels"},
    ])
    assert out["spec"]["first"] == "z"
    assert "labels" not in out["metadata"]
    assert out["spec"]["labels"] == DOC["metadata"]["labels"]


def test_move_into_own_child_is_invalid() -> None:
    with pytest.raises(Invalid):
        apply_json_patch(DOC, [{"op": "move", "from": "/spec", "path": "/spec/inner"}])


def test_failed_test_fails_the_whole_patch_and_names_the_operation() -> None:
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "test", "path": "/metadata/name", "value": "other"},
    ]
    with pytest.raises(Invalid) as exc:
        apply_json_patch(DOC, ops)
    assert "operation 1" in exc.value.message and "/metadata/name" in exc.value.message
    assert exc.value.code == 422


def test_test_is_type_strict() -> None:
    apply_json_patch(DOC, [{"op": "test", "path": "/spec/replicas", "value": 1}])
    with pytest.raises(Invalid):
        apply_json_patch(DOC, [{"op": "test", "path": "/spec/replicas", "value": True}])


@pytest.mark.parametrize("op", [
    {"op": "remove", "path": "/spec/missing"},
    {"op": "replace", "path": "/nope/deeper", "value": 1},
    {"op": "add", "path": "/spec/items/4", "value": 1},
    {"op": "remove", "path": "/spec/items/3"},
    {"op": "add", "path": "/spec/items/01", "value": 1},
    {"op": "add", "path": "/spec/replicas/x", "value": 1},
    {"op": "copy", "from": "/spec/none", "path": "/x"},
])
def test_unappliable_operations_are_invalid(op: dict) -> None:
    with pytest.raises(Invalid) as exc:
        apply_json_patch(DOC, [op])
    assert op["path"] in exc.value.message


@pytest.mark.parametrize("ops", [
    {"op": "add"},
    [{"op": "frobnicate", "path": "/x"}],
    [{"op": "add", "path": "/x"}],
    [{"op": "add", "value": 1}],
    [{"op": "move", "path": "/x"}],
    [{"op": "add", "path": "x", "value": 1}],
    ["add"],
])
def test_malformed_patches_are_bad_requests(ops: object) -> None:
    with pytest.raises(BadRequest):
        apply_json_patch(DOC, ops)


def test_too_many_operations() -> None:
    ops = [{"op": "test", "path": "/spec/replicas", "value": 1}] * 10001
    with pytest.raises(RequestEntityTooLarge):
        apply_json_patch(DOC, ops)


def test_replace_root() -> None:
    assert apply_json_patch(DOC, [{"op": "replace", "path": "", "value": {"a": 1}}]) == {"a": 1}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@given(
    doc=st.dictionaries(st.text(max_size=6), json_values, max_size=5),
    key=st.text(max_size=6),
    value=json_values,
)
def test_add_then_remove_is_identity(doc: dict, key: str, value: object) -> None:
    if key in doc:
        return
    pointer = "/" + key.replace("~", "~0").replace("/", "~1")
    out = apply_json_patch(doc, [
        {"op": "add", "path": pointer, "value": value},
        {"op": "remove", "path": pointer},
    ])
    assert out == doc


@given(items=st.lists(json_values, max_size=5), value=json_values, data=st.data())
def test_add_then_remove_in_array_is_identity(items: list, value: object, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(items)))
    doc = {"l": items}
    out = apply_json_patch(doc, [
        {"op": "add", "path": f"/l/{index}", "value": value},
        {"op": "remove", "path": f"/l/{index}"},
    ])
    assert out == doc
