"""Verbs some kinds answer themselves instead of storing an object: the
access reviews and the ServiceAccount token subresource. The REST layer
asks :func:`custom_handler` before its generic path."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from corral.api.errors import MethodNotAllowed
from corral.resources.types import ResourceType

Handler = Callable[[Any, Any, Any], Awaitable[Any]]


@functools.cache
def _table() -> dict[tuple[str, str, str | None, str], Handler]:
    from corral.api.authz import reviews
    from corral.api.csr import create_csr
    from corral.api.csr_approval import update_approval
    from corral.api.tokenrequest import create_token

    return {
        ("authorization.k8s.io", "selfsubjectaccessreviews", None, "POST"): reviews.self_subject_access_review,
        ("authorization.k8s.io", "subjectaccessreviews", None, "POST"): reviews.subject_access_review,
        ("authorization.k8s.io", "selfsubjectrulesreviews", None, "POST"): reviews.self_subject_rules_review,
        ("authentication.k8s.io", "selfsubjectreviews", None, "POST"): reviews.self_subject_review,
        ("", "serviceaccounts", "token", "POST"): create_token,
        ("certificates.k8s.io", "certificatesigningrequests", None, "POST"): create_csr,
        ("certificates.k8s.io", "certificatesigningrequests", "approval", "PUT"): update_approval,
    }


async def _not_allowed(rest: Any, request: Any, target: Any) -> Any:
    raise MethodNotAllowed(f"the server does not allow this method on the requested resource ({request.method})")


def custom_handler(rt: ResourceType, subresource: str | None, method: str) -> Handler | None:
    handler = _table().get((rt.group, rt.plural, subresource, method))
    if handler is None and rt.extra.get("virtual"):
        return _not_allowed
    return handler
