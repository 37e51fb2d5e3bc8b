"""The operator's side of the rules and the dashboard against a real Prometheus: the real
operator reconciles a RoarApp on kmock (tests/support/operator_kmock.py) and serves its metrics
on 127.0.0.1; Prometheus scrapes them, and every operator recording rule and dashboard query
returns data.

The operator runs in this process (as in the operator tier), so its metrics server, a daemon
thread of prometheus-client that cannot be stopped, stays up until the session ends.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import kmock
import pytest

from monitoring import queries as q
from roar.monitoring import rules
from support.net import free_port
from support.operator_kmock import NS, ROARAPPS, Operator, kmock_kubeconfig, roarapp
from support.prometheus import Prometheus

pytestmark = pytest.mark.timeout(120)

JOB = "roar-operator"


async def test_operator_rules_and_panels_return_data(
    api: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    port = free_port()
    operator = Operator(kmock_kubeconfig(api, tmp_path / "kubeconfig"))
    operator.settings = operator.settings.model_copy(
        update={"metrics_host": "127.0.0.1", "metrics_port": port}
    )
    api.objects[ROARAPPS, NS, "shop"] = roarapp("shop", replicas=2)
    prom = Prometheus(tmp_path / "prometheus")
    await operator.start()
    try:
        await asyncio.to_thread(
            prom.start,
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(q.RULE_FILE)],
                "scrape_configs": [
                    {"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                ],
            },
        )
        records = q.records(operator=True)
        panels = [q.substitute(p.expr, [JOB]) for p in q.dashboard_queries() if p.operator]
        assert records and panels
        exprs = records + panels
        await asyncio.to_thread(q.wait_for_data, prom, exprs, within=40)
        by_result = f'sum by (result) ({rules.OPERATOR_RECONCILES_RATE}{{job="{JOB}"}})'
        reconciles = prom.query(by_result)
        assert {r["metric"]["result"] for r in reconciles} == {"ok"}
    finally:
        await asyncio.to_thread(prom.stop)
        await operator.stop()
