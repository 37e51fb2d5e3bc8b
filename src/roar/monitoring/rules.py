"""ROAR's Prometheus rules: recording rules for the RED signals and the alerts an on-call
engineer acts on. Each alert's first response is in docs/monitoring.md, under its name.

Recording rules follow Prometheus' ``level:metric:operations`` naming; the dashboard and the
alerts read them through the constants below, so each rule name is written once. Aggregations
keep ``namespace`` and ``job`` (``namespace`` is simply absent outside Kubernetes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roar.kube import names
from roar.monitoring import series as s

__all__ = [
    "ALERTS",
    "AVAILABILITY_SLO",
    "BURN_WINDOWS",
    "GROUPS",
    "LATENCY_P99_THRESHOLD",
    "Alert",
    "Group",
    "Record",
    "rule_file",
    "sli_error_ratio",
]

#: Share of requests (ops endpoints left out) that must not fail with a 5xx, over 30 days.
AVAILABILITY_SLO = 0.999
#: Seconds the 99th percentile of request latency may stay above before RoarHighLatency.
LATENCY_P99_THRESHOLD = 0.5
#: Where each alert's runbook lives; the anchor is the alert's name in lower case.
RUNBOOK_BASE = "https://example.com/roar/docs/monitoring.md"

_KEEP = "namespace, job"
_NOT_OPS = 'route!~"{}"'.format("|".join(s.OPS_ROUTES))


@dataclass(frozen=True)
class Record:
    record: str
    expr: str

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{RUNBOOK_BASE}#{self.name.lower()}",
            },
        }


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Record | Alert, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rules": [r.to_dict() for r in self.rules]}


# --- recording rules ------------------------------------------------------------------------

#: Requests per second by route and status (the R and E of RED, per route).
ROUTE_REQUESTS_RATE = "roar_route:http_requests:rate5m"
#: Latency quantiles by route (the D of RED, per route).
ROUTE_LATENCY_P50 = "roar_route:http_request_duration_seconds:p50_5m"
ROUTE_LATENCY_P99 = "roar_route:http_request_duration_seconds:p99_5m"
#: The 99th percentile over every user-facing route: what RoarHighLatency watches.
LATENCY_P99 = "roar:http_request_duration_seconds:p99_5m"
DB_QUERY_P99 = "roar_operation:db_query_duration_seconds:p99_5m"
DB_POOL_UTILISATION = "roar_instance:db_pool_connections:utilisation"
SNAPSHOT_AGE = "roar_instance:agents_snapshot_age_seconds"
OPERATOR_RECONCILES_RATE = "roar_operator_result:reconciles:rate5m"
OPERATOR_RECONCILE_P99 = "roar_operator:reconcile_duration_seconds:p99_5m"

#: Windows of the multiwindow, multi-burn-rate availability alerts (Google SRE workbook, ch. 5):
#: (burn rate, long window, short window). A burn rate of 1 spends the 30-day budget in 30 days.
BURN_WINDOWS = {
    "fast": ((14.4, "1h", "5m"), (6.0, "6h", "30m")),
    "slow": ((3.0, "1d", "2h"), (1.0, "3d", "6h")),
}


def sli_error_ratio(window: str) -> str:
    """Name of the recorded 5xx ratio of user-facing requests over ``window``."""
    return f"roar:sli_errors:ratio_rate{window}"


def _sli_windows() -> list[str]:
    windows = {w for pairs in BURN_WINDOWS.values() for _, lo, sh in pairs for w in (lo, sh)}
    return sorted(windows, key=_seconds)


def _seconds(window: str) -> int:
    return int(window[:-1]) * {"m": 60, "h": 3600, "d": 86400}[window[-1]]


def _quantile(q: float, bucket: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({bucket}{selector}[5m])))"


def _web_records() -> tuple[Record, ...]:
    # `or 0 * all`: with traffic and no 5xx yet (no such series), the ratio is 0, not empty.
    sli = [
        Record(
            sli_error_ratio(w),
            f'(\n  sum by ({_KEEP}) (rate({s.HTTP_REQUESTS}{{status=~"5..", {_NOT_OPS}}}[{w}]))\n'
            f"  or\n  0 * sum by ({_KEEP}) (rate({s.HTTP_REQUESTS}{{{_NOT_OPS}}}[{w}]))\n)\n"
            f"/\nsum by ({_KEEP}) (rate({s.HTTP_REQUESTS}{{{_NOT_OPS}}}[{w}]))",
        )
        for w in _sli_windows()
    ]
    return (
        Record(
            ROUTE_REQUESTS_RATE,
            f"sum by ({_KEEP}, route, status) (rate({s.HTTP_REQUESTS}[5m]))",
        ),
        Record(ROUTE_LATENCY_P50, _quantile(0.5, s.HTTP_DURATION_BUCKET, f"{_KEEP}, route")),
        Record(ROUTE_LATENCY_P99, _quantile(0.99, s.HTTP_DURATION_BUCKET, f"{_KEEP}, route")),
        Record(LATENCY_P99, _quantile(0.99, s.HTTP_DURATION_BUCKET, _KEEP, f"{{{_NOT_OPS}}}")),
        *sli,
        Record(DB_QUERY_P99, _quantile(0.99, s.DB_QUERY_BUCKET, f"{_KEEP}, operation")),
        Record(
            DB_POOL_UTILISATION,
            f"sum by ({_KEEP}, instance) ({s.DB_POOL_IN_USE})\n"
            f"/\nsum by ({_KEEP}, instance) ({s.DB_POOL_SIZE})",
        ),
        # The age when last scraped (the sample's own timestamp), not at evaluation time: that
        # would add up to a scrape interval to every reading and page on a healthy ROAR. A
        # timestamp of 0 means "not loaded yet" (a worker that just started), not 1970.
        Record(
            SNAPSHOT_AGE,
            f"timestamp({s.SNAPSHOT_LOADED}) - ({s.SNAPSHOT_LOADED} > 0)",
        ),
    )


def _operator_records() -> tuple[Record, ...]:
    return (
        Record(
            OPERATOR_RECONCILES_RATE,
            f"sum by ({_KEEP}, result) (rate({s.OPERATOR_RECONCILES}[5m]))",
        ),
        Record(OPERATOR_RECONCILE_P99, _quantile(0.99, s.OPERATOR_DURATION_BUCKET, _KEEP)),
    )


# --- alerts ---------------------------------------------------------------------------------

ERROR_BUDGET_BURN_FAST = "RoarErrorBudgetBurnFast"
ERROR_BUDGET_BURN_SLOW = "RoarErrorBudgetBurnSlow"
HIGH_LATENCY = "RoarHighLatency"
DATABASE_DOWN = "RoarDatabaseDown"
SNAPSHOT_STALE = "RoarAgentsSnapshotStale"
POD_RESTARTING = "RoarPodRestarting"
OPERATOR_RECONCILE_ERRORS = "RoarOperatorReconcileErrors"


def _burn(speed: str) -> str:
    budget = round(1 - AVAILABILITY_SLO, 6)
    return "\nor\n".join(
        f"(\n  {sli_error_ratio(lo)} > ({rate} * {budget})\n"
        f"and\n  {sli_error_ratio(sh)} > ({rate} * {budget})\n)"
        for rate, lo, sh in BURN_WINDOWS[speed]
    )


#: ROAR's containers by the names the builders give them; the pod-name patterns keep another
#: app's `web` container out. The operator's names are those of deploy/operator/deployment.yaml.
_ROAR_CONTAINERS = (
    f'{{container=~"{names.WEB}|migrate|{names.DB}", pod=~".+-{names.WEB}-[a-z0-9]+-[a-z0-9]+|'
    f'.+-{names.DB}-[0-9]+"}}'
)
_OPERATOR_CONTAINER = '{container="operator", pod=~"roar-operator-[a-z0-9]+-[a-z0-9]+"}'

_SLO_PERCENT = f"{AVAILABILITY_SLO * 100:g}%"

ALERTS: tuple[Alert, ...] = (
    Alert(
        ERROR_BUDGET_BURN_FAST,
        _burn("fast"),
        "2m",
        "critical",
        "ROAR is spending its error budget fast: users are getting 5xx answers",
        "{{ $labels.job }} answers more than "
        f"{BURN_WINDOWS['fast'][1][0]:g} times the error rate its {_SLO_PERCENT} availability "
        "objective allows, over both a long and a short window; at this pace the month's "
        "budget is gone within days.",
    ),
    Alert(
        ERROR_BUDGET_BURN_SLOW,
        _burn("slow"),
        "15m",
        "warning",
        "ROAR is spending its error budget faster than it earns it",
        "{{ $labels.job }} has answered 5xx to more requests than "
        f"its {_SLO_PERCENT} availability objective allows, for hours.",
    ),
    Alert(
        HIGH_LATENCY,
        f"{LATENCY_P99} > {LATENCY_P99_THRESHOLD:g}",
        "10m",
        "warning",
        f"ROAR's slowest 1% of requests take longer than {LATENCY_P99_THRESHOLD * 1000:g} ms",
        "The 99th percentile of {{ $labels.job }}'s request latency is "
        "{{ $value | humanizeDuration }}.",
    ),
    Alert(
        DATABASE_DOWN,
        f"{s.DB_UP} == 0",
        "1m",
        "critical",
        "ROAR cannot reach its database",
        "{{ $labels.instance }} ({{ $labels.job }}) has failed every database round trip for "
        "a minute: it answers /readyz and the API with 503.",
    ),
    Alert(
        SNAPSHOT_STALE,
        f"{SNAPSHOT_AGE} > {s.SNAPSHOT_TTL}\nand\n{s.SNAPSHOT_TTL} > 0",
        "2m",
        "warning",
        "ROAR's agents snapshot is older than its freshness bound",
        "{{ $labels.instance }} last read the agents table {{ $value | humanizeDuration }} "
        "ago, beyond ROAR_CACHE_TTL: the background refresh is failing or falling behind, so "
        "legacy list requests read the database themselves (or fail).",
    ),
    Alert(
        POD_RESTARTING,
        f"increase({s.POD_RESTARTS}{_ROAR_CONTAINERS}[15m]) > 2"
        f"\nor\nincrease({s.POD_RESTARTS}{_OPERATOR_CONTAINER}[15m]) > 2",
        "5m",
        "warning",
        "A ROAR container keeps restarting",
        "{{ $labels.container }} in {{ $labels.namespace }}/{{ $labels.pod }} has restarted "
        "more than twice in 15 minutes.",
    ),
    Alert(
        OPERATOR_RECONCILE_ERRORS,
        f'{OPERATOR_RECONCILES_RATE}{{result="error"}} > 0',
        "15m",
        "warning",
        "The ROAR operator keeps failing to reconcile RoarApps",
        "{{ $labels.job }} has failed reconciles for 15 minutes; "
        "the Degraded condition of the RoarApps names the child and the API's answer.",
    ),
)


def _alerts(*alert_names: str) -> tuple[Alert, ...]:
    return tuple(a for a in ALERTS if a.name in alert_names)


#: Each alert sits after the records it reads, in one group: Prometheus evaluates a group's rules
#: in order, so an alert sees this round's records, not the previous round's.
GROUPS: tuple[Group, ...] = (
    Group(
        "roar.web",
        _web_records()
        + _alerts(
            ERROR_BUDGET_BURN_FAST,
            ERROR_BUDGET_BURN_SLOW,
            HIGH_LATENCY,
            DATABASE_DOWN,
            SNAPSHOT_STALE,
        ),
    ),
    Group("roar.operator", _operator_records() + _alerts(OPERATOR_RECONCILE_ERRORS)),
    Group("roar.pods", _alerts(POD_RESTARTING)),
)


def rule_file() -> dict[str, Any]:
    """The rule file (Prometheus' ``rule_files`` format, also a PrometheusRule's ``spec``)."""
    return {"groups": [g.to_dict() for g in GROUPS]}
