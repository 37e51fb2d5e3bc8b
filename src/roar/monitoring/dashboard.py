"""ROAR's Grafana dashboard, built with grafana-foundation-sdk (the ``monitoring`` extra).

Each panel reads a recording rule of :mod:`roar.monitoring.rules` where one exists, so the
dashboard shows what the alerts evaluate. ``$job`` picks ROAR's scrape jobs; the operator's
panels read every job that exposes the operator's series.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as gm

from roar.monitoring import rules as r
from roar.monitoring import series as s

__all__ = ["PANELS", "UID", "build", "render"]

UID = "roar-overview"
TITLE = "ROAR overview"

_DATASOURCE = gm.DataSourceRef(type_val="prometheus", uid="${datasource}")
_JOB = '{job=~"$job"}'


def _with_job(selector: str = "") -> str:
    """A selector with ROAR's $job filter added: ``_with_job('status=~"5.."')``."""
    return f'{{job=~"$job", {selector}}}' if selector else _JOB


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: Literal["timeseries", "stat"] = "timeseries"
    width: int = 8


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


_ROUTE_RATE = r.ROUTE_REQUESTS_RATE
_SERVER_ERRORS = _with_job('status=~"5.."')
_BUDGET = round(1 - r.AVAILABILITY_SLO, 6)

PANELS: tuple[Row, ...] = (
    Row(
        "Traffic per route (rate, errors, duration)",
        (
            Panel(
                "Requests per second",
                "Answered requests by route template, over 5 minutes.",
                "reqps",
                (Query(f"sum by (route) ({_ROUTE_RATE}{_JOB})", "{{route}}"),),
            ),
            Panel(
                "Share of 5xx answers",
                "Server errors by route; 0 when a route has traffic and no errors.",
                "percentunit",
                (
                    Query(
                        f"(\n  sum by (route) ({_ROUTE_RATE}{_SERVER_ERRORS})\n"
                        f"  or\n  0 * sum by (route) ({_ROUTE_RATE}{_JOB})\n)\n"
                        f"/\nsum by (route) ({_ROUTE_RATE}{_JOB})",
                        "{{route}}",
                    ),
                ),
            ),
            Panel(
                "Latency (p50, p99)",
                "Request duration quantiles by route, over 5 minutes.",
                "s",
                (
                    Query(f"max by (route) ({r.ROUTE_LATENCY_P99}{_JOB})", "p99 {{route}}"),
                    Query(f"max by (route) ({r.ROUTE_LATENCY_P50}{_JOB})", "p50 {{route}}"),
                ),
            ),
        ),
    ),
    Row(
        f"Availability objective ({r.AVAILABILITY_SLO * 100:g}% of requests without a 5xx)",
        (
            Panel(
                "Error budget burn rate (1h)",
                "How many times faster than allowed the budget is being spent; "
                f"{r.BURN_WINDOWS['fast'][0][0]:g} over an hour pages.",
                "x",
                (Query(f"max({r.sli_error_ratio('1h')}{_JOB}) / {_BUDGET}", "burn rate"),),
                kind="stat",
            ),
            Panel(
                "5xx ratio of user-facing requests",
                "The availability SLI over the alerts' shortest and longest windows.",
                "percentunit",
                (
                    Query(f"max({r.sli_error_ratio('5m')}{_JOB})", "5m"),
                    Query(f"max({r.sli_error_ratio('1h')}{_JOB})", "1h"),
                ),
                width=16,
            ),
        ),
    ),
    Row(
        "Versions serving",
        (
            Panel(
                "Instances per version",
                "Scrape targets by ROAR version, status version and UI flavor: a canary "
                "shows as a second entry.",
                "short",
                (
                    Query(
                        f"count by (version, status_version, flavor) ({s.BUILD_INFO}{_JOB})",
                        "{{version}} {{flavor}} ({{status_version}})",
                    ),
                ),
                kind="stat",
                width=24,
            ),
        ),
    ),
    Row(
        "Database",
        (
            Panel(
                "Database reachable",
                "1 when the instance's last database round trip worked, 0 when it failed.",
                "bool_yes_no",
                (Query(f"min by (instance) ({s.DB_UP}{_JOB})", "{{instance}}"),),
            ),
            Panel(
                "Connection pool in use",
                "Checked-out connections over the pool's size, per instance.",
                "percentunit",
                (Query(f"{r.DB_POOL_UTILISATION}{_JOB}", "{{instance}}"),),
            ),
            Panel(
                "Query latency (p99)",
                "Database statement duration by statement kind, over 5 minutes.",
                "s",
                (Query(f"max by (operation) ({r.DB_QUERY_P99}{_JOB})", "{{operation}}"),),
            ),
        ),
    ),
    Row(
        "Agents snapshot (legacy list cache)",
        (
            Panel(
                "Snapshot age and freshness bound",
                "Seconds since each instance read the agents table; above the bound "
                "(ROAR_CACHE_TTL) the background refresh is failing.",
                "s",
                (
                    Query(f"max by (instance) ({r.SNAPSHOT_AGE}{_JOB})", "age {{instance}}"),
                    Query(f"max({s.SNAPSHOT_TTL}{_JOB})", "freshness bound"),
                ),
                width=24,
            ),
        ),
    ),
    Row(
        "Operator",
        (
            Panel(
                "Reconciles per second",
                "RoarApp reconciles by result: ok, invalid (the spec) or error (the API).",
                "ops",
                (Query(f"sum by (result) ({r.OPERATOR_RECONCILES_RATE})", "{{result}}"),),
            ),
            Panel(
                "Reconcile duration (p99)",
                "How long one reconcile of one RoarApp takes, over 5 minutes.",
                "s",
                (Query(f"max({r.OPERATOR_RECONCILE_P99})", "p99"),),
            ),
            Panel(
                "Children written",
                "Children the operator created or patched back (drift repaired), by kind.",
                "ops",
                (
                    Query(
                        f"sum by (kind, action) (rate({s.OPERATOR_WRITES}[$__rate_interval]))",
                        "{{action}} {{kind}}",
                    ),
                ),
            ),
            Panel(
                "RoarApps watched",
                "RoarApps the operator keeps a resync loop for.",
                "short",
                (Query(f"sum({s.OPERATOR_APPS})", "RoarApps"),),
                kind="stat",
                width=24,
            ),
        ),
    ),
)


