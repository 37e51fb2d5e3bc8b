"""What the live tests ask Prometheus: every recording rule and every query of the committed
dashboard, split into ROAR's web side and its operator side (each runs against its own
Prometheus), with Grafana's variables replaced the way Grafana would."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from roar.monitoring import rules
from roar.monitoring.render import DASHBOARD_FILE, MONITORING
from support.prometheus import Prometheus

REPO = Path(__file__).resolve().parents[2]
RULE_FILE = REPO / MONITORING / "prometheus" / "prometheus-rules.yml"
DASHBOARD = REPO / MONITORING / "grafana" / "dashboards" / DASHBOARD_FILE
#: What Grafana's $__rate_interval becomes at a 1 s scrape interval and a short time range.
RATE_INTERVAL = "1m"
#: Every series and record of the operator's side starts with this.
OPERATOR_PREFIX = "roar_operator"


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    expr: str

    @property
    def operator(self) -> bool:
        return OPERATOR_PREFIX in self.expr


def dashboard_queries() -> list[PanelQuery]:
    board = json.loads(DASHBOARD.read_text())
    return [
        PanelQuery(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])
    ]


def job_variable_query() -> str:
    """The ``label_values(METRIC, job)`` query of the dashboard's ``job`` variable."""
    board = json.loads(DASHBOARD.read_text())
    (job,) = (v for v in board["templating"]["list"] if v["name"] == "job")
    return str(job["query"])


def substitute(expr: str, jobs: list[str]) -> str:
    """Grafana's interpolation of a multi-value ``$job`` in a regex matcher, and the interval."""
    return expr.replace("$job", "|".join(jobs)).replace("$__rate_interval", RATE_INTERVAL)


def records(operator: bool) -> list[str]:
    return [
        rule.record
        for group in rules.GROUPS
        for rule in group.rules
        if isinstance(rule, rules.Record) and rule.record.startswith(OPERATOR_PREFIX) == operator
    ]


def wait_for_data(prom: Prometheus, exprs: list[str], *, within: float) -> None:
    """Until every expression returns at least one sample; fails naming those that do not."""
    deadline = time.monotonic() + within
    missing = exprs
    while missing and time.monotonic() < deadline:
        time.sleep(0.5)
        missing = [e for e in missing if not prom.query(e)]
    assert not missing, f"no data within {within:g} s for: {missing}"
