"""Chaos (test-only fault injection, docs/chaos.md) and the X-Roar-Version header, seen by a
client of real ROAR servers: every switch must be observable over HTTP."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.roar import RoarServer, embedded_server, run_roar

TOKEN = "chaos-token-for-tests"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def chaos_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoarServer]:
    server = embedded_server(tmp_path_factory, "chaos", {"ROAR_CHAOS": "true"})
    yield server
    server.stop()


@pytest.fixture
def chaos(chaos_server: RoarServer) -> Iterator[RoarServer]:
    """The chaos server, every switch reset after the test."""
    yield chaos_server
    assert httpx.delete(f"{chaos_server.url}/chaos").status_code == 200


@pytest.fixture(scope="module")
def v2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoarServer]:
    server = embedded_server(tmp_path_factory, "v2", {"ROAR_FLAVOR": "v2"})
    yield server
    server.stop()


def _serve_and_fail(env: dict[str, str], data: Path) -> subprocess.CompletedProcess[str]:
    """``roar serve`` with ``env``, which must refuse to start (it normally does in a second)."""
    try:
        return run_roar("serve", "--port", "0", env={"ROAR_DATA_DIR": str(data)} | env, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"roar serve started with {env} instead of refusing to")


def _put(server: RoarServer, what: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    r = httpx.put(f"{server.url}/chaos/{what}", json=body, timeout=30, **kw)
    assert r.status_code == 200, r.text
    return r


# Off by default, refused in production ----------------------------------------------------


def test_without_chaos_there_is_no_chaos(v2_server: RoarServer) -> None:
    roar = v2_server
    for method, path in [("GET", "/chaos"), ("PUT", "/chaos/readiness"), ("DELETE", "/chaos"),
                         ("GET", "/chaos/status/500"), ("GET", "/chaos/delay/1")]:  # fmt: skip
        r = httpx.request(method, roar.url + path, json={"ready": False})
        assert r.status_code == 404, (method, path)
    assert httpx.get(f"{roar.url}/readyz").status_code == 200
    assert httpx.get(f"{roar.url}/healthz").status_code == 200
    assert httpx.get(f"{roar.url}/roar/api/v1/status/version").status_code == 200
    assert not [p for p in httpx.get(f"{roar.url}/api/openapi.json").json()["paths"]
                if p.startswith("/chaos")]  # fmt: skip
    assert "chaos is ON" not in roar.log_tail(100_000)


def test_chaos_in_production_is_refused_at_start(tmp_path: Path) -> None:
    result = _serve_and_fail({"ROAR_CHAOS": "true", "ROAR_PRODUCTION": "true"}, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roar: error: ")
    assert "ROAR_CHAOS" in lines[0] and "ROAR_PRODUCTION" in lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ROAR_CHAOS_ERROR_RATE", "1.5"), ("ROAR_CHAOS_ERROR_STATUS", "200"),
     ("ROAR_CHAOS_ERROR_STATUS", "420"), ("ROAR_CHAOS_DELAY_RATE", "-0.1"),
     ("ROAR_CHAOS_DELAY_SECONDS", "61")],
)  # fmt: skip
def test_a_bad_chaos_setting_names_the_variable(variable: str, value: str, tmp_path: Path) -> None:
    result = _serve_and_fail({"ROAR_CHAOS": "true", variable: value}, tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"roar: error: {variable}: "), result.stderr


def test_start_warns_and_shows_the_state(chaos: RoarServer) -> None:
    assert "chaos is ON" in chaos.log_tail(100_000)
    state = httpx.get(f"{chaos.url}/chaos").json()
    assert state["faults"] == {
        "error_rate": 0.0, "error_status": 500, "delay_rate": 0.0, "delay_seconds": 0.0
    }  # fmt: skip
    assert state["readiness"] == {"ready": True} and state["liveness"] == {"healthy": True}
    assert state["database"]["held_connections"] == 0 and state["pid"] > 0
    paths = httpx.get(f"{chaos.url}/api/openapi.json").json()["paths"]
    for path in ("/chaos", "/chaos/delay/{seconds}", "/chaos/status/{code}", "/chaos/faults",
                 "/chaos/readiness", "/chaos/liveness", "/chaos/database"):  # fmt: skip
        assert path in paths, path
        for operation in paths[path].values():
            assert "401" in operation["responses"], path


# The switches -----------------------------------------------------------------------------


def test_readiness_switch(chaos: RoarServer) -> None:
    _put(chaos, "readiness", {"ready": False})
    r = httpx.get(f"{chaos.url}/readyz")
    assert r.status_code == 503 and r.json()["status"] == "unready"
    assert httpx.get(f"{chaos.url}/healthz").status_code == 200
    _put(chaos, "readiness", {"ready": True})
    assert httpx.get(f"{chaos.url}/readyz").json() == {"status": "ready", "database": "ok"}


def test_liveness_switch(chaos: RoarServer) -> None:
    _put(chaos, "liveness", {"healthy": False})
    r = httpx.get(f"{chaos.url}/healthz")
    assert r.status_code == 503 and r.json()["status"] == "unhealthy"
    assert httpx.get(f"{chaos.url}/readyz").status_code == 200
    assert httpx.delete(f"{chaos.url}/chaos").json()["liveness"] == {"healthy": True}
    assert httpx.get(f"{chaos.url}/healthz").status_code == 200


def test_delay_route(chaos: RoarServer) -> None:
    started = time.perf_counter()
    r = httpx.get(f"{chaos.url}/chaos/delay/1.2", timeout=30)
    assert time.perf_counter() - started >= 1.2
    assert r.status_code == 200 and r.json() == {"delayed_seconds": 1.2}
    r = httpx.get(f"{chaos.url}/chaos/delay/61")
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["field"] == "seconds"


@pytest.mark.parametrize("code", [200, 204, 302, 404, 418, 500, 503, 599])
def test_status_route_echoes_the_code(chaos: RoarServer, code: int) -> None:
    r = httpx.get(f"{chaos.url}/chaos/status/{code}")
    assert r.status_code == code
    if code >= 400:
        assert r.headers["content-type"] == PROBLEM and r.json()["status"] == code


@pytest.mark.parametrize("code", ["100", "600", "abc"])
def test_status_route_refuses_what_cannot_be_answered(chaos: RoarServer, code: str) -> None:
    r = httpx.get(f"{chaos.url}/chaos/status/{code}")
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["field"] == "code"


def test_error_rate_one_fails_the_app_routes_only(chaos: RoarServer) -> None:
    _put(chaos, "faults", {"error_rate": 1.0, "error_status": 503})
    legacy = [httpx.get(f"{chaos.url}/roar/api/v1/status/version") for _ in range(20)]
    assert {r.status_code for r in legacy} == {503}
    assert legacy[0].headers["content-type"] == "text/plain"
    assert legacy[0].text.startswith("Error: Injected by ROAR's chaos settings")
    modern = httpx.get(f"{chaos.url}/api/v1/agents")
    assert modern.status_code == 503 and modern.headers["content-type"] == PROBLEM
    assert "chaos" in modern.json()["detail"]
    assert httpx.get(f"{chaos.url}/roar/").status_code == 503  # the page too
    for path in ("/healthz", "/readyz", "/metrics", "/version", "/chaos"):
        assert [httpx.get(chaos.url + path).status_code for _ in range(5)] == [200] * 5, path
    metrics = httpx.get(f"{chaos.url}/metrics").text
    counted = ('roar_http_requests_total{method="GET",route="/roar/api/v1/status/version",'
               'status="503"} 20.0')  # fmt: skip
    assert counted in metrics


def test_faults_are_validated(chaos: RoarServer) -> None:
    bad = [
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_status": 200}, "error_status"),
        ({"error_status": 420}, "error_status"),
        ({"delay_seconds": 61}, "delay_seconds"),
        ({"nope": 1}, "nope"),
    ]
    for body, field in bad:
        r = httpx.put(f"{chaos.url}/chaos/faults", json=body)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, body
        assert [e["field"] for e in r.json()["errors"]] == [field]
    assert httpx.get(f"{chaos.url}/chaos").json()["faults"]["error_rate"] == 0.0


# The token ---------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/chaos", None),
    ("DELETE", "/chaos", None),
    ("GET", "/chaos/delay/0", None),
    ("GET", "/chaos/status/200", None),
    ("PUT", "/chaos/faults", {}),
    ("PUT", "/chaos/readiness", {"ready": True}),
    ("PUT", "/chaos/liveness", {"healthy": True}),
    ("PUT", "/chaos/database", {}),
]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoarServer]:
    """Chaos with a token, and random faults from the settings: every app request is delayed
    0.4 s and answered 502."""
    env = {"ROAR_CHAOS": "true", "ROAR_API_TOKEN": TOKEN,
           "ROAR_CHAOS_ERROR_RATE": "1", "ROAR_CHAOS_ERROR_STATUS": "502",
           "ROAR_CHAOS_DELAY_RATE": "1", "ROAR_CHAOS_DELAY_SECONDS": "0.4"}  # fmt: skip
    server = embedded_server(tmp_path_factory, "chaos-token", env)
    yield server
    server.stop()


def test_faults_from_the_settings_apply_and_survive_a_reset(guarded: RoarServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.delete(f"{guarded.url}/chaos", headers=auth).status_code == 200
    started = time.perf_counter()
    r = httpx.get(f"{guarded.url}/api/v1/agents/1")
    assert time.perf_counter() - started >= 0.4
    assert r.status_code == 502 and r.headers["content-type"] == PROBLEM
    _put(guarded, "faults", {}, headers=auth)
    assert httpx.get(f"{guarded.url}/api/v1/agents/1").status_code == 200
    httpx.delete(f"{guarded.url}/chaos", headers=auth)  # back to the settings, not to nothing
    assert httpx.get(f"{guarded.url}/api/v1/agents/1").status_code == 502


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_chaos_route_needs_the_token(
    guarded: RoarServer, method: str, path: str, body: object
) -> None:
    for auth in (None, "Bearer wrong"):
        headers = {"Authorization": auth} if auth else {}
        r = httpx.request(method, guarded.url + path, json=body, headers=headers)
        assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.request(method, guarded.url + path, json=body,
                      headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert r.status_code == 200, r.text


def test_a_switch_without_the_token_changes_nothing(guarded: RoarServer) -> None:
    httpx.put(f"{guarded.url}/chaos/readiness", json={"ready": False})
    assert httpx.get(f"{guarded.url}/readyz").status_code == 200


# Database faults (SQLite and MariaDB) ------------------------------------------------------


@pytest.fixture(scope="module")
def db_chaos(backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoarServer]:  # type: ignore[no-untyped-def]
    env = backend.env | {"ROAR_CHAOS": "true", "ROAR_DB_POOL_SIZE": "2", "ROAR_DB_TIMEOUT": "1"}
    log = tmp_path_factory.mktemp("logs") / f"chaos-{backend.kind}.log"
    server = RoarServer(env=env, log_path=log).start()
    yield server
    httpx.delete(f"{server.url}/chaos", timeout=30)
    server.stop()


def test_slow_queries(db_chaos: RoarServer, backend) -> None:  # type: ignore[no-untyped-def]
    _put(db_chaos, "database", {"slow_query_seconds": 0.6})
    sleeping: list[int] = []
    if backend.mariadb:  # the database itself is slow: ROAR's query waits in SELECT SLEEP

        def watch() -> None:
            for _ in range(40):
                rows = backend.mariadb.query(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                    "WHERE INFO LIKE 'SELECT SLEEP%%'"
                )
                if rows[0][0]:
                    sleeping.append(int(rows[0][0]))
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
    started = time.perf_counter()
    r = httpx.get(f"{db_chaos.url}/api/v1/agents/1", timeout=30)
    assert time.perf_counter() - started >= 0.6
    assert r.status_code == 200 and r.json()["id"] == 1
    if backend.mariadb:
        watcher.join()
        assert sleeping, "no SELECT SLEEP seen in MariaDB's process list"
    _put(db_chaos, "database", {"slow_query_seconds": 0})
    assert httpx.get(f"{db_chaos.url}/chaos").json()["database"]["slow_query_seconds"] == 0


def test_holding_every_pool_connection(db_chaos: RoarServer, backend) -> None:  # type: ignore[no-untyped-def]
    capacity = httpx.get(f"{db_chaos.url}/chaos").json()["database"]["pool_capacity"]
    # On MariaDB the pool (ROAR_DB_POOL_SIZE=2) makes a request wait max(10 x ROAR_DB_TIMEOUT,
    # 10) s before its 503: hold for longer than that. SQLite's pool is SQLAlchemy's default
    # (5 + 10 overflow, 30 s wait): there readiness, bounded by ROAR_DB_TIMEOUT, shows it.
    hold = 12.0 if backend.mariadb else 2.0
    too_many = httpx.put(f"{db_chaos.url}/chaos/database",
                         json={"hold_connections": capacity + 1, "hold_seconds": hold})  # fmt: skip
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "hold_connections"
    started = time.monotonic()
    r = _put(db_chaos, "database", {"hold_connections": capacity, "hold_seconds": hold})
    assert r.json()["database"]["held_connections"] == capacity

    ready = httpx.get(f"{db_chaos.url}/readyz", timeout=30)
    assert ready.status_code == 503
    assert ready.json()["database"].startswith("mysql" if backend.mariadb else "sqlite")
    if backend.mariadb:
        answer = httpx.get(f"{db_chaos.url}/api/v1/agents", timeout=30)
        assert answer.status_code == 503 and answer.headers["content-type"] == PROBLEM
        assert "database" in answer.json()["detail"] and answer.headers["retry-after"]

    while (ready := httpx.get(f"{db_chaos.url}/readyz", timeout=30)).status_code != 200:
        assert time.monotonic() - started < hold + 15, f"not ready again: {ready.text}"
        time.sleep(0.2)
    assert time.monotonic() - started >= hold - 0.1  # recovered only once the hold ended
    assert httpx.get(f"{db_chaos.url}/chaos").json()["database"]["held_connections"] == 0
    assert httpx.get(f"{db_chaos.url}/api/v1/agents/1", timeout=30).status_code == 200


# X-Roar-Version -----------------------------------------------------------------------------


@pytest.mark.parametrize(("flavor", "version"), [("v1", "00.01.00"), ("v2", "00.02.00")])
def test_every_answer_carries_the_version(
    chaos_server: RoarServer, v2_server: RoarServer, flavor: str, version: str
) -> None:
    server = chaos_server if flavor == "v1" else v2_server
    answers = [
        httpx.get(f"{server.url}/roar/api/v1/status/version"),
        httpx.get(f"{server.url}/roar/api/v1/registry"),
        httpx.get(f"{server.url}/no/such/path"),  # 404
        httpx.post(f"{server.url}/healthz"),  # 405
        httpx.post(f"{server.url}/api/v1/agents", json={}),  # 422
        httpx.post(f"{server.url}/api/v1/agents", content=b"x" * 100_000),  # 413
        httpx.get(f"{server.url}/metrics"),
        httpx.get(f"{server.url}/roar/", follow_redirects=False),
        httpx.get(f"{server.url}/", follow_redirects=False),  # 307
    ]
    assert [r.headers.get("x-roar-version") for r in answers] == [version] * len(answers)
    assert {r.status_code for r in answers} == {200, 404, 405, 422, 413, 307}
    assert answers[0].text == f"<p>Version</p>{version}"


def test_the_version_header_is_on_injected_errors(chaos: RoarServer) -> None:
    _put(chaos, "faults", {"error_rate": 1.0})
    r = httpx.get(f"{chaos.url}/roar/api/v1/registry")
    assert r.status_code == 500 and r.headers["x-roar-version"] == "00.01.00"
