"""The hot GETs answered in front of FastAPI (roar.api.fastpath): the same bytes and headers as
the routes behind it, counted in the metrics and written to the access log as every request.

A GET with a query string is left to the FastAPI app, so each hot path is compared with itself
plus a query the route ignores or gives its default value: the app's own answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.roar import RoarServer
from support.wait import eventually

#: Each hot path, and the same request with a query string (answered by the FastAPI route).
HOT = [
    ("/healthz", "/healthz?via=app"),
    ("/readyz", "/readyz?via=app"),
    ("/roar/api/v1/registry", "/roar/api/v1/registry?via=app"),
    ("/roar/api/v1/status/version", "/roar/api/v1/status/version?via=app"),
    ("/api/v1/agents", "/api/v1/agents?limit=50&offset=0&sort=id"),
    ("/api/v1/agents/1", "/api/v1/agents/1?via=app"),
]

#: Text that JSON writers may escape differently: quotes, controls, non-ASCII, emoji, U+2028.
TRICKY = {
    "name": 'Quote " back\\slash \u00e9\u65e5',
    "species": "duck \U0001f986",
    "service_start": "2001-02-03",
    "adversary_name": "tab\there\u2028line",
    "adversary_tech": "\u007f<script>&amp;",
}


@pytest.fixture(scope="module")
def client(roar: RoarServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=roar.url, timeout=10) as c:
        yield c


def _answer(client: httpx.Client, path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    response = client.get(path, headers={"X-Request-Id": "same-id-for-both"})
    # The Date header is the clock's; every other header, and their order, must agree.
    headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"date"]
    return response.status_code, headers, response.content


def test_hot_gets_answer_exactly_as_the_routes_do(client: httpx.Client) -> None:
    created = client.post("/api/v1/agents", json=TRICKY)
    assert created.status_code == 201, created.text
    tricky = f"/api/v1/agents/{created.json()['id']}"
    for fast, app in [*HOT, (tricky, tricky + "?via=app")]:
        fast_answer, app_answer = _answer(client, fast), _answer(client, app)
        assert fast_answer == app_answer, fast
        assert fast_answer[0] == 200, fast
    listed = client.get("/api/v1/agents").json()
    assert created.json() in listed["items"] and listed["total"] == len(listed["items"])


def test_reads_follow_writes_at_once(client: httpx.Client) -> None:
    agent = client.post("/api/v1/agents", json={**TRICKY, "name": "Fleeting"}).json()
    path = f"/api/v1/agents/{agent['id']}"
    changed = client.put(path, json={**TRICKY, "name": "Changed"}, headers={"If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    read = client.get(path)
    assert read.json()["name"] == "Changed" and read.headers["etag"] == '"2"'
    assert any(a["name"] == "Changed" for a in client.get("/api/v1/agents").json()["items"])
    assert client.delete(path).status_code == 204
    gone = client.get(path)
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"
    assert all(a["id"] != agent["id"] for a in client.get("/api/v1/agents").json()["items"])


def _requests_total(client: httpx.Client, route: str) -> float:
    pattern = re.compile(
        rf'^roar_http_requests_total\{{[^}}]*route="{re.escape(route)}"[^}}]*status="200"[^}}]*\}}'
        r" (\S+)$",
        re.M,
    )
    return sum(float(v) for v in pattern.findall(client.get("/metrics").text))


def test_fast_answers_are_counted_and_logged(client: httpx.Client, roar: RoarServer) -> None:
    routes = {
        "/roar/api/v1/registry": "/roar/api/v1/registry",
        "/api/v1/agents/1": "/api/v1/agents/{agent_id}",
        "/healthz": "/healthz",
    }
    before = {path: _requests_total(client, route) for path, route in routes.items()}
    for path in routes:
        for i in range(3):
            assert client.get(path, headers={"X-Request-Id": f"fast-{path}-{i}"}).status_code == 200
    for path, route in routes.items():
        assert _requests_total(client, route) - before[path] == 3, route
    # Probes are left out of the access log by default (ROAR_ACCESS_LOG_PROBES); the rest are in,
    # a moment after the answers (lines leave in batches, roar.logs).
    expected = {f"fast-{p}-{i}" for p in routes if p != "/healthz" for i in range(3)}

    def logged_lines() -> list[dict[str, Any]] | None:
        logged = [e for e in roar.access_log() if e["request_id"].startswith("fast-")]
        return logged if {e["request_id"] for e in logged} >= expected else None

    logged = eventually(logged_lines, what="the access-log lines", within=5, every=0.1)
    ids = {entry["request_id"] for entry in logged}
    assert ids == expected
    entry = next(e for e in logged if e["request_id"] == "fast-/api/v1/agents/1-0")
    assert (entry["route"], entry["status"], entry["method"]) == (
        "/api/v1/agents/{agent_id}",
        200,
        "GET",
    )
