"""The generated monitoring files are current, and every consumer ships the same rules and
dashboard: Prometheus' rule file, the kustomize component (kubectl kustomize) and the Helm chart
with monitoring on (helm template), each rendered by the real tool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from manifests import helpers as h
from monitoring import queries as q
from roar.monitoring import render, rules
from support.prometheus import binary

REPO = Path(__file__).resolve().parents[2]
MONITORING_ON = [
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.dashboard.enabled=true",
]


def test_committed_files_are_generated_from_the_code() -> None:
    stale = [
        str(rel)
        for rel, content in render.files().items()
        if not (REPO / rel).exists() or (REPO / rel).read_text() != content
    ]
    assert not stale, f"out of date, run `python -m roar.monitoring`: {stale}"


@pytest.fixture(scope="module")
def chart(kube_tools: None) -> list[dict[str, Any]]:
    return h.render_helm(sets=MONITORING_ON)


@pytest.fixture(scope="module")
def overlay(kube_tools: None, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tree = h.prepare_kustomize_tree(tmp_path_factory.mktemp("kustomize"))
    return h.render_kustomize(tree / "overlays" / "monitoring")


@pytest.fixture(scope="module")
def kube_tools() -> None:
    h.ensure_tools()


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind]
    return obj


@pytest.mark.parametrize("source", ["chart", "overlay"])
def test_rendered_rules_are_valid_and_the_shipped_ones(
    source: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    spec = _one(request.getfixturevalue(source), "PrometheusRule")["spec"]
    assert spec == yaml.safe_load(q.RULE_FILE.read_text()) == rules.rule_file()
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(spec))
    check = subprocess.run(
        [binary("promtool"), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("source", ["chart", "overlay"])
def test_rendered_dashboard_is_the_shipped_one_for_the_sidecar(
    source: str, request: pytest.FixtureRequest
) -> None:
    (cm,) = [
        o
        for o in request.getfixturevalue(source)
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("roar-dashboard")
    ]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"  # what the sidecar looks for
    (text,) = cm["data"].values()
    assert json.loads(text) == json.loads(q.DASHBOARD.read_text())


def test_chart_and_component_monitor_web_alike(
    chart: list[dict[str, Any]], overlay: list[dict[str, Any]]
) -> None:
    """Same endpoint; each selects the labels of its own web Service."""
    for objects in (chart, overlay):
        monitor = _one(objects, "ServiceMonitor")
        (service,) = [
            o for o in objects if o["kind"] == "Service" and o["metadata"]["name"].endswith("-web")
        ]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    endpoints = [_one(o, "ServiceMonitor")["spec"]["endpoints"] for o in (chart, overlay)]
    assert endpoints[0] == endpoints[1]


def test_every_alert_has_a_runbook_section() -> None:
    """Each alert's runbook_url anchor is a heading of docs/monitoring.md."""
    text = (REPO / "docs" / "monitoring.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", m.group(1).strip().lower()).replace(" ", "-")
        for m in re.finditer(r"^#+ (.+)$", text, re.MULTILINE)
    }
    for alert in rules.ALERTS:
        anchor = alert.to_dict()["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor in anchors, f"docs/monitoring.md has no section for {alert.name}"
