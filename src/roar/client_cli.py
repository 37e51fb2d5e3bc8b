"""``roar agents``: the modern API from a shell (tables for people, --json for scripts)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from roar.config import Settings

if TYPE_CHECKING:  # imported when a command runs: `roar serve` need not load an HTTP client
    import httpx

__all__ = ["agents"]

_COLUMNS = (
    ("id", "ID"),
    ("name", "NAME"),
    ("species", "SPECIES"),
    ("service_start", "FIRST SERVICE"),
    ("service_last", "LAST SERVICE"),
    ("adversary_name", "ADVERSARY"),
    ("adversary_tech", "ADVERSARY TECH"),
)


def _client(ctx: click.Context) -> httpx.Client:
    import httpx

    token = Settings().token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=ctx.obj["url"], headers=headers, timeout=10)


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        problem = response.json()
        detail = problem.get("detail") or problem.get("title")
    except ValueError:
        detail = response.text.strip()
    raise click.ClickException(f"{response.status_code}: {detail}")


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned text table with the API's fields as columns."""
    cells = [[h for _, h in _COLUMNS]] + [
        ["" if row.get(k) is None else str(row[k]) for k, _ in _COLUMNS] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def _emit(ctx: click.Context, data: Any, rows: list[dict[str, Any]]) -> None:
    if ctx.obj["json"]:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(table(rows))


@click.group()
@click.option(
    "--url",
    envvar="ROAR_URL",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="ROAR's base URL (ROAR_URL). Writes send ROAR_API_TOKEN if set.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def agents(ctx: click.Context, url: str, as_json: bool) -> None:
    """List, add, change and delete agents through the HTTP API."""
    ctx.obj = {"url": url.rstrip("/"), "json": as_json}


@agents.command("list")
@click.option("--species", help="Only this species (any case).")
@click.option("--name", help="Names containing this text (any case).")
@click.option("--sort", default="id", show_default=True, help="e.g. name or -service_start.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@click.pass_context
def list_(ctx: click.Context, /, **query: Any) -> None:
    """List agents."""
    params = {k: v for k, v in query.items() if v is not None}
    with _client(ctx) as client:
        page = _check(client.get("/api/v1/agents", params=params)).json()
    _emit(ctx, page, page["items"])
    if not ctx.obj["json"]:
        click.echo(f"({len(page['items'])} of {page['total']})", err=True)


def _fields(**options: Any) -> dict[str, Any]:
    names = {
        "start": "service_start",
        "last": "service_last",
        "adversary": "adversary_name",
        "tech": "adversary_tech",
    }
    return {names.get(k, k): v for k, v in options.items() if v is not None}


_field_options = [
    click.option("--name"),
    click.option("--species"),
    click.option("--start", help="Date of first service, YYYY-MM-DD."),
    click.option("--last", help="Date of last service, YYYY-MM-DD."),
    click.option("--adversary"),
    click.option("--tech", help="The adversary's technology."),
]


def _with_fields(fn: Any) -> Any:
    for option in reversed(_field_options):
        fn = option(fn)
    return fn


@agents.command()
@_with_fields
@click.pass_context
def add(ctx: click.Context, /, **options: Any) -> None:
    """Add an agent (--name, --species and --start are required)."""
    with _client(ctx) as client:
        agent = _check(client.post("/api/v1/agents", json=_fields(**options))).json()
    _emit(ctx, agent, [agent])


@agents.command()
@click.argument("agent_id", type=int)
@_with_fields
@click.option("--if-match", type=int, help="Only if the agent is still at this version.")
@click.pass_context
def update(ctx: click.Context, /, agent_id: int, if_match: int | None, **options: Any) -> None:
    """Change the given fields of agent AGENT_ID."""
    changes = _fields(**options)
    if not changes:
        raise click.UsageError("nothing to change: give at least one field option")
    headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
    with _client(ctx) as client:
        agent = _check(
            client.patch(f"/api/v1/agents/{agent_id}", json=changes, headers=headers)
        ).json()
    _emit(ctx, agent, [agent])


@agents.command()
@click.argument("agent_id", type=int)
@click.pass_context
def delete(ctx: click.Context, agent_id: int) -> None:
    """Delete agent AGENT_ID."""
    with _client(ctx) as client:
        _check(client.delete(f"/api/v1/agents/{agent_id}"))
    if ctx.obj["json"]:
        click.echo(json.dumps({"deleted": agent_id}))
    else:
        click.echo(f"deleted agent {agent_id}")
