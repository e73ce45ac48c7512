"""The CertificateSigningRequest cleaner: finished CSRs do not pile up.

Every agent start, serving-certificate request and rotation leaves a CSR
object behind. As in Kubernetes' csrcleaner, a CSR is deleted

- one hour after it was approved (and issued), denied or failed — the
  requester has long fetched its certificate or its answer;
- 24 hours after it was created if nobody decided on it;
- as soon as the certificate it carries has expired.

Each CSR is looked at again exactly when its next deadline comes, instead
of Kubernetes' hourly sweep of all of them.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta

from cryptography import x509

from corral.client.api import ApiClient
from corral.client.resources import CERTIFICATESIGNINGREQUESTS
from corral.clock import Clock, parse_timestamp
from corral.controllers.base import Controller
from corral.controllers.expiry import delete_when_due
from corral.controllers.informers import SharedInformers
from corral.controllers.objects import Obj, meta

DECIDED_TTL = timedelta(hours=1)
PENDING_TTL = timedelta(hours=24)
FINAL_CONDITIONS = ("Approved", "Denied", "Failed")


def _when(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        return None


def certificate_expiry(csr: Obj) -> datetime | None:
    raw = (csr.get("status") or {}).get("certificate")
    if not raw:
        return None
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        return None
    return cert.not_valid_after_utc


def deletion_due(csr: Obj) -> datetime | None:
    """When ``csr`` may be deleted: the earliest of its deadlines."""
    created = _when(meta(csr).get("creationTimestamp"))
    decided: datetime | None = None
    for cond in (csr.get("status") or {}).get("conditions") or []:
        if cond.get("type") in FINAL_CONDITIONS and cond.get("status", "True") == "True":
            at = _when(cond.get("lastUpdateTime")) or _when(cond.get("lastTransitionTime")) or created
            if at is not None and (decided is None or at < decided):
                decided = at
    due = []
    if decided is not None:
        due.append(decided + DECIDED_TTL)
    elif created is not None:
        due.append(created + PENDING_TTL)
    expiry = certificate_expiry(csr)
    if expiry is not None:
        due.append(expiry)
    return min(due) if due else None


class CsrCleaner(Controller):
    name = "csrcleaner"

    def __init__(self, client: ApiClient, informers: SharedInformers, *,
                 clock: Clock | None = None) -> None:
        super().__init__(clock=clock, workers=1)
        self.client = client
        self.csrs = informers.get(CERTIFICATESIGNINGREQUESTS)
        self.watches(self.csrs)
        self.csrs.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new))

    def _enqueue(self, csr: Obj) -> None:
        self.queue.add(str(meta(csr).get("name")))

    async def reconcile(self, key: str) -> float | None:
        csr = self.csrs.cache.get(key)
        if csr is None or meta(csr).get("deletionTimestamp"):
            return None
        due = deletion_due(csr)
        if due is None:
            return None
        return await delete_when_due(self.client, CERTIFICATESIGNINGREQUESTS, csr, due, self.clock.now(),
                                     "finished certificate signing request")
