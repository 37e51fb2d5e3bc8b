"""The original ROAR's /roar/api contract (shared/spec/legacy-api.md), kept byte-for-byte."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy import text
from starlette.responses import Response

from roar.api.deps import CacheDep, DatabaseDep, SettingsDep, WriteAccess, read_json_body
from roar.api.problems import ApiError, describe_errors, field_errors
from roar.api.responses import exact
from roar.api.schemas import LEGACY_FIELDS, AgentCreate, LastServiceUpdate
from roar.cache import legacy_json
from roar.db import agents as crud

# Not in the OpenAPI document: its answers (bare text/plain and text/html, column-named JSON,
# plain-text errors) are the original's, documented in docs/api.md, and a client generated
# from the document would get them wrong. Fuzzed on its own (tests/api/test_fuzz_legacy.py).
router = APIRouter(prefix="/roar/api", tags=["legacy"], include_in_schema=False)

_TO_LEGACY = {field: key for key, field in LEGACY_FIELDS.items()}
_V3_ENTERED = b'[{"HTTP_CODE":"200","MSG":"Item has been entered successfully, Version 3"}]'
_V3_DELETED = b'[{"HTTP_CODE":"200","MSG":"Item has been deleted successfully"}]'


def _json(body: bytes) -> Response:
    return exact(body, "application/json")


def _html(body: str) -> Response:
    return exact(body, "text/html")


def _legacy_fields(body: object, required: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A legacy body's known keys under their modern names (unknown keys are ignored, as the
    original's did); a 400 naming the key when the body is not an object."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    fields = {LEGACY_FIELDS[k]: v for k, v in body.items() if k in LEGACY_FIELDS}
    for key in required or ():
        if body.get(key) in (None, ""):
            raise ApiError(400, f"{key} is required", errors=[(key, "is required")])
    return fields


def _invalid(exc: ValidationError) -> ApiError:
    errors = field_errors(exc.errors(), rename=_TO_LEGACY)
    return ApiError(400, describe_errors(errors), errors=errors)


# Reads -----------------------------------------------------------------------------------


@router.get("/v1/registry", summary="Every agent, ordered by id")
async def registry_v1(request: Request) -> Response:
    # The hottest route of the workshop's load scripts: no dependency injection on the way to
    # bytes that are already rendered.
    return _json((await request.app.state.cache.get()).legacy_list)


async def _search(db: DatabaseDep, species: str | None, name: str | None = None) -> Response:
    if not species:
        return exact("Error: please specify a species for this search.", "text/plain", 400)
    # The database answers through its species index (a scan of the snapshot cost O(table)).
    async with db.connect() as conn:
        rows = await crud.find_by_species(conn, species=species, name=name)
    return _json(legacy_json([row._mapping for row in rows], with_id=False))


@router.get("/v2/registry", summary="Agents of one species (query parameter)")
async def registry_v2(db: DatabaseDep, species: str | None = None) -> Response:
    return await _search(db, species)


@router.get("/v2/registry/{species}", summary="Agents of one species")
async def registry_v2_species(db: DatabaseDep, species: str) -> Response:
    return await _search(db, species)


@router.get("/v2/registry/{species}/{name}", summary="Agents of one species and name")
async def registry_v2_species_name(db: DatabaseDep, species: str, name: str) -> Response:
    return await _search(db, species, name)


# Writes ----------------------------------------------------------------------------------


async def _insert(request: Request, db: DatabaseDep, cache: CacheDep) -> None:
    try:
        agent = AgentCreate.model_validate(_legacy_fields(await read_json_body(request)))
    except ValidationError as exc:
        raise _invalid(exc) from None
    async with db.connect() as conn:
        await crud.create_agent(conn, values=agent.to_row())
    cache.invalidate()


@router.post("/v2/registry", dependencies=[WriteAccess], summary="Add an agent")
async def insert_v2(request: Request, db: DatabaseDep, cache: CacheDep) -> Response:
    await _insert(request, db, cache)
    return exact("Item inserted", "text/plain")


@router.post("/v3/registry", dependencies=[WriteAccess], summary="Add an agent (v3 answer)")
async def insert_v3(request: Request, db: DatabaseDep, cache: CacheDep) -> Response:
    await _insert(request, db, cache)
    return _json(_V3_ENTERED)


@router.put(
    "/v3/registry/{species}/{name}",
    dependencies=[WriteAccess],
    summary="Set the last service date of the agent named in the body (the path is ignored)",
)
async def update_v3(
    request: Request, db: DatabaseDep, cache: CacheDep, species: str, name: str
) -> Response:
    body = await read_json_body(request)
    fields = _legacy_fields(body, required=("AGENT_NAME",))
    try:
        change = LastServiceUpdate.model_validate(fields)
    except ValidationError as exc:
        raise _invalid(exc) from None
    async with db.connect() as conn:
        try:
            await crud.set_last_service_by_name(
                conn, name=change.name, service_last=change.service_last
            )
        except crud.NotFound:
            raise ApiError(404, f"there is no agent named {change.name!r}") from None
        except ValueError as exc:
            raise ApiError(400, str(exc), errors=[("SERVICE_LAST", str(exc))]) from None
    cache.invalidate()
    return _json(_V3_ENTERED)


@router.delete(
    "/v3/registry/{species}/{name}",
    dependencies=[WriteAccess],
    summary="Delete the agents with exactly this name and species",
)
async def delete_v3(db: DatabaseDep, cache: CacheDep, species: str, name: str) -> Response:
    async with db.connect() as conn:
        try:
            await crud.delete_by_name_species(conn, name=name, species=species)
        except crud.NotFound:
            raise ApiError(
                404, f"there is no agent named {name!r} of species {species!r}"
            ) from None
    cache.invalidate()
    return _json(_V3_DELETED)


# Status (text/html, as the original) -----------------------------------------------------


@router.get("/v1/status", summary="What serves this API")
async def status() -> Response:
    return _html("<p>Python Web Service</p>")


@router.get("/v1/status/version", summary="The build's status version (v1 00.01.00, v2 00.02.00)")
async def status_version(settings: SettingsDep) -> Response:
    return _html(f"<p>Version</p>{settings.status_version}")


@router.get("/v1/status/database", summary="The database's own current date and time")
async def status_database(db: DatabaseDep) -> Response:
    async with db.connect() as conn:
        now = await conn.scalar(text("SELECT CURRENT_TIMESTAMP"))
    if isinstance(now, dt.datetime):
        now = now.isoformat(sep=" ")
    return _html(f"<p>Database</p>{now}")


__all__ = ["router"]
