"""The four PATCH kinds of the Kubernetes API.

The API server reads the current object, calls :func:`apply_patch`, then
validates and writes the result with compare-and-swap. Every function here
is pure: the current object and the patch are never modified.

Only server-side apply maintains ``managedFields`` itself. For the other
patch kinds (and for create and update) the server records the writer with
:func:`update_managed_fields` on the object it is about to store.
"""

from __future__ import annotations

from typing import Any

from corral.api import content
from corral.api.errors import BadRequest, Invalid, UnsupportedMediaType
from corral.api.patch.apply import server_side_apply
from corral.api.patch.json_patch import apply_json_patch
from corral.api.patch.managed_fields import update_managed_fields
from corral.api.patch.merge_patch import merge_diff, merge_patch, merge_patch_owned
from corral.api.patch.strategic import strategic_merge_patch
from corral.resources.schema import Schema
from corral.resources.types import FieldCause

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "PATCH_CONTENT_TYPES",
    "STRATEGIC_MERGE_PATCH",
    "apply_json_patch",
    "apply_patch",
    "apply_status_patch",
    "merge_diff",
    "merge_patch",
    "server_side_apply",
    "strategic_merge_patch",
    "update_managed_fields",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_CONTENT_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)



def apply_patch(
    current: dict[str, Any] | None,
    patch_body: bytes,
    content_type: str,
    schema: Schema,
    *,
    field_manager: str | None,
    force: bool,
    now: str,
) -> dict[str, Any]:
    """The object after applying ``patch_body`` of ``content_type`` to ``current``.

    ``current`` may be ``{}``/None only for an apply patch, which then creates.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in PATCH_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types "
            f"include: {', '.join(PATCH_CONTENT_TYPES)}"
        )
    if media == APPLY_PATCH:
        if not field_manager:
            raise Invalid(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: "
                "is required for apply patch",
                causes=[FieldCause("fieldManager", "Required value: is required for apply patch",
                                   "FieldValueRequired")],
            )
        applied = _parse_yaml(patch_body)
        return server_side_apply(
            current, applied, schema, manager=field_manager, force=force, now=now
        )
    if force:
        raise Invalid(
            "force: Forbidden: may not be specified for non-apply patch",
            causes=[FieldCause("force", "Forbidden: may not be specified for non-apply patch",
                               "FieldValueForbidden")],
        )
    body = _parse_json(patch_body)
    base = current or {}
    if media == JSON_PATCH:
        result = apply_json_patch(base, body)
        if not isinstance(result, dict):
            raise Invalid("json patch must leave a JSON object, not replace it with another type")
        return result
    if media == MERGE_PATCH:
        if not isinstance(body, dict):
            raise BadRequest("merge patch must be a JSON object")
        return merge_patch(base, body)
    return strategic_merge_patch(base, body, schema)


def apply_status_patch(
    current: dict[str, Any], patch_body: bytes, content_type: str, schema: Schema
) -> dict[str, Any] | None:
    """For a write through the status subresource: :func:`apply_patch` of a
    merge or strategic merge patch whose body holds nothing but ``status``,
    worked out on ``status`` alone (neither kind touches a key its patch
    does not name, and neither has a directive outside its maps).

    Unlike apply_patch the result shares every top-level value but
    ``status`` and ``metadata`` (a shallow copy) with ``current``, which
    must not be modified while it is in use: copying a pod's spec for a
    write that stores only its status was a tenth of the write. A merge
    patch's status shares the maps it does not descend into with
    ``current``'s and its values with the parsed body. None for any other
    patch, which apply_patch handles."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        return None
    body = _parse_json(patch_body)
    if not isinstance(body, dict) or list(body) != ["status"]:
        return None
    part = {"status": current["status"]} if "status" in current else {}
    merged = merge_patch_owned(part, body) if media == MERGE_PATCH else strategic_merge_patch(part, body, schema)
    result = dict(current)
    if isinstance(current.get("metadata"), dict):
        result["metadata"] = dict(current["metadata"])
    if "status" in merged:
        result["status"] = merged["status"]
    else:
        result.pop("status", None)
    return result


def _parse_json(body: bytes) -> Any:
    return content.parse_json(body)


def _parse_yaml(body: bytes) -> Any:
    return content.parse_yaml(body)
