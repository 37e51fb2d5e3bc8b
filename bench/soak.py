"""Soak: ROAR with 2 workers on MariaDB under a mixed load at 64 connections for 10 minutes.

Reads (legacy list, modern list, modern get) and writes (create, PUT, PATCH, delete, keeping the
table at about a hundred agents) from one async httpx client on loopback. Every ``--sample``
seconds it records the RSS and PSS (/proc/PID/smaps_rollup) of the supervisor and of each worker,
and the requests and errors since the last sample. An error is a transport failure or any
status other than the operation's success. The result (a row every 60 s, and RSS first vs last
two minutes) replaces the `soak` section of docs/benchmarks.md.

    .venv/bin/python bench/soak.py [--duration 600] [--connections 64] [--sample 10]

Needs MariaDB (scripts/setup/mariadb.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from report import markers, write_section  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from roar.load import failure_reason  # noqa: E402
from support.mariadb import MariaDB  # noqa: E402
from support.procs import cpu_seconds, memory, worker_pids  # noqa: E402
from support.roar import RoarServer, migrate  # noqa: E402
from support.traffic import run_concurrently  # noqa: E402

START, END = markers("soak")
MB = 1024 * 1024
#: Share of each operation; writes keep the soak's own agents between LOW and HIGH.
MIX = {"legacy list": 40, "modern list": 15, "modern get": 15, "write": 30}
LOW, HIGH = 40, 120


@dataclass
class Sample:
    at: float
    requests: int
    errors: int
    #: (rss, pss) in bytes per process: "supervisor", "worker 1", "worker 2"
    memory: dict[str, tuple[int, int]]


@dataclass
class Soak:
    """The load's shared state: counters, and the ids of the agents it created and owns."""

    rng: random.Random = field(default_factory=lambda: random.Random(15))
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    owned: list[int] = field(default_factory=list)
    serial: int = 0

    def body(self) -> dict[str, str]:
        self.serial += 1
        day = dt.date(2000, 1, 1) + dt.timedelta(days=self.serial % 5000)
        return {
            "name": f"Soak {self.serial}",
            "species": "soaker",
            "service_start": day.isoformat(),
            "adversary_name": "entropy",
            "adversary_tech": "x" * (self.serial % 200),
        }

    async def step(self, client: httpx.AsyncClient) -> None:
        kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if kind == "write":
            await self.write(client)
        elif kind == "legacy list":
            await self.call(client, "legacy list", "GET", "/roar/api/v1/registry", 200)
        elif kind == "modern list":
            path = f"/api/v1/agents?limit=20&offset={self.rng.randrange(0, 100)}"
            await self.call(client, kind, "GET", path, 200)
        else:
            await self.call(client, kind, "GET", f"/api/v1/agents/{self.rng.randint(1, 5)}", 200)

    async def write(self, client: httpx.AsyncClient) -> None:
        """Create below LOW owned agents, delete above HIGH, else any write. An agent being
        changed is taken out of ``owned`` meanwhile, so no two writes race on one row."""
        n = len(self.owned)
        op = "create" if n < LOW else "delete" if n > HIGH else None
        op = op or self.rng.choice(["create", "put", "patch", "delete"])
        if op == "create":
            answer = await self.call(client, op, "POST", "/api/v1/agents", 201, self.body())
            if answer is not None:
                self.owned.append(answer.json()["id"])
            return
        agent = self.owned.pop(self.rng.randrange(len(self.owned)))
        path = f"/api/v1/agents/{agent}"
        if op == "delete":
            if await self.call(client, op, "DELETE", path, 204) is None:
                self.owned.append(agent)
            return
        body = self.body() if op == "put" else {"adversary_name": f"nemesis {self.serial}"}
        await self.call(client, op, op.upper(), path, 200, body)
        self.owned.append(agent)

    async def call(
        self,
        client: httpx.AsyncClient,
        kind: str,
        method: str,
        path: str,
        expect: int,
        body: dict[str, str] | None = None,
    ) -> httpx.Response | None:
        """One request; the answer if it had the expected status, else None (an error)."""
        self.requests += 1
        try:
            answer = await client.request(method, path, json=body)
        except httpx.TransportError as exc:
            self.errors[f"{kind}: {type(exc).__name__}"] += 1
            print(f"error: {method} {path}: {failure_reason(exc)}", flush=True)
            return None
        if answer.status_code != expect:
            self.errors[f"{kind}: {answer.status_code}"] += 1
            print(f"error: {method} {path}: {answer.status_code} {answer.text[:200]}", flush=True)
            return None
        return answer


