"""The bootstrap-token cleaner: a join token's Secret is deleted once its
``expiration`` has passed, as Kubernetes' tokencleaner does.

An expired token is already refused at authentication (api/certs.py), so
this is housekeeping: without it ``corral token create --ttl`` leaves a
Secret behind for every token ever made, and ``corral token list`` fills
with dead ones. Only kube-system is looked at, where bootstrap tokens live.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from corral.client.api import ApiClient
from corral.client.resources import SECRETS
from corral.clock import Clock
from corral.controllers.base import Controller
from corral.controllers.expiry import delete_when_due
from corral.controllers.informers import SharedInformers
from corral.controllers.objects import Obj, meta

TOKEN_TYPE = "bootstrap.kubernetes.io/token"
NAMESPACE = "kube-system"


def token_expiration(secret: Obj) -> datetime | None:
    """When the token stops being valid, or None if it never does or the
    field cannot be read (an unreadable expiration is not a reason to delete
    somebody's Secret; authentication refuses such a token anyway)."""
    raw = (secret.get("data") or {}).get("expiration")
    if not raw:
        return None
    try:
        text = base64.b64decode(raw, validate=True).decode()
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


class BootstrapTokenCleaner(Controller):
    name = "tokencleaner"

    def __init__(self, client: ApiClient, informers: SharedInformers, *,
                 clock: Clock | None = None) -> None:
        super().__init__(clock=clock, workers=1)
        self.client = client
        self.secrets = informers.get(SECRETS, field_selector=f"type={TOKEN_TYPE}")
        self.watches(self.secrets)
        self.secrets.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new))

    def _enqueue(self, secret: Obj) -> None:
        m = meta(secret)
        if m.get("namespace") == NAMESPACE:
            self.queue.add(f"{NAMESPACE}/{m.get('name')}")

    async def reconcile(self, key: str) -> float | None:
        secret = self.secrets.cache.get(key)
        if secret is None or secret.get("type") != TOKEN_TYPE or meta(secret).get("deletionTimestamp"):
            return None
        expires = token_expiration(secret)
        if expires is None:
            return None
        return await delete_when_due(self.client, SECRETS, secret, expires, self.clock.now(),
                                     "its bootstrap token expired")
