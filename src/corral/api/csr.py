"""Creating a CertificateSigningRequest: the server fills in who asked and,
for a node's client certificate, approves and signs it at once.

Auto-approval follows Kubernetes' csrapproving rules for
``kubernetes.io/kube-apiserver-client-kubelet``: the subject must be
``CN=system:node:<name>, O=system:nodes``, asked for either by a bootstrap
token (a new node) or by that same node (a renewal). Anything else is stored
pending for an administrator (``kubectl certificate approve``, api/csr_approval.py). An agent's serving certificate
(``kubernetes.io/kubelet-serving``) is approved by the rule in
api/kubelet_serving.py (its SANs must be the Node's own addresses).
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from corral.api.auth import User
from corral.api.authz.keys import USER_KEY
from corral.api.certs import (
    BOOTSTRAP_GROUP,
    NODE_GROUP,
    NODE_PREFIX,
    NODE_SIGNER,
    CertificateError,
    parse_csr,
    sign_client_csr,
    subject_of,
)
from corral.api.csr_approval import requested_validity
from corral.api.errors import Invalid, Unauthorized
from corral.api.kubelet_serving import SERVING_SIGNER, approve_serving
from corral.api.paths import Target
from corral.clock import format_timestamp
from corral.resources.types import FieldCause

if TYPE_CHECKING:
    from corral.api.rest import RestHandlers

log = logging.getLogger(__name__)
PKI_KEY: web.AppKey[Any] = web.AppKey("pki-dir", object)


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(f'CertificateSigningRequest.certificates.k8s.io "" is invalid: {field}: {message}',
                   kind="CertificateSigningRequest", group="certificates.k8s.io",
                   causes=[FieldCause(field, message)])


def may_self_approve(user: User, cn: str, orgs: list[str]) -> bool:
    if not cn.startswith(NODE_PREFIX) or orgs != [NODE_GROUP]:
        return False
    return BOOTSTRAP_GROUP in user.groups or (user.name == cn and NODE_GROUP in user.groups)


async def create_csr(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    from corral.api.rest import json_response

    obj, _warnings = await rest.read_object(request, target)
    user = request.get(USER_KEY)
    if not isinstance(user, User):
        raise Unauthorized("Unauthorized")
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    try:
        pem = base64.b64decode(spec.get("request") or "", validate=True)
        csr = parse_csr(pem)
    except (ValueError, TypeError) as exc:
        raise _invalid("spec.request", f"Invalid value: {exc}") from None
    spec.update(username=user.name, groups=list(user.groups))
    spec["uid"] = user.uid or None
    obj["spec"] = {k: v for k, v in spec.items() if v is not None}
    obj.pop("status", None)
    cn, orgs = subject_of(csr)
    if spec.get("signerName") == NODE_SIGNER and may_self_approve(user, cn, orgs):
        try:
            cert = sign_client_csr(request.app[PKI_KEY], csr, requested_validity(spec))
        except CertificateError as exc:
            raise _invalid("spec.request", str(exc)) from None
        now = format_timestamp(rest.ctx.clock.now())
        obj["status"] = {
            "conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved",
                            "message": "Auto approving node client certificate", "lastUpdateTime": now,
                            "lastTransitionTime": now}],
            "certificate": base64.b64encode(cert).decode(),
        }
    elif spec.get("signerName") == SERVING_SIGNER:  # an agent's serving certificate: api/kubelet_serving.py
        serving, why_not = await approve_serving(rest.ctx, request.app[PKI_KEY], user, csr)
        if serving is None:
            log.info("serving certificate request from %s left pending: %s", user.name, why_not)
        else:
            now = format_timestamp(rest.ctx.clock.now())
            obj["status"] = {"certificate": base64.b64encode(serving).decode(), "conditions": [
                {"type": "Approved", "status": "True", "reason": "AutoApproved", "lastUpdateTime": now,
                 "message": "Auto approving agent serving certificate", "lastTransitionTime": now}]}
    created = await rest.create_object(request, target, obj)
    return json_response(created, 201)
