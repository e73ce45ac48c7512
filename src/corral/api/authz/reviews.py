"""Answers to the access-review kinds: the server asks its own authorizer.

SelfSubjectAccessReview is ``kubectl auth can-i``; SubjectAccessReview asks
for someone else (``can-i --as`` goes through impersonation instead);
SelfSubjectRulesReview is ``can-i --list``; SelfSubjectReview is
``kubectl auth whoami``. None is stored: the reply is the request with a
status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from corral.api.auth import User
from corral.api.authz.attributes import Attributes
from corral.api.authz.keys import AUTHZ_KEY, USER_KEY
from corral.api.errors import Invalid, Unauthorized
from corral.api.paths import Target
from corral.resources.types import FieldCause

if TYPE_CHECKING:
    from corral.api.rest import RestHandlers

Obj = dict[str, Any]


def _requester(request: web.Request) -> User:
    user = request.get(USER_KEY)
    if not isinstance(user, User):
        raise Unauthorized("Unauthorized")
    return user


def _invalid(kind: str, field: str, message: str) -> Invalid:
    return Invalid(f"{kind}.authorization.k8s.io \"\" is invalid: {field}: {message}",
                   kind=kind, group="authorization.k8s.io", causes=[FieldCause(field, message)])


def attributes_from_spec(kind: str, user: User, spec: Any) -> Attributes:
    if not isinstance(spec, dict):
        raise _invalid(kind, "spec", "Required value")
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (res is None) == (nonres is None):
        raise _invalid(kind, "spec.resourceAttributes",
                       "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified")
    if isinstance(nonres, dict):
        return Attributes(user, str(nonres.get("verb") or ""), False, path=str(nonres.get("path") or ""))
    if not isinstance(res, dict):
        raise _invalid(kind, "spec.resourceAttributes", "Invalid value: must be an object")
    return Attributes(
        user, str(res.get("verb") or ""), True, namespace=str(res.get("namespace") or ""),
        api_group=str(res.get("group") or ""), api_version=str(res.get("version") or ""),
        resource=str(res.get("resource") or ""), subresource=str(res.get("subresource") or ""),
        name=str(res.get("name") or ""),
    )


async def _decide(rest: RestHandlers, request: web.Request, target: Target, user_of: Any) -> web.StreamResponse:
    from corral.api.rest import json_response

    obj, _warnings = await rest.read_object(request, target)
    attrs = attributes_from_spec(target.rt.kind, user_of(obj), obj.get("spec"))
    allowed, reason = request.app[AUTHZ_KEY].authorize(attrs)
    status: Obj = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    obj.update(apiVersion=target.rt.api_version, kind=target.rt.kind, status=status)
    obj.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    return json_response(obj, 201)


async def self_subject_access_review(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    return await _decide(rest, request, target, lambda _obj: _requester(request))


async def subject_access_review(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    def user_of(obj: Obj) -> User:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        name, groups = spec.get("user") or "", spec.get("groups") or []
        if not name and not groups:
            raise _invalid("SubjectAccessReview", "spec.user", "Invalid value: \"\": at least one of user or group must be specified")
        if not isinstance(groups, list):
            raise _invalid("SubjectAccessReview", "spec.groups", "Invalid value: must be a list")
        return User(str(name), str(spec.get("uid") or ""), tuple(str(g) for g in groups))

    return await _decide(rest, request, target, user_of)


async def self_subject_rules_review(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    from corral.api.rest import json_response

    obj, _warnings = await rest.read_object(request, target)
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    namespace = str(spec.get("namespace") or "")
    user = _requester(request)
    rbac = request.app[AUTHZ_KEY].deciders[-1]
    rules = rbac.policy.rules_of(user).rules_for(namespace)
    resource_rules = [r.as_dict() for r in rules if not r.urls]
    url_rules = [r.as_dict() for r in rules if r.urls]
    obj.update(apiVersion=target.rt.api_version, kind=target.rt.kind, status={
        "resourceRules": resource_rules, "nonResourceRules": url_rules, "incomplete": False,
    })
    return json_response(obj, 201)


async def self_subject_review(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    from corral.api.rest import json_response

    obj, _warnings = await rest.read_object(request, target)
    user = _requester(request)
    info: Obj = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    obj.update(apiVersion=target.rt.api_version, kind=target.rt.kind, status={"userInfo": info})
    obj.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    return json_response(obj, 201)