def _processes(server: RoarServer) -> dict[str, int]:
    """The server's processes by name: the supervisor, then its workers (pids in the name)."""
    supervisor: int = server.proc.pid  # type: ignore[union-attr]
    pids = {"supervisor": supervisor}
    for i, pid in enumerate(worker_pids(supervisor), 1):
        pids[f"worker {i} ({pid})"] = pid
    return pids


def _memory(server: RoarServer) -> dict[str, tuple[int, int]]:
    out = {}
    for name, pid in _processes(server).items():
        m = memory(pid)
        out[name] = (m.rss, m.pss)
    return out


@dataclass
class Result:
    samples: list[Sample]
    errors: Counter[str]
    #: CPU seconds each process used during the load, the load client included.
    cpu: dict[str, float]


async def soak(
    server: RoarServer, db: MariaDB, duration: float, connections: int, every: float
) -> Result:
    state = Soak()
    samples: list[Sample] = []
    started = time.monotonic()
    done = asyncio.Event()
    pids = _processes(server) | {"mariadbd": db.proc.pid}  # type: ignore[union-attr]
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    client_before = time.process_time()

    async def sampler() -> None:
        last_requests = last_errors = 0
        while True:
            errors = sum(state.errors.values())
            sample = Sample(
                time.monotonic() - started,
                state.requests - last_requests,
                errors - last_errors,
                _memory(server),
            )
            samples.append(sample)
            last_requests, last_errors = state.requests, errors
            print(_line(sample), flush=True)
            if done.is_set():
                return
            with contextlib.suppress(TimeoutError):  # the next sample is due
                await asyncio.wait_for(done.wait(), every - (time.monotonic() - started) % every)

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
        watch = asyncio.create_task(sampler())
        await run_concurrently(
            lambda _: state.step(client),
            concurrency=connections,
            requests=100_000_000,
            seconds=duration,
        )
        done.set()
        await watch
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    cpu["load client"] = time.process_time() - client_before
    return Result(samples, state.errors, cpu)


def _line(s: Sample) -> str:
    mem = "  ".join(
        f"{name.split(' (')[0]} {rss / MB:6.1f}/{pss / MB:6.1f}"
        for name, (rss, pss) in s.memory.items()
    )
    return f"{s.at:6.0f} s  {s.requests:6d} req  {s.errors:3d} err  RSS/PSS MB: {mem}"


def _mean_rss(samples: list[Sample], name: str) -> float:
    return statistics.mean(s.memory[name][0] for s in samples) / MB


