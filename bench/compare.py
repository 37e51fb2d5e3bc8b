"""ROAR beside podinfo and beside FastAPI's own ceiling, in one run: hot GETs, the modern API,
memory (PSS of every server process) and cold start.

Issue 14's method: `wrk -t2 -c16` and `-c64`, `-d20s --latency`, rounds that alternate the order
of the targets, medians over the rounds; ROAR with 2 workers on MariaDB, with its default
settings (access log and metrics on), and podinfo (Go) on the same 2 cores. Every target of a
round runs at both connection counts before the next round starts. The original Java ROAR cannot
run here; its figures are read from the issue (see ``ORIGINAL``).

    .venv/bin/python bench/compare.py [--duration 20] [--rounds 3] [--only hot,modern,memory,cold]

podinfo is built once, outside the repository, into ``$ROAR_CACHE_DIR/bench`` (default
/var/cache/roar/bench) with ``go install``. Needs wrk (Debian package), Go and MariaDB
(scripts/setup/mariadb.sh). Results replace the `compare` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from load import (  # bench/ is on sys.path when run as a script: one wrk runner for both
    CREATE_LUA,
    wrk,
)
from report import markers, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.mariadb import MariaDB  # noqa: E402
from support.net import free_port  # noqa: E402
from support.procs import children, memory  # noqa: E402
from support.procs import cpu_seconds as process_cpu_seconds  # noqa: E402
from support.roar import RoarServer, roar_command  # noqa: E402

START, END = markers("compare")

#: podinfo 6.9.2: its tags are not Go-module versions (the module has no /v6 suffix), so the
#: proxy knows the release commit only by this pseudo-version.
PODINFO_VERSION = "v1.8.1-0.20250910200901-e86405a8674e"
CACHE = Path(os.environ.get("ROAR_CACHE_DIR", "/var/cache/roar")) / "bench"

#: The original Java ROAR's legacy list, read from issue 14: the modern list's 983 req/s (c64)
#: and 1210 req/s (c16) were "0.4x of the original's legacy list", so the original answered about
#: 983 / 0.4 = 2458 and 1210 / 0.4 = 3025 req/s, in a run whose FastAPI ceiling was ~7,500 req/s
#: (ROAR's legacy list was 2.4x-3.4x the original: 7500 / 3025 = 2.5, 7500 / 2458 = 3.1, which
#: agrees). As a share of the ceiling measured in the same run: 0.40 (c16) and 0.33 (c64). The
#: issue gives no p99 for the original; it says ROAR's legacy list was faster at both counts.
ORIGINAL_X_CEILING = {16: 3025 / 7500, 64: 2458 / 7500}


# PUT (replace) over the ids ``setup`` created, spread at random so rows seldom wait on a lock.
UPDATE_LUA = """
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  local id = math.random(%(first)d, %(last)d)
  local body = string.format(
    '{"name":"Bench %%d","species":"benchmark","service_start":"2020-01-01"}', counter)
  return wrk.format(nil, "/api/v1/agents/" .. id, nil, body)
