"""apply_patch: content types, body parsing and the errors the API returns."""

from __future__ import annotations

import orjson
import pytest

from corral.api.errors import BadRequest, Invalid, UnsupportedMediaType
from corral.api.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
)
from corral.resources.schemas.apps_v1 import DEPLOYMENT

NOW = "2024-05-01T10:00:00Z"
LIVE = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1"}, {"name": "side", "image": "b"}]}}}}


def run(body: object, content_type: str, current: dict | None = LIVE, **kw: object) -> dict:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    options = {"field_manager": None, "force": False, "now": NOW} | kw
    return apply_patch(current, raw, content_type, DEPLOYMENT, **options)  # type: ignore[arg-type]


def test_each_content_type() -> None:
    assert run([{"op": "replace", "path": "/spec/replicas", "value": 2}], JSON_PATCH)["spec"]["replicas"] == 2
    assert run({"spec": {"replicas": 3}}, MERGE_PATCH + "; charset=utf-8")["spec"]["replicas"] == 3
    out = run({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}},
              STRATEGIC_MERGE_PATCH)
    assert [c["image"] for c in out["spec"]["template"]["spec"]["containers"]] == ["nginx:2", "b"]
    merged = run({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}},
                 MERGE_PATCH)
    assert len(merged["spec"]["template"]["spec"]["containers"]) == 1


def test_apply_patch_yaml_and_json_bodies_create() -> None:
    yaml_body = b"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    at: 2024-01-01T00:00:00Z
spec:
  replicas: 2
"""
    out = run(yaml_body, APPLY_PATCH, current=None, field_manager="kubectl")
    assert out["spec"]["replicas"] == 2
    assert out["metadata"]["annotations"]["at"] == "2024-01-01T00:00:00Z"
    assert out["metadata"]["managedFields"][0]["manager"] == "kubectl"
    as_json = run({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"replicas": 2}}, APPLY_PATCH, current={}, field_manager="kubectl")
    assert as_json["spec"] == {"replicas": 2}


def test_apply_needs_a_field_manager() -> None:
    with pytest.raises(Invalid) as exc:
        run({"spec": {}}, APPLY_PATCH)
    assert "fieldManager" in exc.value.message


def test_force_only_for_apply() -> None:
    with pytest.raises(Invalid):
        run({"spec": {}}, MERGE_PATCH, force=True)


@pytest.mark.parametrize(("body", "content_type"), [
    (b"{not json", MERGE_PATCH),
    (b"[1, 2]", MERGE_PATCH),
    (b"{}", JSON_PATCH),
    (b"\"x\"", STRATEGIC_MERGE_PATCH),
    (b"a: [unclosed", APPLY_PATCH),
    (b"- a\n- b\n", APPLY_PATCH),
])
def test_malformed_bodies_are_bad_requests(body: bytes, content_type: str) -> None:
    with pytest.raises(BadRequest):
        run(body, content_type, field_manager="m")


def test_unknown_content_type() -> None:
    with pytest.raises(UnsupportedMediaType) as exc:
        run({}, "application/json")
    assert exc.value.code == 415


def test_json_patch_that_replaces_the_object_with_a_scalar() -> None:
    with pytest.raises(Invalid):
        run([{"op": "replace", "path": "", "value": 3}], JSON_PATCH)
