"""Secrets encrypted at rest: a Store wrapper that seals Secret values with
AES-256-GCM on the way in and opens them on the way out.

Everything above the store (handlers, watch streams, informers) sees plain
objects; the database file and any store backup hold only ciphertext.
A stored value is ``k8s:enc:aesgcm:v1:<key name>:<12-byte nonce><ciphertext>``
(Kubernetes' envelope prefix), so a value names the key that opens it and
keys can rotate: the first key in the key file seals, every listed key
opens, and :func:`reencrypt` rewrites values sealed with an older key.
Values without the prefix (written before encryption was on) are read as
they are and sealed on their next write or re-encryption.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from corral.store.protocol import (
    ConflictError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    Store,
    WatchEvent,
)

PREFIX = b"k8s:enc:aesgcm:v1:"
ENCRYPTED_PREFIXES = ("/registry/core/secrets/",)
KEY_FILE = "encryption-keys.json"


class EncryptionError(Exception):
    """A value cannot be opened: unknown key, or tampered ciphertext."""


@dataclasses.dataclass
class KeyRing:
    """Named AES-256 keys; the first seals."""

    keys: list[tuple[str, bytes]]
    path: Path | None = None

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        data = orjson.loads(path.read_bytes())
        keys = [(str(k["name"]), base64.b64decode(k["secret"])) for k in data.get("keys") or []]
        if not keys or any(len(secret) != 32 for _, secret in keys):
            raise ValueError(f"{path}: needs at least one key, each 32 bytes (base64)")
        return cls(keys, path)

    @classmethod
    def ensure(cls, path: Path) -> KeyRing:
        """Load the key file, making one with a fresh key on first start."""
        if not path.exists():
            ring = cls([(_key_name(), secrets.token_bytes(32))], path)
            ring.save()
        return cls.load(path)

    def save(self) -> None:
        assert self.path is not None
        body = orjson.dumps({"keys": [{"name": n, "secret": base64.b64encode(s).decode()} for n, s in self.keys]},
                            option=orjson.OPT_INDENT_2)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def rotate(self) -> str:
        """Put a new sealing key first (older keys stay, to open old values)."""
        name = _key_name()
        self.keys.insert(0, (name, secrets.token_bytes(32)))
        if self.path is not None:
            self.save()
        return name

    @property
    def primary(self) -> str:
        return self.keys[0][0]

    def seal(self, plain: bytes, key: str) -> bytes:
        name, secret = self.keys[0]
        nonce = os.urandom(12)
        # The storage key is bound in as associated data: a value copied onto
        # another Secret's key fails to open instead of impersonating it.
        return PREFIX + name.encode() + b":" + nonce + AESGCM(secret).encrypt(nonce, plain, key.encode())

    def open(self, stored: bytes, key: str) -> bytes:
        if not stored.startswith(PREFIX):
            return stored
        name, sep, rest = stored[len(PREFIX):].partition(b":")
        secret = self._secret(name.decode(errors="replace"))
        if not sep or len(rest) < 12 + 16:
            raise EncryptionError(f"{key}: malformed ciphertext")
        try:
            return AESGCM(secret).decrypt(rest[:12], rest[12:], key.encode())
        except Exception as exc:  # cryptography's InvalidTag: tampered or wrong key
            raise EncryptionError(f"{key}: ciphertext does not authenticate") from exc

    def _secret(self, name: str) -> bytes:
        for key_name, secret in self.keys:
            if key_name == name:
                return secret
        if self.path is not None and self.path.exists():  # rotated by another process: reload once
            self.keys = KeyRing.load(self.path).keys
            for key_name, secret in self.keys:
                if key_name == name:
                    return secret
        raise EncryptionError(f"no key named {name!r} in the key file")

    def sealed_with_primary(self, stored: bytes) -> bool:
        return stored.startswith(PREFIX + self.primary.encode() + b":")


def _key_name() -> str:
    return f"key-{secrets.token_hex(4)}"


def _covered(key: str) -> bool:
    return key.startswith(ENCRYPTED_PREFIXES)


class _OpeningWatch:
    def __init__(self, inner: Any, ring: KeyRing) -> None:
        self._inner, self._ring = inner, ring

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[WatchEvent]:
        async for event in self._inner:
            yield _open_event(event, self._ring)

    async def close(self) -> None:
        await self._inner.close()


def _open_kv(kv: KeyValue, ring: KeyRing) -> KeyValue:
    if not _covered(kv.key) or not kv.value.startswith(PREFIX):
        return kv
    return dataclasses.replace(kv, value=ring.open(kv.value, kv.key))


def _open_event(event: WatchEvent, ring: KeyRing) -> WatchEvent:
    prev = _open_kv(event.prev, ring) if event.prev is not None else None
    kv = _open_kv(event.kv, ring)
    if kv is event.kv and prev is event.prev:
        return event
    return dataclasses.replace(event, kv=kv, prev=prev)


def _may_cover(prefix: str) -> bool:
    """Whether keys under ``prefix`` can include sealed ones."""
    return any(p.startswith(prefix) or prefix.startswith(p) for p in ENCRYPTED_PREFIXES)


class EncryptingStore:
    """A :class:`Store` that seals values under :data:`ENCRYPTED_PREFIXES`."""

    def __init__(self, inner: Store, ring: KeyRing) -> None:
        self.inner = inner
        self.ring = ring

    def __getattr__(self, name: str) -> Any:  # backend extras (e.g. stats) pass through
        return getattr(self.inner, name)

    def _seal(self, key: str, value: bytes) -> bytes:
        return self.ring.seal(value, key) if _covered(key) else value

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def get(self, key: str) -> KeyValue | None:
        kv = await self.inner.get(key)
        return None if kv is None else _open_kv(kv, self.ring)

    async def create(self, key: str, value: bytes) -> KeyValue:
        kv = await self.inner.create(key, self._seal(key, value))
        return dataclasses.replace(kv, value=value) if kv.value is not value else kv

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        kv = await self.inner.update(key, self._seal(key, value), expected_revision)
        return dataclasses.replace(kv, value=value) if kv.value is not value else kv

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        return _open_kv(await self.inner.delete(key, expected_revision), self.ring)

    async def list(self, prefix: str, *, revision: int = 0, start_after: str = "", limit: int = 0) -> ListResult:
        result = await self.inner.list(prefix, revision=revision, start_after=start_after, limit=limit)
        if not any(_covered(kv.key) for kv in result.items):
            return result
        return dataclasses.replace(result, items=[_open_kv(kv, self.ring) for kv in result.items])

    async def count(self, prefix: str) -> int:
        return await self.inner.count(prefix)

    def watch(self, prefix: str, after_revision: int) -> Any:
        inner = self.inner.watch(prefix, after_revision)
        # Most watches (pods, configmaps...) never see a sealed value: no
        # extra generator layer per event and watcher for them.
        return _OpeningWatch(inner, self.ring) if _may_cover(prefix) else inner

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)


async def reencrypt(store: EncryptingStore) -> int:
    """Rewrite every covered value not sealed with the primary key (after a
    rotation, or when encryption was just turned on); returns how many."""
    rewritten = 0
    for prefix in ENCRYPTED_PREFIXES:
        result = await store.inner.list(prefix)
        for kv in result.items:
            if store.ring.sealed_with_primary(kv.value):
                continue
            plain = store.ring.open(kv.value, kv.key)
            try:
                await store.update(kv.key, plain, kv.mod_revision)
                rewritten += 1
            except (ConflictError, KeyNotFoundError):
                continue  # written or deleted meanwhile: already sealed with the primary key
    return rewritten


def encrypt_secrets(store: Store, data_dir: Path) -> EncryptingStore:
    return EncryptingStore(store, KeyRing.ensure(data_dir / "pki" / KEY_FILE))