end
"""


#: FastAPI's own ceiling, as the issue measured it: /healthz answered by the FastAPI app (with a
#: query string, which roar.api.fastpath leaves to the app; before it, the same route).
CEILING = "FastAPI ceiling: GET /healthz?via=fastapi"


@dataclass(frozen=True)
class Target:
    label: str
    server: str  # "roar" or "podinfo"
    path: str
    group: str  # "hot" or "modern"
    script: str | None = None


TARGETS = [
    Target("podinfo GET /healthz", "podinfo", "/healthz", "hot"),
    Target("podinfo GET /version", "podinfo", "/version", "hot"),
    Target(CEILING, "roar", "/healthz?via=fastapi", "hot"),
    Target("GET /healthz", "roar", "/healthz", "hot"),
    Target("GET /readyz", "roar", "/readyz", "hot"),
    Target("legacy list: GET /roar/api/v1/registry", "roar", "/roar/api/v1/registry", "hot"),
    Target("GET /roar/api/v1/status/version", "roar", "/roar/api/v1/status/version", "hot"),
    Target("modern list: GET /api/v1/agents", "roar", "/api/v1/agents", "modern"),
    Target("get by id: GET /api/v1/agents/1", "roar", "/api/v1/agents/1", "modern"),
    Target("create: POST /api/v1/agents", "roar", "/api/v1/agents", "modern", CREATE_LUA),
    Target("update: PUT /api/v1/agents/{id}", "roar", "/api/v1/agents/", "modern", "update"),
]
#: Rows the update target spreads its writes over.
UPDATE_ROWS = 200


# Servers ------------------------------------------------------------------------------------


def podinfo_binary() -> Path:
    binary = CACHE / "podinfo"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "install", f"github.com/stefanprodan/podinfo/cmd/podinfo@{PODINFO_VERSION}"],
            check=True,
            env=os.environ | {"GOBIN": str(CACHE), "GOFLAGS": "-buildvcs=false"},
            cwd=tempfile.gettempdir(),  # outside the repository: nothing of it is committed
        )
    return binary


@contextlib.contextmanager
def podinfo(tmp: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp / "podinfo.log").open("wb")
    proc = subprocess.Popen(
        [str(podinfo_binary()), "--host", "127.0.0.1", "--port", str(port), "--level", "info"],
        cwd=tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url + "/readyz", proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def _wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        if _status(url) == 200:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


def _status(url: str) -> int | None:
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        conn.request("GET", "/" + path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def seeded_mariadb(db: MariaDB, src: str | None = None) -> dict[str, str]:
    env = {"ROAR_DATABASE_URL": db.url}
    if src:  # another copy of ROAR's sources (e.g. the code before a change), for before/after
        env["PYTHONPATH"] = str(Path(src).resolve())
    subprocess.run(
        [*roar_command(), "db", "upgrade", "--seed"],
        check=True,
        env=os.environ | env,
        capture_output=True,
    )
    return env


def roar_server(env: dict[str, str], tmp: Path, workers: int, name: str) -> RoarServer:
    # Production-like: JSON logs to a file at the default level (the access log as configured).
    return RoarServer(
        env=env | {"ROAR_LOG_FORMAT": "json"}, log_path=tmp / f"{name}.log", workers=workers
    )


def server_pids(root: int) -> list[int]:
    """``root`` and every process under it (supervisor, workers, multiprocessing helpers)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children(pid))
    return found


def pss_mb(root: int) -> float:
    total = 0
    for pid in server_pids(root):
        with contextlib.suppress(OSError):  # a process that exited meanwhile
            total += memory(pid).pss
    return total / 2**20


# Runs ---------------------------------------------------------------------------------------


def _clean_benchmark_rows(db: MariaDB) -> None:
    """Reads are measured on the five seeded agents: drop what create/update added."""
    db.query("DELETE FROM agents WHERE SPECIES = 'benchmark'")
    time.sleep(1.5)  # longer than any snapshot's freshness bound: every worker sees it


def _update_script(db: MariaDB) -> str:
    db.query(
        "INSERT INTO agents (NAME, SPECIES, SRVSTART) VALUES "
        + ",".join(f"('Bench row {i}', 'benchmark', '2020-01-01')" for i in range(UPDATE_ROWS))
    )
    ids = [row[0] for row in db.query("SELECT id FROM agents WHERE SPECIES = 'benchmark'")]
    time.sleep(1.5)
    return UPDATE_LUA % {"first": min(ids), "last": max(ids)}


def measure(
    target: Target, url: str, db: MariaDB, *, duration: int, connections: int
) -> dict[str, float]:
    script = target.script
    if script == "update":
        script = _update_script(db)
    try:
        # A short warm-up fills pools and caches so every target starts alike.
        wrk(url + target.path, duration=1, connections=connections, script=script)
        return wrk(url + target.path, duration=duration, connections=connections, script=script)
    finally:
        if target.script:
            _clean_benchmark_rows(db)


Results = dict[tuple[str, int], list[dict[str, float]]]


