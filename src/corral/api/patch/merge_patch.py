"""JSON merge patch (RFC 7386): what ``kubectl scale`` and ``patch --type merge`` send.

Objects merge key by key, ``null`` deletes a key, anything else (lists
included) replaces. :func:`merge_diff` is the inverse: the smallest merge
patch that turns one document into another.
"""

from __future__ import annotations

from typing import Any

from corral.api.patch.values import deep_copy, same


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` applied, sharing nothing with either;
    neither argument is modified."""
    if not isinstance(patch, dict):
        return deep_copy(patch)
    return deep_copy(merge_patch_owned(target if isinstance(target, dict) else {}, patch))


def merge_patch_owned(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """:func:`merge_patch` for a ``patch`` the caller owns and hands over
    (just parsed from a request): the result takes the patch's values
    as they are, and copies only the maps of ``target`` the patch descends
    into, sharing the rest with it. Neither argument is modified; the
    result must be treated as sharing both. Copying every value of a
    node's status patch, and the stored status as a whole, was a fifth of
    applying it."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = merge_patch_owned(current if isinstance(current, dict) else {}, value)
        else:
            result[key] = value
    return result


def merge_diff(old: Any, new: Any) -> Any:
    """A merge patch that turns ``old`` into ``new``.

    A value that is itself ``null`` in ``new`` cannot be expressed by a merge
    patch (null means delete), so such keys come out deleted.
    """
    if not isinstance(old, dict) or not isinstance(new, dict):
        return deep_copy(new)
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = _strip_nulls(value)
        elif isinstance(value, dict) and isinstance(old[key], dict):
            sub = merge_diff(old[key], value)
            if sub:
                patch[key] = sub
        elif not same(old[key], value):
            patch[key] = _strip_nulls(value) if isinstance(value, dict) else deep_copy(value)
    return patch


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return deep_copy(value)
