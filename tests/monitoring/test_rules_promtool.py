"""Every alert under ``promtool test rules`` (Debian's prometheus): it fires on the series that
should page and stays silent on the ones that should not. The rule file under test is the
committed deploy/monitoring/prometheus/prometheus-rules.yml; series and rule names come from
roar.monitoring, so a renamed metric that the rules miss fails here."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from roar.monitoring import rules as r
from roar.monitoring import series as s
from roar.monitoring.render import MONITORING, RULES_FILE
from support.prometheus import binary

REPO = Path(__file__).resolve().parents[2]
RULE_FILE = REPO / MONITORING / "prometheus" / RULES_FILE
ALERTS = {a.name: a for a in r.ALERTS}

WEB = {"job": "roar", "namespace": "roar", "instance": "10.0.0.7:8080"}
API_ROUTE = "/api/v1/agents/{agent_id}"


def sel(**labels: str) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


@dataclass(frozen=True)
class Case:
    """Input series, and the moments at which ``alert`` must (or must not) be firing."""

    alert: str
    why: str
    series: dict[str, str]
    #: eval time -> labels of the alerts expected firing then (beyond alertname and severity).
    expect: dict[str, list[dict[str, str]]]
    #: What ``{{ $value | ... }}`` renders to in the firing alerts' annotations.
    value_text: str = ""
    fires: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fires", any(self.expect.values()))


def _counter(per_minute: float, minutes: int) -> str:
    return f"0+{per_minute:g}x{minutes}"


def _requests(route: str, status: str, per_minute: float, minutes: int) -> tuple[str, str]:
    key = s.HTTP_REQUESTS + sel(**WEB, method="GET", route=route, status=status)
    return key, _counter(per_minute, minutes)


def _latency(route: str, slow: bool, minutes: int) -> dict[str, str]:
    """60 requests a minute, all under 100 ms or all between 0.5 and 1 s."""
    out = {}
    for le in ("0.1", "0.5", "1", "+Inf"):
        counted = float(le) > 0.5 if slow else True
        key = s.HTTP_DURATION_BUCKET + sel(**WEB, method="GET", route=route, le=le)
        out[key] = _counter(60 if counted else 0, minutes)
    return out


def _restarts(pod: str, container: str, per_minute: float) -> tuple[str, str]:
    key = s.POD_RESTARTS + sel(namespace="roar", pod=pod, container=container)
    return key, _counter(per_minute, 20)


OPERATOR = {"job": "roar-operator", "namespace": "roar-system"}
WEB_POD = "roar-web-7d9f8b6c5d-x2x4z"


def _reconciles(errors: str) -> dict[str, str]:
    return {
        s.OPERATOR_RECONCILES + sel(**OPERATOR, result="ok"): _counter(2, 30),
        s.OPERATOR_RECONCILES + sel(**OPERATOR, result="error"): errors,
    }


_jobns = {"job": "roar", "namespace": "roar"}
CASES = [
    Case(r.DATABASE_DOWN, "down for two minutes",
         {s.DB_UP + sel(**WEB): "1 0 0 0 0"},
         {"1m": [], "3m": [WEB]}),
    Case(r.DATABASE_DOWN, "a blip shorter than for: is not a page",
         {s.DB_UP + sel(**WEB): "1 0 1 1 1"},
         {"1m": [], "2m": [], "4m": []}),
    Case(r.SNAPSHOT_STALE, "the refresh stopped at 1m; the bound is 30 s",
         {s.SNAPSHOT_LOADED + sel(**WEB): "0 60 60 60 60 60 60",
          s.SNAPSHOT_TTL + sel(**WEB): "30x6"},
         {"2m": [], "5m": [WEB]}, value_text="4m 0s"),
    Case(r.SNAPSHOT_STALE, "refreshed every minute against a 90 s bound",
         {s.SNAPSHOT_LOADED + sel(**WEB): "0+60x6", s.SNAPSHOT_TTL + sel(**WEB): "90x6"},
         {"5m": []}),
    Case(r.SNAPSHOT_STALE, "no snapshot kept (ROAR_CACHE_TTL=0): nothing to be stale",
         {s.SNAPSHOT_LOADED + sel(**WEB): "60x6", s.SNAPSHOT_TTL + sel(**WEB): "0x6"},
         {"5m": []}),
    Case(r.HIGH_LATENCY, "every API request between 0.5 and 1 s for 15 minutes",
         _latency(API_ROUTE, slow=True, minutes=16),
         {"5m": [], "15m": [_jobns]}, value_text="995ms"),
    Case(r.HIGH_LATENCY, "fast API; slow readiness probes do not count",
         _latency(API_ROUTE, slow=False, minutes=16) | _latency("/readyz", slow=True, minutes=16),
         {"15m": []}),
    Case(r.ERROR_BUDGET_BURN_FAST, "9% of requests fail",
         dict([_requests(API_ROUTE, "200", 100, 20), _requests(API_ROUTE, "503", 10, 20)]),
         {"1m": [], "10m": [_jobns]}),
    Case(r.ERROR_BUDGET_BURN_FAST, "0.1% fail (the budget's own pace); probes fail a lot",
         dict([_requests(API_ROUTE, "200", 999, 20), _requests(API_ROUTE, "500", 1, 20),
               _requests("/readyz", "503", 500, 20)]),
         {"10m": []}),
    Case(r.ERROR_BUDGET_BURN_SLOW, "0.4% fail for half an hour: a ticket",
         dict([_requests(API_ROUTE, "200", 996, 40), _requests(API_ROUTE, "503", 4, 40)]),
         {"10m": [], "30m": [_jobns]}),
    Case(r.ERROR_BUDGET_BURN_FAST, "0.4% fail: too slow to page",
         dict([_requests(API_ROUTE, "200", 996, 40), _requests(API_ROUTE, "503", 4, 40)]),
         {"30m": []}),
    Case(r.ERROR_BUDGET_BURN_SLOW, "no errors at all",
         dict([_requests(API_ROUTE, "200", 100, 40)]),
         {"30m": []}),
    Case(r.POD_RESTARTING, "web restarts every minute",
         dict([_restarts(WEB_POD, "web", 1)]),
         {"2m": [], "12m": [{"namespace": "roar", "pod": WEB_POD, "container": "web"}]}),
    Case(r.POD_RESTARTING, "the operator restarts every minute",
         dict([_restarts("roar-operator-5f7c9d8b4-abcde", "operator", 1)]),
         {"12m": [{"namespace": "roar", "pod": "roar-operator-5f7c9d8b4-abcde",
                   "container": "operator"}]}),
    Case(r.POD_RESTARTING, "another app's `web` container, and one ROAR restart, are not ROAR's",
         dict([_restarts("shop-frontend-6b8d9c7f5-qwert", "web", 1),
               (s.POD_RESTARTS + sel(namespace="roar", pod=WEB_POD, container="web"),
                "0 1 1 1 1 1 1 1 1 1 1 1 1")]),
         {"12m": []}),
    Case(r.OPERATOR_RECONCILE_ERRORS, "one failed reconcile a minute for 20 minutes",
         _reconciles(_counter(1, 30)),
         {"10m": [], "20m": [OPERATOR | {"result": "error"}]}),
    Case(r.OPERATOR_RECONCILE_ERRORS, "errors that stopped after five minutes",
         _reconciles("0 1 2 3 4 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5"),
         {"20m": []}),
]  # fmt: skip


def _render(template: str, labels: dict[str, str], value_text: str) -> str:
    """Prometheus' annotation templates, for the two forms ROAR's rules use."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    return re.sub(r"\{\{ \$value \| humanize\w* \}\}", value_text, text)