def run_load(
    db: MariaDB, urls: dict[str, str], targets: list[Target], args: argparse.Namespace
) -> Results:
    results: Results = {}
    for round_ in range(args.rounds):
        order = targets if round_ % 2 == 0 else targets[::-1]
        for connections in args.connections:
            for target in order:
                r = measure(
                    target, urls[target.server], db, duration=args.duration, connections=connections
                )
                results.setdefault((target.label, connections), []).append(r)
                print(
                    f"round {round_ + 1} c{connections} {target.label}: {r['rps']:.0f} req/s "
                    f"p99 {r['p99_ms']:.1f} ms non-2xx {r['non_2xx']:.0f}",
                    file=sys.stderr,
                )
    return results


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def _python_library() -> str | None:
    """The shared library of this interpreter (the server's too), if it has one."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        if "/libpython" in line:
            return line.split()[-1]
    return None


def sharing_python(server: list[int]) -> list[int]:
    """Processes besides this one and the ``server``'s that map the Python library: PSS divides
    those pages among them, so while any runs the server's memory reads low (processes a test
    or a script left behind once took 10 MB off these figures)."""
    library = _python_library()
    if library is None:
        return []
    others = []
    for maps in Path("/proc").glob("[0-9]*/maps"):
        pid = int(maps.parent.name)
        if pid == os.getpid() or pid in server:
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if library in maps.read_text():
                others.append(pid)
    return others


def memory_under_load(
    env: dict[str, str], tmp: Path, workers: int, duration: int
) -> dict[str, float]:
    """PSS of all the server's processes: idle after start, then the peak of samples taken
    every 0.5 s while wrk drives the modern list and then the legacy list at 64 connections."""
    server = roar_server(env, tmp, workers, f"memory-{workers}").start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        time.sleep(2)
        idle = pss_mb(pid)
        others = sharing_python(server_pids(pid))
        peak = idle
        for path in ("/api/v1/agents", "/roar/api/v1/registry"):
            thread = threading.Thread(
                target=wrk,
                args=(server.url + path,),
                kwargs={"duration": duration, "connections": 64, "script": None},
            )
            thread.start()
            while thread.is_alive():
                thread.join(0.5)
                peak = max(peak, pss_mb(pid))
        return {
            "idle_mb": idle,
            "load_mb": peak,
            "processes": len(server_pids(pid)),
            "others": len(others),
        }
    finally:
        server.stop()


def cpu_seconds(root: int) -> float:
    """User and system CPU seconds of ``root`` and the processes under it."""
    total = 0.0
    for pid in server_pids(root):
        with contextlib.suppress(OSError):  # a process that exited meanwhile
            total += process_cpu_seconds(pid)
    return total


def cold_start(
    env: dict[str, str], tmp: Path, workers: int, runs: int
) -> list[tuple[float, float]]:
    """Seconds from launching `roar serve` to its first 200 on the legacy list, and the CPU
    seconds its processes used until then (steadier than the wall time on a busy machine).

    With bytecode, as the image has it (compiled when it is built, images/venv.sh): a first,
    uncounted launch writes what a development tree lacks, since an edited module compiles
    from source at every start where `PYTHONDONTWRITEBYTECODE` is set."""
    times = []
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROAR_", "MYSQL_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    for i in range(-1, runs):
        port = free_port()
        url = f"http://127.0.0.1:{port}/roar/api/v1/registry"
        cmd = [*roar_command(), "serve", "--port", str(port), "--workers", str(workers)]
        with (tmp / f"cold-{workers}-{i}.log").open("wb") as log:
            started = time.perf_counter()
            proc = subprocess.Popen(
                cmd, env=clean | env | {"ROAR_LOG_FORMAT": "json"}, stdout=log, stderr=log
            )
            try:
                while _status(url) != 200:
                    if proc.poll() is not None or time.perf_counter() - started > 30:
                        raise RuntimeError(f"no 200 from {url}; see {log.name}")
                    time.sleep(0.005)
                if i >= 0:
                    times.append((time.perf_counter() - started, cpu_seconds(proc.pid)))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    return times


# Profile ------------------------------------------------------------------------------------

#: Where a sample's time is charged: the innermost frame from one of these (first match wins).
CATEGORIES = [
    ("logging (access log)", ("/logging/", "roar/logs.py")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("driver (aiomysql, pymysql)", ("aiomysql", "pymysql")),
    ("pool (sqlalchemy/pool)", ("sqlalchemy/pool",)),
    ("SQLAlchemy Core (compile, execute, rows)", ("sqlalchemy",)),
    ("pydantic (validation, serialisation)", ("pydantic",)),
    ("FastAPI (dependencies, routing, encoding)", ("fastapi",)),
    ("Starlette (routing, responses)", ("starlette",)),
    ("ROAR middleware", ("roar/api/middleware.py",)),
    ("ROAR routes, cache and queries", ("roar/",)),
    ("uvicorn (HTTP parsing, protocol)", ("uvicorn", "httptools")),
    ("event loop (asyncio, uvloop)", ("asyncio", "uvloop")),
    ("json (std library)", ("/json/",)),
]


def categorise(raw: str) -> dict[str, float]:
    """Share of the busy samples charged to each category, from py-spy's raw output."""
    totals: dict[str, int] = {}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        charged = "other"
        for frame in reversed(frames):  # innermost first
            found = next((c for c, keys in CATEGORIES if any(k in frame for k in keys)), None)
            if found:
                charged = found
                break
        totals[charged] = totals.get(charged, 0) + int(count)
    whole = sum(totals.values()) or 1
    return dict(sorted(((k, v / whole) for k, v in totals.items()), key=lambda kv: -kv[1]))


