"""Argument checks every Store backend makes, with the protocol's wording.

The store sits below the API, which validates first; these catch a caller
bug (an empty key, a str value, a negative revision) as a ValueError that
names the argument, identically on every backend.
"""

from __future__ import annotations


def check_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"key: must be a non-empty string, got {key!r}")
    check_text("key", key)
    return key


def check_text(name: str, text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{name}: must be a string, got {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name}: {text!r} is not valid Unicode text ({exc.reason})") from exc


def check_value(value: bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise ValueError(f"value: must be bytes, got {type(value).__name__}")


def check_revision(name: str, revision: int) -> int:
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise ValueError(f"{name}: must be a non-negative integer, got {revision!r}")
    return revision
