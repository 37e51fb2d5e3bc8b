"""A real Prometheus and Alertmanager (Debian's) over a real ROAR (two workers) on MariaDB, under
a bounded request loop: Prometheus scrapes ROAR, every recording rule and every dashboard query
of the web side returns data, nothing alerts while ROAR is healthy; MariaDB stops and
RoarDatabaseDown goes pending at once, fires once its ``for:`` has passed, and Alertmanager
delivers it to a webhook receiver.

The rule file is the committed one with one change: RoarDatabaseDown's ``for:`` is 10 s instead
of 1 m (time budget; the 1 m window itself is proven in simulated time by promtool's unit tests,
tests/monitoring/test_rules_promtool.py). The scrape and evaluation intervals are 1 s instead of
the usual 30 s, so the alert goes pending within about two seconds of the outage.
Tests run in file order: they walk one stack through its life.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from monitoring import queries as q
from roar.monitoring import rules
from support.mariadb import MariaDB
from support.prometheus import Alertmanager, Prometheus, Webhook
from support.roar import RoarServer, migrate
from support.wait import eventually

pytestmark = pytest.mark.timeout(300)

JOB = "roar"
#: Seconds from "MariaDB stopped" to the alert going pending: ROAR's refresh runs every
#: ROAR_CACHE_TTL / 2 (0.5 s), then one scrape and one evaluation (1 s each).
PENDING_WITHIN = 5
DB_DOWN = next(a for a in rules.ALERTS if a.name == rules.DATABASE_DOWN)
#: RoarDatabaseDown's ``for:`` in this test's copy of the rule file.
FOR_SECONDS = 10
#: The requests of the loop: the legacy list (snapshot), the modern API, the page, a 404.
PATHS = ("/roar/api/v1/registry", "/api/v1/agents", "/api/v1/agents/1", "/roar/", "/nowhere")


class RequestLoop:
    """Requests in a background thread, bounded in count and time, until stopped."""

    def __init__(self, base: str, *, max_requests: int = 20_000, max_seconds: float = 280):
        self.base, self.max_requests, self.max_seconds = base, max_requests, max_seconds
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while not self._stop.is_set() and self.sent < self.max_requests:
                if time.monotonic() > deadline:
                    break
                with contextlib.suppress(httpx.HTTPError):  # 503s during the outage
                    client.get(PATHS[self.sent % len(PATHS)])
                self.sent += 1
                self._stop.wait(0.02)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class Stack:
    db: MariaDB
    roar: RoarServer
    prometheus: Prometheus
    alertmanager: Alertmanager
    webhook: Webhook
    loop: RequestLoop


def _short_window_rules(work: Path) -> Path:
    """The committed rule file, with RoarDatabaseDown's ``for:`` cut to FOR_SECONDS."""
    doc = yaml.safe_load(q.RULE_FILE.read_text())
    found = [
        rule
        for group in doc["groups"]
        for rule in group["rules"]
        if rule.get("alert") == rules.DATABASE_DOWN
    ]
    assert len(found) == 1, found
    found[0]["for"] = f"{FOR_SECONDS}s"
    path = work / "rules.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("monitoring")
    # Its own MariaDB: the last test stops it, which must not hurt other modules.
    with MariaDB.temporary() as db, Webhook().running() as webhook:
        env = {"ROAR_DATABASE_URL": db.url}
        migrate(env)
        roar = RoarServer(env=env, log_path=work / "roar.log", workers=2).start()
        am = Alertmanager(work / "alertmanager")
        prom = Prometheus(work / "prometheus")
        try:
            am.start(
                {
                    "route": {
                        "receiver": "test",
                        "group_by": ["alertname"],
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [{"name": "test", "webhook_configs": [{"url": webhook.url}]}],
                }
            )
            prom.start(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(_short_window_rules(work))],
                    "alerting": {
                        "alertmanagers": [{"static_configs": [{"targets": [am.url[7:]]}]}]
                    },
                    "scrape_configs": [
                        {"job_name": JOB, "static_configs": [{"targets": [roar.url[7:]]}]}
                    ],
                }
            )
            with RequestLoop(roar.url) as loop:
                yield Stack(db, roar, prom, am, webhook, loop)
        finally:
            prom.stop()
            am.stop()
            roar.stop()


def test_prometheus_scrapes_roar(stack: Stack) -> None:
    (target,) = eventually(stack.prometheus.targets_up, what="ROAR's target up", within=20)
    assert target["labels"]["job"] == JOB
    build = stack.prometheus.query('roar_build_info{job="roar"}')
    assert build and build[0]["metric"]["flavor"] == "v1"


def test_every_web_recording_rule_returns_data(stack: Stack) -> None:
    names = q.records(operator=False)
    assert names
    q.wait_for_data(stack.prometheus, names, within=30)


def test_every_web_dashboard_query_returns_data(stack: Stack) -> None:
    metric = q.job_variable_query().removeprefix("label_values(").split(",")[0]
    jobs = eventually(
        lambda: stack.prometheus.api("label/job/values", **{"match[]": metric}),
        what="the job variable's values",
        within=20,
    )
    assert jobs == [JOB]  # what the dashboard's job variable offers
    panels = [q.substitute(p.expr, jobs) for p in q.dashboard_queries() if not p.operator]
    assert panels
    q.wait_for_data(stack.prometheus, panels, within=15)


def test_nothing_alerts_while_roar_is_healthy(stack: Stack) -> None:
    assert stack.loop.sent > 100  # the loop has been running all along
    active = [
        alert
        for alert in stack.prometheus.api("alerts")["alerts"]
        # A pending (not firing) latency alert says the machine is busy, not that ROAR is ill:
        # CI runs this beside the cluster tier on 2 cores, where a p99 of 0.8 s happens.
        if not (alert["labels"]["alertname"] == rules.HIGH_LATENCY and alert["state"] == "pending")
    ]
    assert active == [], active


def test_database_down_fires_within_its_window_and_is_delivered(stack: Stack) -> None:
    prom = stack.prometheus
    stopped = time.monotonic()
    stack.db.stop()
    try:
        (pending,) = eventually(
            lambda: prom.alerts(rules.DATABASE_DOWN), what="pending", within=PENDING_WITHIN
        )
        assert pending["state"] == "pending"
        assert pending["labels"]["instance"] == stack.roar.url[7:]

        def firing() -> list[dict[str, object]]:
            return [a for a in prom.alerts(rules.DATABASE_DOWN) if a["state"] == "firing"]

        eventually(firing, what="firing", within=FOR_SECONDS + 15)
        elapsed = time.monotonic() - stopped
        assert FOR_SECONDS <= elapsed <= FOR_SECONDS + PENDING_WITHIN + 5, elapsed

        def delivered() -> dict[str, object] | None:
            note = stack.webhook.next(timeout=10)
            return note if note["groupLabels"] == {"alertname": rules.DATABASE_DOWN} else None

        note = eventually(delivered, what="the notification", within=20, every=0)
        assert note["status"] == "firing"
        (alert,) = note["alerts"]
        assert alert["labels"]["severity"] == DB_DOWN.severity
        assert alert["labels"]["instance"] == stack.roar.url[7:]
        assert alert["annotations"]["runbook_url"].endswith("#roardatabasedown")
        assert httpx.get(f"{stack.roar.url}/readyz").status_code == 503
    finally:
        stack.db.start()
