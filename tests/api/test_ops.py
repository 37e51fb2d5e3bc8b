"""Operations endpoints, metrics, request ids, logs and the body limit."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from support.roar import RoarServer, migrate
from support.wait import eventually


def test_health_ready_version(roar: RoarServer) -> None:
    assert httpx.get(f"{roar.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{roar.url}/readyz").json() == {"status": "ready", "database": "ok"}
    version = httpx.get(f"{roar.url}/version").json()
    assert version["flavor"] == "v1" and version["status_version"] == "00.01.00"
    assert set(version) == {"version", "status_version", "flavor", "commit"}


def test_metrics_count_by_route_template(roar: RoarServer) -> None:
    for agent_id in (1, 2, 999):
        httpx.get(f"{roar.url}/api/v1/agents/{agent_id}")
    text = httpx.get(f"{roar.url}/metrics").text
    ok = 'roar_http_requests_total{method="GET",route="/api/v1/agents/{agent_id}",status="200"}'
    missing = (
        'roar_http_requests_total{method="GET",route="/api/v1/agents/{agent_id}",status="404"}'
    )
    assert f"{ok} 2.0" in text
    assert f"{missing} 1.0" in text
    assert "/api/v1/agents/999" not in text  # raw paths never become label values
    for name in (
        "roar_http_request_duration_seconds_bucket",
        "roar_http_requests_in_flight",
        "roar_db_pool_connections_in_use",
        "roar_db_query_duration_seconds_count",
        'roar_build_info{commit="unknown",flavor="v1"',
    ):
        assert name in text, name


def test_request_id_is_echoed_and_logged_as_json(roar: RoarServer) -> None:
    r = httpx.get(f"{roar.url}/roar/api/v1/registry", headers={"X-Request-ID": "trace-me-123"})
    assert r.headers["x-request-id"] == "trace-me-123"
    assert len(httpx.get(f"{roar.url}/healthz").headers["x-request-id"]) == 32

    def logged() -> dict[str, Any] | None:
        return next((e for e in roar.access_log() if e["request_id"] == "trace-me-123"), None)

    entry = eventually(logged, what="the request's access-log line", within=5, every=0.1)
    assert entry["route"] == "/roar/api/v1/registry" and entry["status"] == 200
    assert entry["method"] == "GET" and entry["duration_ms"] >= 0


def test_oversized_body_is_413_and_writes_nothing(roar: RoarServer, backend) -> None:  # type: ignore[no-untyped-def]
    before = backend.count()
    body = {
        "name": "Big",
        "species": "x",
        "service_start": "2000-01-01",
        "adversary_tech": "t" * 100_000,
    }
    r = httpx.post(f"{roar.url}/api/v1/agents", json=body)
    assert r.status_code == 413
    # One error format on /api, whichever way the body arrives; plain text on the legacy routes.
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 413 and "limit" in r.json()["detail"]
    legacy = httpx.post(f"{roar.url}/roar/api/v2/registry", json=body)
    assert legacy.status_code == 413 and legacy.headers["content-type"] == "text/plain"
    assert legacy.text.startswith("Error: ")

    def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: the limit still holds
        yield b'{"name": "Big", "species": "x", "service_start": "2000-01-01", "x": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    r = httpx.post(
        f"{roar.url}/roar/api/v2/registry",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "text/plain"
    r = httpx.post(
        f"{roar.url}/api/v1/agents", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert backend.count() == before


def test_unknown_path_and_method_are_problems(roar: RoarServer) -> None:
    r = httpx.get(f"{roar.url}/api/v1/nothing")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = httpx.post(f"{roar.url}/healthz")
    assert r.status_code == 405 and "POST" in r.json()["detail"]


def test_not_ready_until_the_agents_are_loaded(tmp_path: Path) -> None:
    """With a large table the first full read takes a while; until it ends every read would wait
    for it, so /readyz says "starting" (503) and a Service sends no traffic yet."""
    data = {"ROAR_DATA_DIR": str(tmp_path / "data")}
    migrate(data)
    rows = ((f"Agent {i}", "Dog", "2000-01-01", "2010-01-01", "Rex", "teeth") for i in range(LARGE))
    with sqlite3.connect(tmp_path / "data" / "roar.db") as conn:
        conn.executemany(
            "INSERT INTO agents (NAME, SPECIES, SRVSTART, SRVLAST, ADVNAME, ADVTECH) "
            "VALUES (?,?,?,?,?,?)",
            rows,
        )
    server = RoarServer(env=data, log_path=tmp_path / "roar.log").start()
    try:
        seen: list[tuple[int, dict[str, str], bool]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready = httpx.get(f"{server.url}/readyz", timeout=30)
            loaded = _snapshot_loaded(server)
            seen.append((ready.status_code, ready.json(), loaded))
            if ready.status_code == 200:
                break
            time.sleep(0.05)
        starting = {"status": "starting", "database": "ok", "snapshot": "loading"}
        assert (503, starting, False) in seen, seen[:5]
        assert seen[-1] == (200, {"status": "ready", "database": "ok"}, True), seen[-5:]
        assert len(httpx.get(f"{server.url}/roar/api/v1/registry", timeout=30).json()) == LARGE + 5
    finally:
        server.stop()


LARGE = 100_000  # rows: a first read that lasts long enough to be seen (about a second or more)


def _snapshot_loaded(server: RoarServer) -> bool:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    line = next(x for x in text.splitlines() if x.startswith(SNAPSHOT_METRIC))
    return float(line.split()[-1]) > 0


SNAPSHOT_METRIC = "roar_agents_snapshot_loaded_timestamp_seconds"
