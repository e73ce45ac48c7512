"""POST serviceaccounts/NAME/token: the TokenRequest API (``kubectl create token``).

The reply carries a JWT bound to the ServiceAccount's uid (and to a Pod's
when ``boundObjectRef`` names one), valid for the requested audiences and
lifetime. Nothing is stored; the token dies with the objects it is bound to.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from corral.api.authz.keys import SIGNER_KEY
from corral.api.content import decode_object
from corral.api.errors import BadRequest, Conflict, Forbidden, Invalid
from corral.api.paths import Target
from corral.api.satoken import (
    DEFAULT_AUDIENCE,
    DEFAULT_EXPIRATION,
    MAX_EXPIRATION,
    MIN_EXPIRATION,
    TokenClaims,
    TokenSigner,
)
from corral.clock import format_timestamp
from corral.resources.types import FieldCause

if TYPE_CHECKING:
    from corral.api.rest import RestHandlers

Obj = dict[str, Any]
API_VERSION = "authentication.k8s.io/v1"


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(f'TokenRequest.authentication.k8s.io "" is invalid: {field}: {message}',
                   kind="TokenRequest", group="authentication.k8s.io", causes=[FieldCause(field, message)])


def _spec(body: Obj) -> tuple[list[str], int, Obj | None]:
    if body.get("apiVersion") not in (None, "", API_VERSION) or body.get("kind") not in (None, "", "TokenRequest"):
        raise BadRequest(f"the body must be a TokenRequest of {API_VERSION}")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise _invalid("spec", "Invalid value: must be an object")
    audiences = spec.get("audiences") or [DEFAULT_AUDIENCE]
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        raise _invalid("spec.audiences", "Invalid value: must be a list of non-empty strings")
    seconds = spec.get("expirationSeconds")
    if seconds in (None, 0):
        seconds = DEFAULT_EXPIRATION
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise _invalid("spec.expirationSeconds", "Invalid value: must be an integer")
    if seconds < MIN_EXPIRATION:
        raise _invalid("spec.expirationSeconds",
                       f"Invalid value: {seconds}: may not specify a duration less than 10 minutes")
    if seconds > 2**32:
        raise _invalid("spec.expirationSeconds",
                       f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds")
    bound = spec.get("boundObjectRef")
    if bound is not None and not isinstance(bound, dict):
        raise _invalid("spec.boundObjectRef", "Invalid value: must be an object")
    return audiences, min(seconds, MAX_EXPIRATION), bound


async def create_token(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    from corral.api.rest import json_response

    body = decode_object(await request.read(), request.headers.get("Content-Type"))
    audiences, seconds, bound = _spec(body)
    objects, ns, name = rest.ctx.objects, target.namespace or "", target.name or ""
    sa = await objects.get_shared(target.rt, ns, name)  # read only: the shared parse will do
    node = _requesting_node(request)
    pod = await _check_node_binding(rest, node, ns, bound) if node is not None else None
    kind, bound_name, bound_uid = await _bound_object(rest, ns, bound, pod) if bound else ("", "", "")
    now = rest.ctx.clock.now()
    issued = int(now.timestamp())
    pod_ref = (bound_name, bound_uid) if kind == "Pod" else ("", "")
    secret_ref = (bound_name, bound_uid) if kind == "Secret" else ("", "")
    claims = TokenClaims(ns, name, sa["metadata"]["uid"], tuple(audiences), issued + seconds, *pod_ref, *secret_ref)
    token = request.app[SIGNER_KEY].issue(claims, issued)
    spec: Obj = {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": bound}
    reply = {
        "kind": "TokenRequest", "apiVersion": API_VERSION,
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": format_timestamp(now)},
        "spec": {k: v for k, v in spec.items() if v is not None},
        "status": {"token": token,
                   "expirationTimestamp": format_timestamp(datetime.fromtimestamp(claims.expires, UTC))},
    }
    return json_response(reply, 201)


def _requesting_node(request: web.Request) -> str | None:
    from corral.api.auth import User
    from corral.api.authz.keys import USER_KEY
    from corral.api.authz.node import node_name

    user = request.get(USER_KEY)
    return node_name(user) if isinstance(user, User) else None


async def _check_node_binding(rest: RestHandlers, node: str, namespace: str, bound: Obj | None) -> Obj:
    """NodeRestriction: an agent may ask only for tokens bound to a pod on
    its own node (so a token it leaks dies with that pod). Returns the pod,
    which the binding then uses rather than reading it again."""
    if not bound or bound.get("kind") != "Pod" or not bound.get("name"):
        raise Forbidden(f'node "{node}" may only request tokens bound to a pod on it',
                        kind="serviceaccounts", group="")
    rt = rest.ctx.registry.lookup("", "v1", "pods")
    pod = await rest.ctx.objects.get_shared(rt, namespace, str(bound["name"]))
    if (pod.get("spec") or {}).get("nodeName") != node:
        raise Forbidden(f'node "{node}" may not request a token bound to pod {namespace}/{bound["name"]}, '
                        "which is not bound to it", kind="serviceaccounts", group="")
    return pod


async def _bound_object(rest: RestHandlers, namespace: str, bound: Obj, pod: Obj | None = None) -> tuple[str, str, str]:
    """The bound object's kind, name and uid; ``pod`` is the Pod the node
    check already read (the same request, so the same object)."""
    kind, ref_name, ref_uid = bound.get("kind"), bound.get("name"), bound.get("uid")
    if kind not in ("Pod", "Secret"):
        raise _invalid("spec.boundObjectRef.kind", f'Unsupported value: "{kind}": supported values: "Pod", "Secret"')
    if not ref_name:
        raise _invalid("spec.boundObjectRef.name", "Required value")
    if kind == "Pod" and pod is not None:
        obj = pod
    else:
        rt = rest.ctx.registry.lookup("", "v1", "pods" if kind == "Pod" else "secrets")
        assert rt is not None
        obj = await rest.ctx.objects.get_shared(rt, namespace, str(ref_name))
    uid = obj["metadata"]["uid"]
    if ref_uid and ref_uid != uid:
        raise Conflict(f'the UID in the bound object reference ({ref_uid}) does not match the UID in record ({uid}). '
                       "The object might have been deleted and then recreated")
    return str(kind), str(ref_name), uid


# -- service account issuer discovery (what verifies the tokens issued above) --

DISCOVERY_CACHE = "public, max-age=3600"


async def openid_configuration(request: web.Request) -> web.Response:
    """GET /.well-known/openid-configuration: OIDC discovery for the tokens'
    issuer, listing the algorithms its keys sign with (ES256 for a new
    cluster, RS256 for one whose data dir kept an RSA key)."""
    signer: TokenSigner = request.app[SIGNER_KEY]
    return web.Response(body=orjson.dumps(signer.openid_configuration()), content_type="application/json",
                        headers={"Cache-Control": DISCOVERY_CACHE})


async def jwks(request: web.Request) -> web.Response:
    """GET /openid/v1/jwks: the public keys, so a relying party outside the
    cluster can verify a pod's token itself."""
    signer: TokenSigner = request.app[SIGNER_KEY]
    return web.Response(body=orjson.dumps(signer.jwks()), content_type="application/jwk-set+json",
                        headers={"Cache-Control": DISCOVERY_CACHE})
