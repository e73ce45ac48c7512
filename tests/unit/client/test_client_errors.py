import pytest

from corral.client import errors as e


def status(code: int, reason: str, message: str = "msg", **extra):
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message, **extra}


@pytest.mark.parametrize(
    "code, reason, cls",
    [
        (400, "BadRequest", e.BadRequestError),
        (401, "Unauthorized", e.UnauthorizedError),
        (403, "Forbidden", e.ForbiddenError),
        (404, "NotFound", e.NotFoundError),
        (409, "AlreadyExists", e.AlreadyExistsError),
        (409, "Conflict", e.ConflictError),
        (410, "Expired", e.GoneError),
        (410, "Gone", e.GoneError),
        (422, "Invalid", e.InvalidError),
        (429, "TooManyRequests", e.TooManyRequestsError),
        (500, "InternalError", e.ServerError),
        (503, "ServiceUnavailable", e.ServerError),
        (418, "Teapot", e.ApiError),
    ],
)
def test_status_maps_to_class(code, reason, cls):
    err = e.error_from_status(code, status(code, reason, "it broke"))
    assert type(err) is cls
    assert (err.status, err.reason, err.message) == (code, reason, "it broke")
    assert err.body["code"] == code


def test_409_without_reason_is_a_conflict():
    assert type(e.error_from_status(409, {})) is e.ConflictError


def test_invalid_exposes_causes_and_429_retry_after():
    causes = [{"field": "spec.replicas", "reason": "FieldValueInvalid", "message": "must be >= 0"}]
    err = e.error_from_status(422, status(422, "Invalid", details={"causes": causes}))
    assert isinstance(err, e.InvalidError) and err.causes == causes
    err = e.error_from_status(429, status(429, "TooManyRequests", details={"retryAfterSeconds": 3}))
    assert err.retry_after == 3.0


def test_non_json_body_still_gives_a_useful_error():
    err = e.error_from_response(502, b"<html>Bad Gateway</html>")
    assert isinstance(err, e.ServerError)
    assert err.reason == "Unknown" or err.status == 502
    assert "Bad Gateway" in err.message
    err = e.error_from_response(404, b"")
    assert isinstance(err, e.NotFoundError) and err.reason == "NotFound"


def test_connection_error_is_an_api_error_with_status_0():
    err = e.ApiConnectionError("refused")
    assert isinstance(err, e.ApiError) and err.status == 0
