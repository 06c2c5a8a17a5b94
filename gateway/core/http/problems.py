"""RFC 7807 problem+json errors: every refusal is a class with a status and a type."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://switchboard.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class ApiProblem(Exception):
    """An error the API reports to its caller; subclasses fix status, type and title."""

    status = 400
    type_name = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def to_dict(self) -> dict[str, object]:
        """The problem document."""
        return {
            "type": PROBLEM_BASE + self.type_name,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


class Unauthorized(ApiProblem):
    """No valid credential."""

    status, type_name, title = 401, "unauthorized", "Unauthorized"


class Forbidden(ApiProblem):
    """A valid credential without the role this needs."""

    status, type_name, title = 403, "forbidden", "Forbidden"


class NotFound(ApiProblem):
    """No such resource."""

    status, type_name, title = 404, "not-found", "Not found"


class Conflict(ApiProblem):
    """The request conflicts with the resource's state."""

    status, type_name, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ApiProblem):
    """The body is over the configured limit."""

    status, type_name, title = 413, "payload-too-large", "Payload too large"


class InvalidInput(ApiProblem):
    """The body or query failed validation; `errors` names each field."""

    status, type_name, title = 422, "invalid-input", "Invalid input"


class TooManyRequests(ApiProblem):
    """Rate limited."""

    status, type_name, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(ApiProblem):
    """A dependency is down or not configured."""

    status, type_name, title = 503, "unavailable", "Service unavailable"


def field_path(location: tuple[int | str, ...]) -> str:
    """`("data", "phones", 0)` → `data.phones[0]`."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def invalid_from_validation(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """Turn pydantic's errors into one 422 naming every bad field."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        location = (prefix, *error["loc"]) if prefix else tuple(error["loc"])
        errors.append({"field": field_path(location), "message": error["msg"]})
    first = errors[0] if errors else {"field": prefix, "message": "invalid"}
    return InvalidInput(f"{first['field']}: {first['message']}", errors=errors)


def problem_response(problem: ApiProblem) -> web.Response:
    """Serialise a problem with the right content type."""
    return web.Response(
        status=problem.status,
        text=json.dumps(problem.to_dict(), ensure_ascii=False),
        content_type=PROBLEM_CONTENT_TYPE,
    )


_HTTP_TYPES = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def http_problem_type(status: int) -> str:
    """The problem type name an aiohttp error of `status` is answered with."""
    return _HTTP_TYPES.get(status, "http-error")


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as problem+json; never leak a traceback to the caller."""
    try:
        return await handler(request)
    except ApiProblem as problem:
        return problem_response(problem)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        generic = ApiProblem(exc.text or exc.reason)
        generic.status, generic.title = exc.status, exc.reason
        generic.type_name = http_problem_type(exc.status)
        response = problem_response(generic)
        for header in ("Allow", "WWW-Authenticate"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and request.transport is None:
            # The client left while its request was being read: nobody reads an answer,
            # and a traceback per departed client would flood the log under a slow-body
            # attack.
            return problem_response(ApiProblem("the client closed the connection"))
        log.exception("unhandled error on %s %s", request.method, request.path)
        error = ApiProblem("internal error; see the gateway log")
        error.status, error.type_name, error.title = 500, "internal", "Internal server error"
        return problem_response(error)