def report(result: Result, duration: float, connections: int, every: float) -> str:
    samples = result.samples
    names = list(samples[0].memory)
    total = sum(s.requests for s in samples)
    errors = sum(result.errors.values())
    elapsed = samples[-1].at
    header = " | ".join(f"{n.split(' (')[0]} RSS / PSS MB" for n in names)
    used = sum(result.cpu.values())
    cpu = ", ".join(f"{name.split(' (')[0]} {s:.0f} s" for name, s in result.cpu.items())
    lines = [
        START,
        "## Soak: mixed load at 64 connections, MariaDB, 2 workers",
        "",
        f"`.venv/bin/python bench/soak.py --duration {duration:g} --connections {connections}` "
        f"on {dt.date.today()}: {os.cpu_count()} cores shared by the load client (one async "
        f"httpx client, {connections} connections), ROAR (2 workers) and MariaDB on loopback. "
        f"The soak's processes got {used:.0f} of the {os.cpu_count() or 1:d} x {elapsed:.0f} "
        f"CPU-seconds there were ({cpu}); the rest went to other work on the machine or stayed "
        "idle (the one client process runs on one core at most), so the request rate is not a "
        "throughput figure (`bench/load.py` is). "
        "Mix: 40% legacy list, 15% modern list, 15% get by id, 30% writes (create, PUT, "
        f"PATCH, delete, keeping the soak's own agents between {LOW} and {HIGH}).",
        "",
        f"**{total} requests in {elapsed:.0f} s ({total / elapsed:.0f}/s), {errors} errors"
        + (f": {dict(result.errors)}" if errors else "")
        + ".**",
        "",
        f"| time | requests | errors | {header} |",
        "| ---: | ---: | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    # One row per minute: the requests and errors of that minute, memory at its end.
    per_minute = max(1, round(60 / every))
    rows = list(range(0, len(samples), per_minute))
    if rows[-1] != len(samples) - 1:  # the sample taken as the load ended
        if samples[-1].at - samples[rows[-1]].at < every:
            rows[-1] = len(samples) - 1
        else:
            rows.append(len(samples) - 1)
    for i, j in zip([0, *rows], rows, strict=False):
        window = samples[i + 1 : j + 1]
        mem = " | ".join(
            f"{rss / MB:.1f} / {pss / MB:.1f}" for rss, pss in samples[j].memory.values()
        )
        lines.append(
            f"| {samples[j].at / 60:.1f} min | {sum(s.requests for s in window)} "
            f"| {sum(s.errors for s in window)} | {mem} |"
        )
    first = [s for s in samples[1:] if s.at <= 120]
    last = [s for s in samples if s.at >= elapsed - 120]
    growth = {n: (_mean_rss(first, n), _mean_rss(last, n)) for n in names}
    flat = all(b - a < 0.05 * a for a, b in growth.values())
    lines += [
        "",
        "RSS, mean of the first two minutes under load against the last two"
        + (" (flat: under 5% growth):" if flat else " (GROWING: 5% or more):"),
        "",
    ]
    for name, (a, b) in growth.items():
        lines.append(f"- {name.split(' (')[0]}: {a:.1f} MB -> {b:.1f} MB ({b - a:+.1f} MB)")
    lines += [
        "",
        "PSS divides shared pages among the processes that map them, so it adds up across "
        "processes; RSS counts them in each.",
        END,
    ]
    return "\n".join(lines)


def run(duration: float, connections: int, every: float) -> Result:
    with MariaDB.temporary() as db, tempfile.TemporaryDirectory() as tmp:
        env = {"ROAR_DATABASE_URL": db.url, "ROAR_LOG_LEVEL": "WARNING"}
        migrate(env)
        server = RoarServer(env=env, log_path=Path(tmp) / "roar.log", workers=2).start()
        try:
            result = asyncio.run(soak(server, db, duration, connections, every))
            processes = {frozenset(s.memory) for s in result.samples}
            if server.proc.poll() is not None or len(processes) != 1:  # type: ignore[union-attr]
                raise SystemExit(f"a ROAR process died during the soak:\n{server.log_tail()}")
            if result.errors:
                print(f"ROAR's log (warnings and errors):\n{server.log_tail(20_000)}", flush=True)
            return result
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="Seconds of load.")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sample", type=float, default=10, help="Seconds between samples.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs alone.")
    args = parser.parse_args()
    result = run(args.duration, args.connections, args.sample)
    section = report(result, args.duration, args.connections, args.sample)
    print(section)
    if not args.no_write:
        write_section("soak", section)
    if result.errors:
        raise SystemExit(f"the soak had errors: {dict(result.errors)}")


if __name__ == "__main__":
    main()
