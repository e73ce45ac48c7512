"""JSON merge patch (RFC 7386) and its inverse."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from corral.api.patch.merge_patch import merge_diff, merge_patch


def test_rfc7386_examples() -> None:
    cases = [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ]
    for target, patch, expected in cases:
        assert merge_patch(target, patch) == expected


def test_kubectl_scale_body() -> None:
    deploy = {"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}}}
    out = merge_patch(deploy, {"spec": {"replicas": 5}})
    assert out == {"spec": {"replicas": 5, "selector": {"matchLabels": {"app": "web"}}}}


def test_inputs_untouched_and_output_shares_nothing() -> None:
    target = {"a": {"b": [1, {"c": 2}]}}
    patch = {"x": {"y": [3]}}
    before_t, before_p = copy.deepcopy(target), copy.deepcopy(patch)
    out = merge_patch(target, patch)
    out["a"]["b"][1]["c"] = 99
    out["x"]["y"].append(4)
    assert target == before_t and patch == before_p


json_scalars = st.booleans() | st.integers() | st.text(max_size=4)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner | st.none(), max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)
documents = st.dictionaries(st.text(max_size=4), json_values, max_size=5)


@given(old=documents, new=documents)
def test_merge_patch_of_a_diff_reproduces_the_target(old: dict, new: dict) -> None:
    assert merge_patch(old, merge_diff(old, new)) == new


@given(doc=documents)
def test_diff_of_equal_documents_is_empty(doc: dict) -> None:
    assert merge_diff(doc, copy.deepcopy(doc)) == {}
