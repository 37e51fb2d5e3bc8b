"""Error answers. The modern API answers RFC 9457 problem+json; the legacy /roar/ API answers a
plain-text sentence, as the original did, but with a 4xx for bad input instead of a bare 500.
Every answer names the problem; none carries a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from roar.api.responses import exact
from roar.db.engine import DatabaseTimeout

__all__ = [
    "PROBLEM_JSON",
    "ApiError",
    "BodyTooLarge",
    "FieldError",
    "field_errors",
    "install_handlers",
    "is_database_outage",
    "is_legacy",
    "problem_responses",
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


def _message(error: Mapping[str, Any]) -> str:
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
    errors: Iterable[Mapping[str, Any]], *, rename: dict[str, str] | None = None
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


# The problem as the OpenAPI document describes it -----------------------------------------


class FieldProblem(BaseModel):
    field: str = Field(description="The parameter or body field, e.g. `service_start`")
    message: str = Field(description="What is wrong with it")


class Problem(BaseModel):
    """An error answer (RFC 9457)."""

    type: str = Field(description="Always `about:blank`: the status says what kind it is")
    title: str = Field(description="The status's phrase")
    status: int
    detail: str = Field(description="What went wrong, in a sentence a person can act on")
    instance: str = Field(description="The path asked for")
    errors: list[FieldProblem] = Field(
        default_factory=list, description="Each bad field (400, 415, 422); absent when none"
    )


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` put in place: a response's schema inside the document
    cannot refer to definitions of its own."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


_PROBLEM_SCHEMA: dict[str, Any] = _inlined(Problem.model_json_schema())

#: What each error status means on the agents API (a route may say it more exactly).
_MEANING: dict[int, str] = {
    400: "The body is not JSON, or is missing",
    401: "ROAR_API_TOKEN is set and the request lacks `Authorization: Bearer <token>`",
    404: "There is no agent with this id",
    409: "The change conflicts with a database constraint",
    412: "If-Match names a version the agent no longer has; read it again",
    413: "The body is over the server's limit (ROAR_MAX_BODY_BYTES)",
    415: "The body is not sent as `application/json`",
    422: "A parameter or field is invalid; `errors` names each",
    503: "The database is unavailable; try again after `Retry-After` seconds",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}},
    503: {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait"}},
}


def problem_responses(
    *statuses: int, meaning: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for these error statuses, each a problem+json; ``meaning`` says
    what a status means on this route when the general description is not exact enough."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": (meaning or {}).get(status, _MEANING[status]),
            "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        out[status] = response
    return out


# Which failures are the database's ------------------------------------------------------


def is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be used right now (503), rather than a bug.

    What arrives, as measured by stopping a MariaDB under a running ROAR (and on SQLite):
    SQLAlchemy wraps every driver error, connection errors included, in a DBAPIError: a
    refused or unresolvable server is an OperationalError (2003, around the socket's
    ConnectionRefusedError or gaierror), a server lost mid-query an OperationalError (2013,
    around asyncio's IncompleteReadError), a locked or unreadable SQLite file an
    OperationalError. An empty pool raises SQLAlchemy's own TimeoutError; a server that stops
    answering, ROAR's DatabaseTimeout (roar.db.engine.deadline). No bare OSError or
    TimeoutError reaches a route from the drivers, so those are not taken for an outage:
    anywhere else they are bugs (500, logged with the traceback). Other DBAPIErrors
    (ProgrammingError, DataError, ...) are bugs too, unless SQLAlchemy saw the connection drop.
    """
    if isinstance(exc, PoolTimeout | OperationalError | InterfaceError | DatabaseTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


# Allowed methods ------------------------------------------------------------------------

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """The methods some route answers on this path: Starlette's own 405 lists only those of
    the first route that matched the path (e.g. GET, when POST is another route)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


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
        # FastAPI hands a body over as bytes when its Content-Type is not JSON.
        if isinstance(exc.body, bytes | bytearray) and not is_legacy(request):
            kind = request.headers.get("content-type") or "none"
            return problem(
                request,
                415,
                f"The body must be sent as application/json (Content-Type: {kind})",
                errors=[("body", f"has Content-Type {kind}, not application/json")],
            )
        return problem(
            request, status, f"Invalid request: {describe_errors(errors)}", errors=errors
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is nothing at {request.url.path}"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
            headers["Allow"] = _allowed_methods(request)
        return problem(request, exc.status_code, detail, headers=headers)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> Response:
        return problem(request, 413, str(exc))

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> Response:
        log.warning("write refused by a database constraint: %s", exc.orig)
        return problem(request, 409, "The change conflicts with a database constraint")

    async def _database(request: Request, exc: Exception) -> Response:
        if not is_database_outage(exc):
            return _internal_error(request, exc)
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

    for kind in (DBAPIError, PoolTimeout, DatabaseTimeout):  # narrowed by is_database_outage
        app.add_exception_handler(kind, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return _internal_error(request, exc)


def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "Internal error; the server log has the details")