def _expected(case: Case, labels: dict[str, str]) -> dict[str, Any]:
    alert = ALERTS[case.alert]
    full = {**labels, "severity": alert.severity}
    annotations = alert.to_dict()["annotations"]
    return {
        "exp_labels": full,
        "exp_annotations": {k: _render(v, full, case.value_text) for k, v in annotations.items()},
    }


def _test_file(case: Case) -> dict[str, Any]:
    return {
        "rule_files": [str(RULE_FILE)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": k, "values": v} for k, v in case.series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": at,
                        "alertname": case.alert,
                        "exp_alerts": [_expected(case, labels) for labels in firing],
                    }
                    for at, firing in case.expect.items()
                ],
            }
        ],
    }


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_rule_file_is_valid() -> None:
    result = promtool("check", "rules", str(RULE_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g.rules) for g in r.GROUPS)} rules found" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    fires = {c.alert for c in CASES if c.fires}
    silent = {c.alert for c in CASES if not c.fires}
    assert fires == silent == set(ALERTS)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.alert}: {c.why}" for c in CASES])
def test_alert(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(_test_file(case), sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_error_ratio_is_zero_not_empty_without_errors(tmp_path: Path) -> None:
    """A dashboard shows 0% for a healthy service, not "No data"."""
    series = dict([_requests(API_ROUTE, "200", 60, 10)])
    test = {
        "rule_files": [str(RULE_FILE)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": k, "values": v} for k, v in series.items()],
                "promql_expr_test": [
                    {
                        "expr": r.sli_error_ratio("5m"),
                        "eval_time": "5m",
                        "exp_samples": [
                            {"labels": r.sli_error_ratio("5m") + sel(**_jobns), "value": 0}
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
