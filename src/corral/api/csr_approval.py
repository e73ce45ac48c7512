"""The ``approval`` subresource of CertificateSigningRequests, and the
signing that follows an approval.

``kubectl certificate approve|deny NAME`` reads the CSR, appends an
Approved or Denied condition and PUTs the object to ``…/NAME/approval``.
As in Kubernetes, only ``status.conditions`` is taken from that body:
Approved and Denied exclude each other, and neither they nor Failed can be
removed or set to anything but ``True`` once added.

Kubernetes' csrsigning controller then issues the certificate for its
well-known signers. corral signs in the same request, with the same rules:
whoever approved vouches for the subject, but the request must still be
the kind of certificate that signer makes (a node identity for the kubelet
signers, the right usages, SANs only for serving). A request the signer
refuses gets a ``Failed`` condition with reason ``SignerValidationFailure``
instead of a certificate, so the requester learns why.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from cryptography import x509

from corral.api.certs import (
    CLIENT_VALIDITY,
    NODE_GROUP,
    NODE_PREFIX,
    NODE_SIGNER,
    CertificateError,
    load_ca,
    parse_csr,
    sign_client_csr,
    subject_of,
)
from corral.api.errors import Invalid
from corral.api.kubelet_serving import SERVING_SIGNER
from corral.api.paths import Target
from corral.clock import format_timestamp
from corral.resources.types import FieldCause

if TYPE_CHECKING:
    from corral.api.rest import RestHandlers

Obj = dict[str, Any]
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
DECISIONS = ("Approved", "Denied")
PERMANENT = ("Approved", "Denied", "Failed")
_COMMON_USAGES = {"digital signature", "key encipherment"}
# signer → (the usage it needs, the usages it allows)
SIGNER_USAGES = {
    NODE_SIGNER: ("client auth", _COMMON_USAGES | {"client auth"}),
    CLIENT_SIGNER: ("client auth", _COMMON_USAGES | {"client auth"}),
    SERVING_SIGNER: ("server auth", _COMMON_USAGES | {"server auth"}),
}


def _invalid(name: str, field: str, message: str) -> Invalid:
    return Invalid(f'CertificateSigningRequest.certificates.k8s.io "{name}" is invalid: {field}: {message}',
                   kind="CertificateSigningRequest", group="certificates.k8s.io", name=name,
                   causes=[FieldCause(field, message)])


def merged_conditions(name: str, current: list[Obj], wanted: Any, now: str) -> list[Obj]:
    """The conditions after an approval update, or Invalid naming the rule broken."""
    if wanted is None:
        wanted = []
    if not isinstance(wanted, list) or not all(isinstance(c, dict) for c in wanted):
        raise _invalid(name, "status.conditions", "must be a list of objects")
    by_type: dict[str, Obj] = {}
    for i, cond in enumerate(wanted):
        kind = cond.get("type")
        if not isinstance(kind, str) or not kind:
            raise _invalid(name, f"status.conditions[{i}].type", "Required value")
        if kind in by_type:
            raise _invalid(name, f"status.conditions[{i}].type", f'Duplicate value: "{kind}"')
        status = cond.get("status") or "True"
        if kind in PERMANENT and status != "True":
            raise _invalid(name, f"status.conditions[{i}].status", f'Unsupported value: "{status}": '
                           'supported values: "True"')
        before = next((c for c in current if c.get("type") == kind), None)
        fresh = {k: v for k, v in cond.items() if v is not None}
        fresh["status"] = status
        if before is None or before.get("status") != status:
            fresh.setdefault("lastTransitionTime", now)
        else:
            fresh.setdefault("lastTransitionTime", before.get("lastTransitionTime") or now)
        fresh.setdefault("lastUpdateTime", now)
        by_type[kind] = fresh
    if all(k in by_type for k in DECISIONS):
        raise _invalid(name, "status.conditions", "Approved and Denied conditions are mutually exclusive")
    for cond in current:
        if cond.get("type") in PERMANENT and cond.get("type") not in by_type:
            raise _invalid(name, "status.conditions", f'{cond.get("type")} condition may not be removed')
    return list(by_type.values())


def signer_problem(signer: str, csr: x509.CertificateSigningRequest, usages: list[str]) -> str:
    """Why ``signer`` will not issue this request ("" if it will)."""
    needed, allowed = SIGNER_USAGES[signer]
    if needed not in usages:
        return f"usages must include {needed!r}"
    extra = sorted(set(usages) - allowed)
    if extra:
        return f"usages not allowed for {signer}: {', '.join(extra)}"
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = None
    if signer == CLIENT_SIGNER:
        return ""
    cn, orgs = subject_of(csr)
    if not cn.startswith(NODE_PREFIX) or len(cn) == len(NODE_PREFIX) or orgs != [NODE_GROUP]:
        return f"subject must be CN=system:node:<name>, O={NODE_GROUP}"
    if signer == NODE_SIGNER and sans is not None:
        return "a node client certificate carries no subject alternative names"
    if signer == SERVING_SIGNER:
        if sans is None or not (sans.get_values_for_type(x509.DNSName) or sans.get_values_for_type(x509.IPAddress)):
            return "a serving certificate needs at least one DNS name or IP address"
        if sans.get_values_for_type(x509.RFC822Name) or sans.get_values_for_type(x509.UniformResourceIdentifier):
            return "a serving certificate may name only DNS names and IP addresses"
    return ""


def requested_validity(spec: Obj) -> timedelta:
    """``spec.expirationSeconds`` when given (at least 600, as Kubernetes
    requires), capped at what the signers issue."""
    seconds = spec.get("expirationSeconds")
    if isinstance(seconds, int) and seconds >= 600:
        return min(CLIENT_VALIDITY, timedelta(seconds=seconds))
    return CLIENT_VALIDITY


def issue(pki: Any, csr_obj: Obj) -> tuple[bytes | None, str]:
    """(certificate, "") for an approved request of a signer corral runs,
    (None, why) when that signer refuses it, (None, "") for other signers."""
    spec = csr_obj.get("spec") or {}
    signer = spec.get("signerName")
    if signer not in SIGNER_USAGES:
        return None, ""  # somebody else's signer: they issue it
    try:
        csr = parse_csr(base64.b64decode(spec.get("request") or "", validate=True))
    except (binascii.Error, CertificateError) as exc:
        return None, str(exc)
    problem = signer_problem(signer, csr, list(spec.get("usages") or []))
    if problem:
        return None, problem
    validity = requested_validity(spec)
    if signer == SERVING_SIGNER:
        from corral.agent.servingcert import sign_serving

        ca_cert, ca_key = load_ca(pki)
        return sign_serving(ca_cert, ca_key, csr, validity), ""
    return sign_client_csr(pki, csr, validity), ""


def check_may_approve(request: web.Request, signer: str) -> None:
    """Besides ``update`` on the approval subresource, approving needs the
    ``approve`` verb on ``signers`` named by the signer (or its ``domain/*``),
    as in Kubernetes: otherwise anyone allowed to approve CSRs at all could
    mint node identities."""
    from corral.api.auth import User
    from corral.api.authz.attributes import Attributes
    from corral.api.authz.chain import forbidden
    from corral.api.authz.keys import AUTHZ_KEY, USER_KEY

    user = request.get(USER_KEY)
    authorizer = request.app.get(AUTHZ_KEY)
    if authorizer is None or not isinstance(user, User):
        return
    attrs = [Attributes(user=user, verb="approve", resource_request=True, api_group="certificates.k8s.io",
                        api_version="*", resource="signers", name=name)
             for name in (signer, signer.split("/", 1)[0] + "/*")]
    if not any(authorizer.authorize(a)[0] for a in attrs):
        raise forbidden(attrs[0], f"user not permitted to approve requests with signerName {signer!r}")


async def update_approval(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    from corral.api.csr import PKI_KEY
    from corral.api.rest import json_response

    body, _warnings = await rest.read_object(request, target)
    name = target.name or ""
    wanted = (body.get("status") or {}).get("conditions") if isinstance(body.get("status"), dict) else None
    expected_rv = (body.get("metadata") or {}).get("resourceVersion") or None
    pki = request.app[PKI_KEY]

    def transform(current: Obj) -> Obj:
        check_may_approve(request, str((current.get("spec") or {}).get("signerName") or ""))
        now = format_timestamp(rest.ctx.clock.now())
        status = dict(current.get("status") or {})
        status["conditions"] = merged_conditions(name, list(status.get("conditions") or []), wanted, now)
        kinds = {c["type"] for c in status["conditions"]}
        if "Approved" in kinds and not status.get("certificate") and "Failed" not in kinds:
            cert, problem = issue(pki, current)
            if cert is not None:
                status["certificate"] = base64.b64encode(cert).decode()
            elif problem:
                status["conditions"].append({"type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                                             "message": problem, "lastUpdateTime": now, "lastTransitionTime": now})
        current["status"] = status
        return current

    updated = await rest.ctx.objects.update(target.rt, None, name, transform, expected_rv=expected_rv,
                                            subresource="status")
    return json_response(updated, 200)
