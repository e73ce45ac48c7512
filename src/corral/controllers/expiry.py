"""Deleting an object once its own deadline has passed: the step the
housekeeping controllers (tokencleaner, csrcleaner) share."""

from __future__ import annotations

import logging
from datetime import datetime

from corral.client.api import ApiClient
from corral.client.errors import NotFoundError
from corral.client.resources import Resource
from corral.controllers.objects import Obj, meta

log = logging.getLogger(__name__)


async def delete_when_due(client: ApiClient, res: Resource, obj: Obj, due: datetime, now: datetime,
                          why: str) -> float | None:
    """Seconds until ``due`` while it lies ahead (a reconcile's "look again
    then"); once passed, delete ``obj`` — only this very object, by uid, so a
    namesake made meanwhile survives — and return None."""
    left = (due - now).total_seconds()
    if left > 0:
        return left
    m = meta(obj)
    try:
        await client.delete(res, str(m.get("name")), m.get("namespace"), preconditions={"uid": m.get("uid")})
        log.info("deleted %s %s: %s", res.kind, m.get("name"), why)
    except NotFoundError:
        pass
    return None
