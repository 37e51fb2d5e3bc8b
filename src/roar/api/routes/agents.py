"""The modern agents resource: /api/v1/agents."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from roar.api.deps import CacheDep, DatabaseDep, WriteAccess
from roar.api.problems import ApiError, describe_errors, field_errors, problem_responses
from roar.api.schemas import FIELD_COLUMNS, AgentCreate, AgentPatch, AgentPublic, AgentsPage
from roar.db import agents as crud

#: An agent's id: the `id` column is a signed 32-bit INT on MariaDB, so anything larger can name
#: no agent and is refused by name (422) instead of overflowing the driver (a 500).
AgentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The agent's id")]

# Every operation checks its parameters (422) and reads or writes the database (503).
router = APIRouter(prefix="/api/v1/agents", tags=["agents"], responses=problem_responses(422, 503))
#: The statuses of a write with a JSON body, beyond those of every operation.
_BODY = (400, 401, 409, 413, 415)
_ETAG = {"ETag": {"schema": {"type": "string"}, "description": 'The row version, e.g. "3"'}}
_LOCATION = {"Location": {"schema": {"type": "string"}, "description": "The new agent's URL"}}
_UNMERGEABLE = {
    422: "A field is invalid, or the agent it would make is not valid (e.g. service_last "
    "before the stored service_start); `errors` names each"
}


def _with_etag(status: int, *errors: int, **meaning: Any) -> dict[int | str, dict[str, Any]]:
    return {status: {"headers": _ETAG}, **problem_responses(*errors, **meaning)}


_PATCH_RETRIES = 3
IfMatch = Annotated[
    str | None,
    Header(
        description='The ETag last read (e.g. "3", or `*`); the write fails with 412 if the '
        "agent has another version now (any other value matches no version: 412 too)"
    ),
]
_SORT_KEY = "[-+]?(?:" + "|".join(crud.SORTABLE) + ")"
#: The sort parameter's grammar, stated in the document and checked by _parse_sort: fields
#: separated by commas (spaces around them, and empty entries, allowed), '-' for descending.
SORT_PATTERN = rf"^ *(?:{_SORT_KEY} *)?(?:, *(?:{_SORT_KEY} *)?)*$"


def _etag(agent: AgentPublic) -> str:
    return f'"{agent.version}"'


def _expected_version(if_match: str | None) -> int | None:
    """The row version an If-Match header asks for; None means unconditional."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise ApiError(412, f"If-Match {if_match!r} matches no version of this agent")
    return int(tag)


def _parse_sort(sort: str) -> list[tuple[str, bool]]:
    parts = [p.strip(" ") for p in sort.split(",")]
    if not re.fullmatch(SORT_PATTERN, sort):
        wrong = next((p for p in parts if p and not re.fullmatch(_SORT_KEY, p)), sort)
        allowed = ", ".join(crud.SORTABLE)
        raise ApiError(
            422,
            f"Cannot sort by {wrong!r}; use one of: {allowed}",
            errors=[("sort", f"{wrong!r} is not a sortable field ({allowed})")],
        )
    keys = [(p.lstrip("-+"), p.startswith("-")) for p in parts if p]
    return keys or [("id", False)]


def _validate_merged(body: dict[str, object]) -> AgentCreate:
    """A PATCH result, validated as a whole (e.g. dates still in order)."""
    try:
        return AgentCreate.model_validate(body)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        raise ApiError(422, f"Invalid agent: {describe_errors(errors)}", errors=errors) from None


def _answer(agent: AgentPublic, status: int = 200, **headers: str) -> Response:
    return Response(
        agent.model_dump_json(),
        status,
        {"ETag": _etag(agent), **headers},
        media_type="application/json",
    )


def _not_found(agent_id: int) -> ApiError:
    return ApiError(404, f"There is no agent with id {agent_id}")


def _stale(agent_id: int) -> ApiError:
    return ApiError(
        412, f"Agent {agent_id} changed since the version you sent in If-Match; read it again"
    )


@contextlib.contextmanager
def _answers_for(agent_id: int) -> Iterator[None]:
    """Turn the queries' outcomes for one agent into 404 and 412 answers."""
    try:
        yield
    except crud.NotFound:
        raise _not_found(agent_id) from None
    except crud.VersionMismatch:
        raise _stale(agent_id) from None


