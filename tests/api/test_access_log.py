"""The access log scales: probes and metrics are not logged by default, successful requests can be
sampled or not logged at all, and errors always are; read from a real server's log file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from support.roar import RoarServer
from support.wait import eventually

PROBES = ("/healthz", "/readyz", "/metrics")


#: Each test's server settings; the servers start together (one start's wait, not three).
CONFIGS = {
    "default": {},
    "off": {"ROAR_ACCESS_LOG": "false"},
    "sampled": {"ROAR_ACCESS_LOG_SAMPLE": "0.25", "ROAR_ACCESS_LOG_PROBES": "true"},
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RoarServer]]:
    started = {}
    for name, env in CONFIGS.items():
        base = tmp_path_factory.mktemp(f"access-{name}")
        started[name] = RoarServer(env={"ROAR_DATA_DIR": str(base), **env}, log_path=base / "log")
    with ThreadPoolExecutor(len(started)) as pool:
        list(pool.map(RoarServer.start, started.values()))
    yield started
    for server in started.values():
        server.stop()


def _logged(server: RoarServer, requests: list[str]) -> Counter[str]:
    """How many access-log lines each path and status got for ``requests`` (the server is
    stopped first, so that its log is complete)."""
    with httpx.Client(base_url=server.url) as client:
        for path in requests:
            client.get(path)
    assert server.stop() == 0
    # Each line: {"logger": "roar.access", "msg": "GET /path 200", "status": 200, ...}
    return Counter(e["msg"].split(" ", 1)[1] for e in server.access_log())


def _requests(list_count: int = 3) -> list[str]:
    return [
        *PROBES,
        *["/roar/api/v1/registry"] * list_count,
        "/roar/api/v2/registry",  # 400: no species
        "/nowhere",  # 404
    ]


def test_by_default_every_request_but_probes_and_metrics_is_logged(servers) -> None:  # type: ignore[no-untyped-def]
    logged = _logged(servers["default"], _requests())
    assert logged == {
        "/roar/api/v1/registry 200": 3,
        "/roar/api/v2/registry 400": 1,
        "/nowhere 404": 1,
    }


def test_with_the_access_log_off_only_errors_are_logged(servers) -> None:  # type: ignore[no-untyped-def]
    logged = _logged(servers["off"], _requests())
    assert logged == {"/roar/api/v2/registry 400": 1, "/nowhere 404": 1}


def test_a_sample_of_successes_is_logged_and_every_error(servers) -> None:  # type: ignore[no-untyped-def]
    logged = _logged(servers["sampled"], [*_requests(list_count=200), *PROBES * 40])
    # 50 and 30 expected; each range is about 5 standard deviations wide on either side.
    assert 20 <= logged["/roar/api/v1/registry 200"] <= 85
    assert 8 <= sum(logged[f"{p} 200"] for p in PROBES) <= 55  # probes sampled alike
    assert logged["/roar/api/v2/registry 400"] == logged["/nowhere 404"] == 1


def test_lines_show_while_the_server_runs_and_none_is_lost_when_it_stops(tmp_path: Path) -> None:
    """Lines leave in batches (roar.logs), yet a `tail -f` (`kubectl logs -f`) sees a request's
    line a moment after it, and each of two workers writes its last lines when it stops."""
    server = RoarServer(
        env={"ROAR_DATA_DIR": str(tmp_path)}, log_path=tmp_path / "log", workers=2
    ).start()
    try:
        httpx.get(f"{server.url}/roar/api/v1/registry", headers={"X-Request-Id": "tail-f"})
        eventually(
            lambda: '"request_id":"tail-f"' in server.log_path.read_text(),
            what="the request's line in the running server's log",
            within=5,
        )
        ids = [f"burst-{i}" for i in range(300)]
        for rid in ids:  # a new connection each: both workers answer some
            httpx.get(f"{server.url}/roar/api/v1/registry", headers={"X-Request-Id": rid})
    finally:
        assert server.stop() == 0
    logged = Counter(e["request_id"] for e in server.access_log())
    assert {rid: logged[rid] for rid in ids} == dict.fromkeys(ids, 1)