def inclusive(raw: str, needles: dict[str, str]) -> dict[str, float]:
    """Share of the busy samples whose stack has a frame containing each needle."""
    hits = dict.fromkeys(needles, 0)
    whole = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        whole += int(count)
        for label, needle in needles.items():
            if needle in stack:
                hits[label] += int(count)
    return {k: v / (whole or 1) for k, v in hits.items()}


NEEDLES = {
    "pool checkout incl. pre-ping": "_checkout (sqlalchemy/pool",
    "pre-ping": "do_ping",
    "FastAPI dependency solving": "solve_dependencies",
    "FastAPI response serialisation": "serialize_response",
    "RequestMiddleware (all, incl. app)": "__call__ (roar/api/middleware.py",
    "access log": "roar.access",
    "metrics": "prometheus_client",
    "DB round trips (execute)": "_execute_internal (sqlalchemy",
}


def profile(args: argparse.Namespace) -> None:
    """py-spy on every worker while wrk drives one path at 64 connections."""
    out_dir = CACHE / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    name = (args.profile.strip("/").replace("/", "_") or "root") + f"-{args.profile_method}"
    name += "-before" if args.src else ""
    with MariaDB.temporary() as db, tempfile.TemporaryDirectory() as tmp_name:
        env = seeded_mariadb(db, args.src)
        server = roar_server(env, Path(tmp_name), 2, "roar").start()
        try:
            assert server.proc is not None
            if args.profile_method == "PUT":  # the update target's requests (their own paths)
                script: str | None = _update_script(db)
            else:
                script = CREATE_LUA if args.profile_method == "POST" else None
            wrk(server.url + args.profile, duration=1, connections=64, script=script)
            raw_path, svg_path = out_dir / f"{name}.txt", out_dir / f"{name}.svg"
            spy = [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record"]
            common = [
                "-s",
                "-g",
                "--pid",
                str(server.proc.pid),
                "-d",
                str(args.duration),
                "-r",
                "100",
            ]
            procs = [
                subprocess.Popen([*spy, *common, "-f", "raw", "-o", str(raw_path)]),
                subprocess.Popen([*spy, *common, "-f", "flamegraph", "-o", str(svg_path)]),
            ]
            time.sleep(1)
            url = server.url + args.profile
            r = wrk(url, duration=args.duration, connections=64, script=script)
            for proc in procs:
                proc.wait(timeout=60)
        finally:
            server.stop()
    raw = raw_path.read_text()
    print(
        f"{args.profile_method} {args.profile}: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.1f} ms "
        f"(slowed by sampling); flame graph {svg_path}"
    )
    for label, share in categorise(raw).items():
        print(f"  self  {share:6.1%}  {label}")
    for label, share in inclusive(raw, NEEDLES).items():
        print(f"  incl. {share:6.1%}  {label}")


# Report -------------------------------------------------------------------------------------

#: What one run measured: medians per (label, connections), PSS per worker count, cold starts.
Run = dict[str, Any]


def to_json(run: Run) -> dict[str, Any]:
    return {
        "load": [{"label": k[0], "connections": k[1], **v} for k, v in run["load"].items()],
        "memory": {str(w): m for w, m in run["memory"].items()},
        "cold": {str(w): c for w, c in run["cold"].items()},
        "log_mb": run.get("log_mb"),
        "load_before": run.get("load_before"),
    }


def from_json(data: dict[str, Any]) -> Run:
    keys = ("label", "connections")
    load = {
        (r["label"], r["connections"]): {k: v for k, v in r.items() if k not in keys}
        for r in data["load"]
    }
    return {
        "load": load,
        "memory": {int(w): m for w, m in data["memory"].items()},
        "cold": {int(w): [tuple(x) for x in c] for w, c in data["cold"].items()},
        "log_mb": data.get("log_mb"),
        "load_before": data.get("load_before"),
    }


def _ratios(load: dict[tuple[str, int], dict[str, float]], c: int) -> tuple[float, float]:
    """FastAPI's ceiling and podinfo's faster endpoint, req/s, at ``c`` connections."""
    ceiling = load.get((CEILING, c), {}).get("rps", 0.0)
    pod = max((v["rps"] for k, v in load.items() if k[1] == c and "podinfo" in k[0]), default=0.0)
    return ceiling, pod


def _x(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base else "-"


def _load_before(run: Run) -> str:
    value = run.get("load_before")
    return "not recorded" if value is None else f"{value:.1f}"


def report(args: argparse.Namespace, run: Run, before: Run | None) -> str:
    load, mem, cold = run["load"], run["memory"], run["cold"]
    lines = [
        START,
        "## ROAR beside podinfo and the original (`bench/compare.py`)",
        "",
        f"`.venv/bin/python bench/compare.py --duration {args.duration} --rounds {args.rounds}"
        + (f" --only {','.join(args.only)}" if args.only != ALL_PARTS else "")
        + f"` on {dt.date.today()}: {os.cpu_count()} cores shared by wrk (`-t2`), ROAR "
        "(2 workers, MariaDB, default settings: JSON access log to a file, metrics on), MariaDB "
        f"and podinfo {PODINFO_VERSION_NAME}, all on loopback; {args.rounds} rounds alternating "
        "the order of the targets, medians. x ceiling: req/s over FastAPI's ceiling (ROAR's "
        "`/healthz` answered by the FastAPI app, as the issue measured it) at the same "
        "connection count; x podinfo: over podinfo's faster endpoint (`/healthz` or "
        "`/version`) in the same run. Load average (1 min) before the run, i.e. other work on "
        f"the machine: {_load_before(run)}. Absolute figures move with what else the machine "
        "does; ratios within a run much less.",
        "",
    ]
    if load:
        lines += [
            "| endpoint | conns | req/s | x ceiling | x podinfo | p50 ms | p99 ms | non-2xx |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in args.connections:
            ceiling, pod = _ratios(load, c)
            for (label, conns), r in load.items():
                if conns == c:
                    lines.append(
                        f"| {label} | {c} | {r['rps']:.0f} | {_x(r['rps'], ceiling)} "
                        f"| {_x(r['rps'], pod)} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                        f"| {r['non_2xx']:.0f} |"
                    )
        if run.get("log_mb") is not None:
            lines += ["", f"ROAR's log during these runs: {run['log_mb']:.1f} MB."]
    if before and before["load"] and load:
        lines += [
            "",
            "Before and after (`--src` of the code before this change, the same command; each "
            "run's ratios to its own ceiling and podinfo):",
            "",
            "| endpoint | conns | x ceiling before | after | x podinfo before | after "
            "| p99 ms before | after |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in args.connections:
            b_ceiling, b_pod = _ratios(before["load"], c)
            ceiling, pod = _ratios(load, c)
            for (label, conns), r in load.items():
                b = before["load"].get((label, conns))
                if conns != c or b is None or "podinfo" in label:
                    continue
                lines.append(
                    f"| {label} | {c} | {_x(b['rps'], b_ceiling)} | {_x(r['rps'], ceiling)} "
                    f"| {_x(b['rps'], b_pod)} | {_x(r['rps'], pod)} | {b['p99_ms']:.1f} "
                    f"| {r['p99_ms']:.1f} |"
                )
    if mem:
        b_mem = (before or {}).get("memory", {})
        lines += [
            "",
            "| server (MariaDB), PSS of all its processes | processes | idle MB | under load MB "
            "(peak) | before: idle | under load |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for workers, m in mem.items():
            b = b_mem.get(workers)
            old = f"{b['idle_mb']:.0f} | {b['load_mb']:.0f}" if b else "- | -"
            lines.append(
                f"| {_workers(workers)} | {m['processes']:.0f} "
                f"| {m['idle_mb']:.0f} | {m['load_mb']:.0f} | {old} |"
            )
        others = max(m.get("others", 0) for m in mem.values())
        lines += [
            "",
            f"Other processes that mapped the Python library while this was measured: {others:.0f}"
            " (besides this benchmark's own; PSS divides shared pages among the processes that "
            "map them, so any would make these figures read low).",
        ]
    if cold:
        b_cold = (before or {}).get("cold", {})
        lines += [
            "",
            "Cold start: `roar serve` launched to its first 200 on the legacy list, bytecode "
            "written by an uncounted first launch (the image compiles it when it is built).",
            "",
            "| cold start to the first 200 on the legacy list | median | CPU s until then "
            "| before: median | CPU s | runs (wall s / CPU s) |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for workers, times in cold.items():
            b = b_cold.get(workers)
            old = (
                f"{statistics.median(t for t, _ in b):.2f} s | "
                f"{statistics.median(c for _, c in b):.2f} s"
                if b
                else "- | -"
            )
            runs = ", ".join(f"{t:.2f}/{c:.2f}" for t, c in times)
            lines.append(
                f"| {_workers(workers)}, MariaDB "
                f"| {statistics.median(t for t, _ in times):.2f} s "
                f"| {statistics.median(c for _, c in times):.2f} s | {old} | {runs} |"
            )
    if load or mem or cold:
        lines += ["", *goals(args, load, mem, cold)]
    lines += ["", *FINDINGS, END]
    return "\n".join(lines)


def _workers(n: int) -> str:
    return f"{n} worker{'s' if n > 1 else ''}"


def goals(
    args: argparse.Namespace,
    load: dict[tuple[str, int], dict[str, float]],
    mem: dict[int, dict[str, float]],
    cold: dict[int, list[tuple[float, float]]],
) -> list[str]:
    out = ["Against the goals of issue 14:", ""]
    for c in args.connections:
        ceiling, pod = _ratios(load, c)
        original = ORIGINAL_X_CEILING[c] * ceiling
        for label in ("modern list: GET /api/v1/agents", "get by id: GET /api/v1/agents/1"):
            if (label, c) in load and ceiling:
                r = load[(label, c)]
                out.append(
                    f"- c{c} {label.split(':')[0]}: {r['rps']:.0f} req/s = "
                    f"{r['rps'] / original:.1f}x the original's legacy list (about "
                    f"{original:.0f} req/s in this run; goal 1.5x), p99 {r['p99_ms']:.1f} ms"
                )
    for label in ("create: POST /api/v1/agents", "update: PUT /api/v1/agents/{id}"):
        if (label, 16) in load:
            r = load[(label, 16)]
            out.append(
                f"- c16 {label.split(':')[0]}: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.1f} ms "
                "(goal: 1,000 req/s, p99 under 100 ms)"
            )
    hot = ("GET /healthz", "GET /readyz", "legacy list: GET /roar/api/v1/registry",
           "GET /roar/api/v1/status/version")  # fmt: skip
    for c in args.connections:
        _, pod = _ratios(load, c)
        pod_p99 = min((v["p99_ms"] for k, v in load.items() if k[1] == c and "podinfo" in k[0]),
                      default=0.0)  # fmt: skip
        shown = [
            f"{label.split(':')[-1].strip()} {load[(label, c)]['rps'] / pod:.2f}x "
            f"(p99 {load[(label, c)]['p99_ms']:.0f} ms)"
            for label in hot
            if (label, c) in load and pod
        ]
        if shown:
            out.append(
                f"- c{c} hot GETs against podinfo (goal 0.5x, p99 below podinfo's "
                f"{pod_p99:.0f} ms): " + "; ".join(shown)
            )
    limits = {2: 120, 1: 60}  # MB of PSS under load, all processes of the server
    measured = [
        ("memory under load, PSS of all processes",
         [f"{_workers(w)} {m['load_mb']:.0f} MB (goal {limits[w]} MB)"
          for w, m in mem.items() if w in limits]),
        ("cold start to the first 200 on the legacy list (goal 0.5 s)",
         [f"{_workers(w)} {statistics.median(t for t, _ in times):.2f} s"
          for w, times in cold.items()]),
    ]  # fmt: skip
    out += [f"- {what}: " + "; ".join(figures) for what, figures in measured if figures]
    return out


#: What the profiles said (``--profile PATH``: py-spy on every worker under wrk at 64
#: connections, GIL-holding samples only; flame graphs and raw stacks in
#: $ROAR_CACHE_DIR/bench/profiles), and what was changed for it.
FINDINGS = [
    "### Where the time went (py-spy) and what changed",
    "",
    "Before, `GET /api/v1/agents` (modern list, DB query per request): 38% of the workers' busy "
    "time in the endpoint, of which 24% in aiomysql's socket writes (one send per statement, "
    "plus a `SELECT 1` pre-ping per pool checkout: 8%) and 15% in SQLAlchemy Core; 14% in "
    "FastAPI's dependency solving, 9 points of it handing three plain `def` dependencies "
    "(`_engine`, `_cache`, `_settings`) to a worker thread per request; 10% uvicorn, ~10% the "
    "Starlette/FastAPI middleware stack; pydantic 1.4%, metrics 3.4%, logging 0.3%. Creates "
    "(`POST /api/v1/agents`): 36% in the endpoint (INSERT, then a SELECT of the row, then "
    "COMMIT), 13% the same thread hand-offs, and 12% re-reading the whole table every "
    "`ttl/2` (the old snapshot). After the fast path, on the hot GETs themselves: 62% of the "
    "time was uvicorn's two `transport.write` calls per answer (status line and headers, then "
    "the body: two system calls, two TCP segments), 16% the access log (a `logging` record, "
    "JSON formatting and a flush per line), 2% metrics.",
    "",
    "Changes: (1) `roar.api.fastpath`, a raw ASGI layer in front of FastAPI that answers the "
    "hot GETs with no query string (`/healthz`, `/readyz` while the snapshot is current, "
    "i.e. its poll reached the database within `ROAR_CACHE_TTL`, the legacy list, "
    "`/roar/api/v1/status/version`, the modern first page and get by id) from constants and "
    "the consistent snapshot "
    "(`roar.cache`, which every write through the server updates before it answers), byte for "
    "byte as the routes (tests/api/test_fastpath.py), counted and logged by the same "
    "`roar.api.record.Recorder` as every request; anything else, or any case it does not "
    "cover (an unknown id, a snapshot that must sync first, the database down, draining), "
    "goes to FastAPI unchanged. "
    "(2) `roar.httpproto`: uvicorn's httptools protocol over a transport that joins the writes "
    "of one loop turn, so every answer leaves in one system call. (3) `async def` "
    "dependencies (no thread hand-off). (4) A create in one round trip less "
    "(`INSERT ... RETURNING` on MariaDB 10.5+ and SQLite 3.35+). (5) The worker supervisor "
    "imports the app, freezes the collector (`gc.freeze()`) and forks its workers, which "
    "share those pages instead of each importing its own copy (and the multiprocessing "
    "resource tracker is gone). "
    "(6) Writes in one statement on MariaDB: the requests' engine is in autocommit (no BEGIN, "
    "COMMIT or ROLLBACK around a write), the single-agent statements are built once, and a PUT "
    "learns its new version without reading the row back when If-Match, the server's last "
    "write to that agent (a version board in the workers' shared memory, `roar.counter`) or "
    "the worker's snapshot gives it (a guess the UPDATE checks: a wrong one costs an UPDATE "
    "and a SELECT more); tests/db/test_round_trips.py counts MariaDB's own statement counters. "
    "(7) `roar.db.async_core`: SQLAlchemy's asyncio engine without the ORM that "
    "`import sqlalchemy.ext.asyncio` also loads (about 40 ms of every start, 6 to 7 MB of every "
    "process), and the supervisor freezes the collector without a full collection first "
    "(about 30 ms). (8) Less loaded by every server process (tests/unit/test_lean_imports.py): "
    "not `pydantic.v1`, which FastAPI imports only to ask whether a route's types are v1 "
    'models; no WebSocket library (`ws="none"`) and no watchfiles (uvicorn with uvloop '
    "and httptools, not `uvicorn[standard]`); no ctypes with one worker; no platformdirs and "
    "no SQLite dialect on MariaDB and no MySQL dialect on SQLite (each dialect's table options "
    "are given as it creates the tables): about 3.7 MB of every process and 40 to 60 ms of "
    "every start.",
]

PODINFO_VERSION_NAME = "6.9.2"
ALL_PARTS = ["hot", "modern", "memory", "cold"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--connections", type=lambda s: [int(c) for c in s.split(",")], default=[16, 64]
    )
    parser.add_argument(
        "--only", type=lambda s: s.split(","), default=ALL_PARTS, help="hot,modern,memory,cold"
    )
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs alone.")
    parser.add_argument("--src", help="Serve ROAR from this src/ directory (before/after).")
    parser.add_argument("--save", metavar="FILE", help="Also write the figures as JSON.")
    parser.add_argument("--before", metavar="FILE", help="A --save of the code before: compared.")
    parser.add_argument("--profile", metavar="PATH", help="Only profile PATH with py-spy.")
    parser.add_argument("--profile-method", default="GET", choices=["GET", "POST", "PUT"])
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    if args.profile:
        profile(args)
        return
    run: Run = {"load": {}, "memory": {}, "cold": {}, "log_mb": None}
    run["load_before"] = os.getloadavg()[0]
    with MariaDB.temporary() as db, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = seeded_mariadb(db, args.src)
        targets = [t for t in TARGETS if t.group in args.only]
        if targets:
            urls: dict[str, str] = {}
            with contextlib.ExitStack() as stack:
                if any(t.server == "podinfo" for t in targets):
                    urls["podinfo"] = stack.enter_context(podinfo(tmp))
                server = roar_server(env, tmp, 2, "roar").start()
                stack.callback(server.stop)
                urls["roar"] = server.url
                raw = run_load(db, urls, targets, args)
                run["log_mb"] = server.log_path.stat().st_size / 2**20
            run["load"] = {key: median(runs) for key, runs in raw.items()}
        if "memory" in args.only:
            run["memory"] = {w: memory_under_load(env, tmp, w, args.duration) for w in (2, 1)}
        if "cold" in args.only:
            run["cold"] = {w: cold_start(env, tmp, w, 5) for w in (1, 2)}
    if args.save:
        Path(args.save).write_text(json.dumps(to_json(run), indent=1))
    before = from_json(json.loads(Path(args.before).read_text())) if args.before else None
    section = report(args, run, before)
    print(section)
    if not args.no_write:
        write_section("compare", section)


if __name__ == "__main__":
    main()