def _targets(panel: Panel) -> list[prometheus.Dataquery]:
    return [
        prometheus.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(chr(ord("A") + i))
        for i, q in enumerate(panel.queries)
    ]


def _panel(panel: Panel, panel_id: int) -> Any:
    builder: Any
    if panel.kind == "stat":
        builder = (
            stat.Panel()
            .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
            .graph_mode(common.BigValueGraphMode.NONE)
        )
    else:
        builder = timeseries.Panel().fill_opacity(10)
    builder = (
        builder.id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .unit(panel.unit)
        .datasource(_DATASOURCE)
        .height(8)
        .span(panel.width)
    )
    for target in _targets(panel):
        builder = builder.with_target(target)
    return builder


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (a dict)."""
    job = (
        gd.QueryVariable("job")
        .label("job")
        .description("ROAR's scrape jobs")
        .datasource(_DATASOURCE)
        .query(f"label_values({s.BUILD_INFO}, job)")
        .refresh(gm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".+")
        .sort(gm.VariableSort.ALPHABETICAL_ASC)
    )
    board = (
        gd.Dashboard(TITLE)
        .uid(UID)
        .description(
            "ROAR's RED signals per route, availability objective, versions serving, "
            "database, agents snapshot and operator. Generated by `python -m "
            "roar.monitoring` from src/roar/monitoring/dashboard.py: edit that, not this."
        )
        .tags(["roar", "generated"])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone(common.TimeZoneBrowser)
        .with_variable(gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(job)
    )
    panel_id = 0
    for row in PANELS:
        panel_id += 1
        board = board.with_row(gd.Row(row.title).id(panel_id))
        for panel in row.panels:
            panel_id += 1
            board = board.with_panel(_panel(panel, panel_id))
    result: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return result


def render() -> str:
    """The dashboard's JSON file text (stable: sorted keys, two-space indent)."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"
