"""A rolling restart behind a real proxy loses no request: two ROAR processes behind Envoy
(active health checks on /readyz, no retries), each in turn stopped with SIGTERM and started
again on its port while a bounded load of reads and writes runs through Envoy. And an idle
pooled connection stays usable: ROAR keeps it open longer than proxies and clients keep theirs.

What makes the restart work is ROAR's drain (roar.server): on SIGTERM readiness turns 503 while
the server keeps serving for ROAR_SHUTDOWN_DRAIN seconds, so Envoy takes the instance out of
rotation before its listener closes.
"""

from __future__ import annotations

import asyncio
import http.client
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from support.envoy import FrontProxy
from support.roar import RoarServer, migrate
from support.traffic import run_concurrently

#: Envoy must see readiness turn 503 before the listener closes: its checks run every 0.2 s and
#: a draining ROAR answers them at once, but a busy machine delays everything.
DRAIN = 2.0
#: Requests in flight through Envoy: enough to reach both instances all the time, few enough
#: that one instance alone still answers its health checks in time on a busy machine.
CONCURRENCY = 4


@dataclass
class Call:
    path: str
    started: float
    status: int | None = None
    error: str | None = None
    text: str = ""


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RoarServer]]:
    """Two ROARs on one SQLite file: one with a worker supervisor (2 workers), one without."""
    tmp_path = tmp_path_factory.mktemp("rolling")
    env = {
        "ROAR_DATA_DIR": str(tmp_path / "data"),
        "ROAR_SHUTDOWN_DRAIN": str(DRAIN),
        "ROAR_SHUTDOWN_GRACE": "5",
        "ROAR_LOG_LEVEL": "WARNING",
    }
    migrate(env)
    servers = [
        RoarServer(env=env, log_path=tmp_path / f"roar-{workers}.log", workers=workers)
        for workers in (2, 1)
    ]
    try:
        with ThreadPoolExecutor() as pool:  # in parallel: each start takes a second or two
            list(pool.map(RoarServer.start, servers))
        yield servers
    finally:
        for server in servers:
            server.terminate()
        time.sleep(0.5)
        for server in servers:  # a second SIGTERM skips the drain: nothing to drain for here
            server.terminate()
            server.stop()


async def _load_during(roll: asyncio.Task[None], url: str, calls: list[Call]) -> None:
    """Reads and writes through ``url`` until ``roll`` is done (60 s and 20,000 requests at
    most)."""
    stop = asyncio.Event()
    roll.add_done_callback(lambda _: stop.set())
    paths = ["/roar/api/v1/registry", "/api/v1/agents?limit=5", "/api/v1/agents"]
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def step(i: int) -> None:
            call = Call(paths[i % 3], time.monotonic())
            calls.append(call)
            try:
                if call.path == "/api/v1/agents":
                    body = {
                        "name": f"Rolling {i}",
                        "species": "phoenix",
                        "service_start": "2020-01-01",
                    }
                    answer = await client.post(call.path, json=body)
                else:
                    answer = await client.get(call.path)
            except httpx.TransportError as exc:
                call.error = f"{type(exc).__name__}: {exc}"
            else:
                call.status, call.text = answer.status_code, answer.text[:300]

        await run_concurrently(
            step, concurrency=CONCURRENCY, requests=20_000, seconds=60, stop=stop
        )
    await roll  # its failure, if any, is the test's


def _status_after_idle(port: int, idle: float) -> int:
    """GET /healthz, stay idle ``idle`` seconds, GET again on the same connection; the second
    answer's status. Raw http.client, which (unlike httpx) never reconnects behind the caller's
    back: a connection the server closed meanwhile fails (RemoteDisconnected)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        time.sleep(idle)
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


async def _roll(
    servers: list[RoarServer],
    proxy: FrontProxy,
    windows: list[tuple[str, float, float]],
    before_last: asyncio.Future[int],
) -> None:
    """SIGTERM each server in turn, wait for its exit, start it again on its port and wait
    until Envoy has it back in rotation; the last one only once ``before_last`` is done.
    ``windows`` gets each server's draining and down periods."""
    ports = {s.port for s in servers}
    await asyncio.sleep(0.5)
    for server in servers:
        if server is servers[-1]:
            await asyncio.wait([before_last])
        stopping = time.monotonic()
        server.terminate()
        code = await asyncio.to_thread(server.proc.wait, 30)  # type: ignore[union-attr]
        assert code == 0, f"{server.port} exited with {code}:\n{server.log_tail()}"
        exited = time.monotonic()
        await asyncio.to_thread(server.stop)  # closes its log file
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(proxy.wait_healthy, ports)
        windows.append((f"{server.port} draining", stopping, exited))
        windows.append((f"{server.port} down", exited, time.monotonic()))
        await asyncio.sleep(0.3)


def test_rolling_restart_behind_envoy_fails_no_request(
    instances: list[RoarServer], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    proxy = FrontProxy.start(tmp_path / "envoy", [s.port for s in instances])
    try:
        proxy.wait_healthy({s.port for s in instances})
        calls: list[Call] = []
        windows: list[tuple[str, float, float]] = []

        async def main() -> int:
            # Meanwhile a client's idle connection to the instance restarted last: proxies and
            # pooling clients keep one for a while (httpx 5 s, ingress-nginx 60 s) and may reuse
            # it at any moment, so ROAR must not be the side that closes it first.
            idle = asyncio.ensure_future(
                asyncio.to_thread(_status_after_idle, instances[-1].port, 5.5)
            )
            roll = asyncio.create_task(_roll(instances, proxy, windows, idle))
            await _load_during(roll, proxy.url, calls)
            return await idle

        after_idle = asyncio.run(main())

        failed = [c for c in calls if c.error or (c.status or 0) >= 400]
        assert not failed, (
            f"{len(failed)} of {len(calls)} requests failed: "
            f"{Counter((c.status, c.error, c.text[:120]) for c in failed)}; windows {windows}"
        )
        # The load ran while each instance drained and while it was down, not only around.
        for name, begin, end in windows:
            assert any(begin <= c.started < end for c in calls), f"no request while {name}"
        # Both instances took traffic and are back in rotation.
        hosts = proxy.host_stats()
        assert proxy.healthy() == {s.port for s in instances}
        assert all(int(hosts[s.port]["rq_success"]) > 0 for s in instances), hosts
        # 5.5 s idle: past httpx's 5 s, and past uvicorn's default keep-alive (also 5 s).
        assert after_idle == 200
    finally:
        proxy.stop()
