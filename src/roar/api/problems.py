"""Error answers. The modern API answers RFC 9457 problem+json; the legacy /roar/ API answers a
plain-text sentence, as the original did, but with a 4xx for bad input instead of a bare 500.
Every answer names the problem; none carries a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.responses import Response

from roar.api.responses import exact

__all__ = [
    "ApiError",
    "BodyTooLarge",
    "FieldError",
    "field_errors",
    "install_handlers",
    "is_legacy",
]

log = logging.getLogger("roar.api")

PROBLEM_JSON = "application/problem+json"

FieldError = tuple[str, str]


class ApiError(Exception):
    """An answer other than success, with what to tell the client."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}


class BodyTooLarge(Exception):
    """The request body is over the configured limit."""


def is_legacy(request: Request) -> bool:
    return request.url.path.startswith("/roar/api/")


def _message(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", "is invalid"))
    msg = msg.removeprefix("Value error, ")
    kind = error.get("type")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "json_invalid":
        return "is not valid JSON"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return "must be a JSON object"
    return msg[0].lower() + msg[1:] if msg else msg


def field_errors(
    errors: Iterable[dict[str, Any]], *, rename: dict[str, str] | None = None
) -> list[FieldError]:
    """Pydantic errors as (field, message) pairs; ``rename`` maps field names for the wire."""
    out: list[FieldError] = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) if loc else "body"
        if error.get("type") == "json_invalid":
            field = "body"
        if rename:
            field = rename.get(field, field)
        out.append((field, _message(error)))
    return out


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    if is_legacy(request):
        sentence = detail if detail.endswith(".") else detail + "."
        return exact(f"Error: {sentence}", "text/plain", status, headers)
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = [{"field": f, "message": m} for f, m in errors]
    return Response(orjson.dumps(body), status, headers, media_type=PROBLEM_JSON)


def describe_errors(errors: Sequence[FieldError]) -> str:
    return "; ".join(f"{field} {message}" for field, message in errors)


def install_handlers(app: FastAPI) -> None:
    """Map every failure to an answer a person can act on."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return problem(request, exc.status, exc.detail, errors=exc.errors, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        raw = exc.errors()
        errors = field_errors(raw)
        # A body that is not JSON at all, or absent, is a malformed request (400); a JSON
        # body with bad fields is unprocessable content (422).
        malformed = any(
            e.get("type") == "json_invalid"
            or (e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",))
            for e in raw
        )
        status = 400 if is_legacy(request) or malformed else 422
        return problem(
            request, status, f"Invalid request: {describe_errors(errors)}", errors=errors
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is nothing at {request.url.path}"
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem(request, exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> Response:
        return problem(request, 413, str(exc))

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> Response:
        log.warning("write refused by a database constraint: %s", exc.orig)
        return problem(request, 409, "The change conflicts with a database constraint")

    async def _db_down(request: Request, exc: Exception) -> Response:
        dependency = request.app.state.database_name
        reason = getattr(exc, "orig", None) or exc
        log.error(
            "database unavailable: %s: %s",
            dependency,
            reason,
            extra={"dependency": "database", "path": request.url.path},
        )
        return problem(
            request,
            503,
            "The database is unavailable; try again shortly",
            headers={"Retry-After": "5"},
        )

    for kind in (DBAPIError, PoolTimeout, OSError, TimeoutError):
        app.add_exception_handler(kind, _db_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(request, 500, "Internal error; the server log has the details")
