"""The create shortcuts give exactly what the general paths give: managedFields
of a create, the uids drawn from a batch of OS randomness, and the JSON depth
bound checked only when a body has enough brackets to break it."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.api.content import MAX_DEPTH, parse_json
from corral.api.errors import BadRequest
from corral.api.patch import update_managed_fields
from corral.api.patch.managed_fields import created_managed_fields
from corral.api.uids import new_uid
from corral.resources.schemas import kind_schema

POD = kind_schema("", "v1", "Pod")
NOW = "2026-11-26T00:00:00Z"

names = st.sampled_from(["a", "b", "web"])
containers = st.lists(st.fixed_dictionaries(
    {"name": names},
    optional={"image": st.sampled_from(["i:1", "i:2"]),
              "ports": st.lists(st.fixed_dictionaries({"containerPort": st.sampled_from([80, 443])},
                                                      optional={"protocol": st.sampled_from(["TCP", "UDP"])}),
                                max_size=2),
              "args": st.lists(st.sampled_from(["-v", "-q"]), max_size=2)}), max_size=3)
pods = st.fixed_dictionaries({
    "metadata": st.fixed_dictionaries({"name": st.just("p")}, optional={
        "labels": st.dictionaries(names, st.sampled_from(["1", "2"]), max_size=2),
        "annotations": st.dictionaries(names, st.sampled_from(["x", ""]), max_size=2),
        "uid": st.just("u"), "generation": st.just(1),
        "managedFields": st.just([]),
    }),
    "spec": st.fixed_dictionaries({}, optional={"containers": containers, "nodeName": st.sampled_from(["", "n1"]),
                                                "nodeSelector": st.dictionaries(names, st.just("1"), max_size=2)}),
    "status": st.fixed_dictionaries({}, optional={"phase": st.just("Pending"), "conditions": st.just([])}),
})


def general(obj: dict[str, Any]) -> list[dict[str, Any]]:
    done = update_managed_fields(None, obj, "kubectl", "Update", "v1", NOW, POD)
    return done.get("metadata", {}).get("managedFields", [])


@settings(max_examples=150, deadline=None)
@given(pods)
def test_create_managed_fields_equal_the_general_path(pod: dict[str, Any]) -> None:
    assert created_managed_fields(pod, "kubectl", "Update", "v1", NOW, POD) == general(pod)


def test_client_supplied_managed_fields_take_the_general_path() -> None:
    pod = {"metadata": {"name": "p", "managedFields": [{"manager": "x", "operation": "Apply", "apiVersion": "v1",
                                                       "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]}}
    assert created_managed_fields(pod, "kubectl", "Update", "v1", NOW, POD) is None


def test_an_object_with_only_identity_has_no_entries() -> None:
    assert created_managed_fields({"metadata": {"name": "ns"}}, "m", "Update", "v1", NOW, None) == []


def test_uids_are_canonical_random_version_4_and_distinct() -> None:
    uids = [new_uid() for _ in range(3000)]  # crosses several batches
    assert len(set(uids)) == len(uids)
    for text in uids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


def test_json_bodies_nested_too_deep_are_refused_whatever_the_shortcut() -> None:
    def nested(depth: int) -> bytes:
        return b'{"a":' * depth + b"1" + b"}" * depth

    assert parse_json(nested(MAX_DEPTH))["a"]["a"]["a"]
    with pytest.raises(BadRequest, match="nested deeper than 100 levels"):
        parse_json(nested(MAX_DEPTH + 1))
    with pytest.raises(BadRequest, match="nested deeper"):
        parse_json(b"[" * 60 + b"{\"a\":" * 60 + b"1" + b"}" * 60 + b"]" * 60)
    brackets_in_strings = orjson.dumps({"data": {"k": "{[" * 500}})  # many brackets, shallow
    assert parse_json(brackets_in_strings) == {"data": {"k": "{[" * 500}}


def test_variant_digit_covers_every_hex_digit() -> None:
    from corral.api.uids import _VARIANT

    assert sorted(_VARIANT) == list("0123456789abcdef")
    assert {int(d, 16) >> 2 for d in _VARIANT.values()} == {2}  # binary 10xx
