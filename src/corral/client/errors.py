"""Client-side errors, one class per Kubernetes failure a caller acts on.

The server speaks ``Status`` bodies; :func:`error_from_status` turns one into
the matching exception so callers write ``except ConflictError`` (re-read and
retry) rather than inspecting codes. Transport failures become
:class:`ApiConnectionError` with status 0, so a single ``except ApiError``
catches everything the client can raise.
"""

from __future__ import annotations

from typing import Any

import orjson


class ApiError(Exception):
    def __init__(
        self, status: int, reason: str, message: str, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message
        self.body: dict[str, Any] = body if body is not None else {}

    @property
    def details(self) -> dict[str, Any]:
        details = self.body.get("details")
        return details if isinstance(details, dict) else {}

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked us to wait (``details.retryAfterSeconds``)."""
        value = self.details.get("retryAfterSeconds")
        return float(value) if isinstance(value, int | float) else None


class BadRequestError(ApiError):  # 400
    pass


class UnauthorizedError(ApiError):  # 401
    pass


class ForbiddenError(ApiError):  # 403
    pass


class NotFoundError(ApiError):  # 404
    pass


class ConflictError(ApiError):
    """409 Conflict: a stale resourceVersion; re-read and retry."""


class AlreadyExistsError(ApiError):
    """409 AlreadyExists: create of a name that is taken."""


class GoneError(ApiError):
    """410: the revision asked for is older than the server's history; re-list."""


class InvalidError(ApiError):  # 422
    @property
    def causes(self) -> list[dict[str, Any]]:
        causes = self.details.get("causes")
        return causes if isinstance(causes, list) else []


class TooManyRequestsError(ApiError):  # 429
    pass


class ServerError(ApiError):  # 5xx
    pass


class ApiConnectionError(ApiError):
    """The server could not be reached or the connection broke mid-request."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "ConnectionError", message)


_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    410: GoneError,
    422: InvalidError,
    429: TooManyRequestsError,
}

_DEFAULT_REASON = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def error_class(status: int, reason: str) -> type[ApiError]:
    if status == 409:
        return AlreadyExistsError if reason == "AlreadyExists" else ConflictError
    if status in _BY_CODE:
        return _BY_CODE[status]
    if status >= 500:
        return ServerError
    return ApiError


def error_from_status(status: int, body: dict[str, Any]) -> ApiError:
    """The exception for a Status body; ``status`` is the HTTP code, which wins
    over ``body["code"]`` when the two disagree (the body may be a proxy's)."""
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason:
        reason = _DEFAULT_REASON.get(status, "Unknown")
    message = body.get("message")
    if not isinstance(message, str) or not message:
        message = f"the server responded with status {status}"
    return error_class(status, reason)(status, reason, message, body)


def error_from_response(status: int, raw: bytes) -> ApiError:
    """Like :func:`error_from_status` for a body that may not be JSON at all
    (a proxy's HTML page, a truncated reply)."""
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict) or body.get("kind") not in (None, "Status"):
        body = {}
    if not body and raw:
        text = raw[:512].decode("utf-8", "replace").strip()
        body = {"message": f"the server responded with status {status}: {text}"}
    return error_from_status(status, body)