@router.get("", response_model=AgentsPage, summary="List agents, filtered, sorted and paged")
async def list_agents(
    db: DatabaseDep,
    cache: CacheDep,
    species: Annotated[str | None, Query(description="Exact species, any case")] = None,
    name: Annotated[str | None, Query(description="Part of the name, any case")] = None,
    sort: Annotated[
        str,
        Query(
            description="Fields to sort by, comma-separated; '-' for descending",
            json_schema_extra={"pattern": SORT_PATTERN},
        ),
    ] = "id",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> AgentsPage:
    order = _parse_sort(sort)
    filtered = bool(species or name)
    async with db.connect() as conn:
        if filtered:
            rows, total = await crud.list_agents(
                conn, species=species, name_contains=name, sort=order, limit=limit, offset=offset
            )
        else:  # counting every row on each page cost O(table): the snapshot knows the count
            rows, log_seq = await crud.page_of_all(conn, sort=order, limit=limit, offset=offset)
    if not filtered:
        total = (await cache.at_least(log_seq)).count
    items = [AgentPublic.from_row(r) for r in rows]
    return AgentsPage(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/{agent_id}",
    response_model=AgentPublic,
    responses=_with_etag(200, 404),
    summary="One agent, with its ETag",
)
async def get_agent(db: DatabaseDep, agent_id: AgentId) -> Response:
    with _answers_for(agent_id):
        async with db.connect() as conn:
            row = await crud.get_agent(conn, agent_id=agent_id)
    return _answer(AgentPublic.from_row(row))


@router.post(
    "",
    status_code=201,
    response_model=AgentPublic,
    responses={201: {"headers": _ETAG | _LOCATION}, **problem_responses(*_BODY)},
    dependencies=[WriteAccess],
    summary="Add an agent",
)
async def create_agent(
    request: Request, db: DatabaseDep, cache: CacheDep, agent: AgentCreate
) -> Response:
    async with db.connect() as conn:
        row = await crud.create_agent(conn, values=agent.to_row())
    cache.invalidate((row.id, row.row_version))
    created = AgentPublic.from_row(row)
    return _answer(created, 201, Location=f"{request.url.path.rstrip('/')}/{created.id}")


@router.put(
    "/{agent_id}",
    response_model=AgentPublic,
    responses=_with_etag(200, *_BODY, 404, 412),
    dependencies=[WriteAccess],
    summary="Replace an agent (conditional with If-Match)",
)
async def replace_agent(
    db: DatabaseDep,
    cache: CacheDep,
    agent_id: AgentId,
    agent: AgentCreate,
    if_match: IfMatch = None,
) -> Response:
    expected = _expected_version(if_match)
    with _answers_for(agent_id):
        async with db.connect() as conn:
            stored = await crud.update_agent(
                conn, agent_id=agent_id, values=agent.to_row(), expected_version=expected,
                version_hint=cache.version_hint(agent_id),
            )  # fmt: skip
    cache.invalidate((agent_id, stored["row_version"]))
    return _answer(AgentPublic.from_columns(stored))


@router.patch(
    "/{agent_id}",
    response_model=AgentPublic,
    responses=_with_etag(200, *_BODY, 404, 412, 422, meaning=_UNMERGEABLE),
    dependencies=[WriteAccess],
    summary="Change some fields of an agent (JSON merge patch; conditional with If-Match)",
)
async def patch_agent(
    db: DatabaseDep,
    cache: CacheDep,
    agent_id: AgentId,
    patch: AgentPatch,
    if_match: IfMatch = None,
) -> Response:
    expected = _expected_version(if_match)
    changes = patch.model_dump(exclude_unset=True)
    for attempt in range(_PATCH_RETRIES):
        with _answers_for(agent_id):
            async with db.connect() as conn:
                current = AgentPublic.from_row(await crud.get_agent(conn, agent_id=agent_id))
                if expected is not None and current.version != expected:
                    raise _stale(agent_id)
                agent = _validate_merged(current.model_dump(include=set(FIELD_COLUMNS)) | changes)
                try:
                    stored = await crud.update_agent(
                        conn, agent_id=agent_id, values=agent.to_row(),
                        expected_version=current.version,
                    )  # fmt: skip
                except crud.VersionMismatch:
                    # Changed between our read and write: the merge is stale. Without If-Match,
                    # merge again onto the new version; with it, the client must decide.
                    if expected is not None or attempt == _PATCH_RETRIES - 1:
                        raise
                    continue
        cache.invalidate((agent_id, stored["row_version"]))
        return _answer(AgentPublic.from_columns(stored))
    raise _stale(agent_id)  # pragma: no cover - the loop always returns or raises


@router.delete(
    "/{agent_id}",
    status_code=204,
    responses=problem_responses(401, 404, 412),
    dependencies=[WriteAccess],
    summary="Delete an agent (conditional with If-Match)",
)
async def delete_agent(
    db: DatabaseDep, cache: CacheDep, agent_id: AgentId, if_match: IfMatch = None
) -> Response:
    expected = _expected_version(if_match)
    with _answers_for(agent_id):
        async with db.connect() as conn:
            await crud.delete_agent(conn, agent_id=agent_id, expected_version=expected)
    cache.invalidate()
    return Response(status_code=204)
