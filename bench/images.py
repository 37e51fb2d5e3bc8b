"""Image benchmark: sizes and layer counts of roar-web and roar-db, cold start to healthy, and the
memory of an idle web container. Results replace the `images` section of docs/benchmarks.md.

    python3 bench/images.py [--runs 3] [--no-write]

Uses podman with the images tier's setup (scripts/setup/containers.sh): the stand-in bases and
the test tags of the images, building whatever is missing (cached layers make that quick).
Times are from one run on a shared machine: read them as orders of magnitude, not as limits.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from report import markers, write_section  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from images.helpers import BUILDS, DB, WEB_V1, build_images  # noqa: E402
from support.net import free_port  # noqa: E402

START, END = markers("images")
CACHE = Path(os.environ.get("ROAR_CACHE_DIR", "/var/cache/roar"))

PYTHON_BASE = "docker.io/library/python:3.11-slim-bookworm"
MARIADB_BASE = "docker.io/library/mariadb:11.8"
#: The images tier's builds (tests/images/helpers.py): a test run and a benchmark share them.
IMAGES = [tag for tag, _, _ in BUILDS]
WEB = WEB_V1


def sh(*args: str, check: bool = True, timeout: float = 120) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def ensure_images() -> None:
    os.environ.setdefault("CONTAINERS_CONF", str(CACHE / "containers.conf"))
    sh("bash", str(ROOT / "tests/images/standins/build.sh"), "all", timeout=1800)
    # Always through the builder: an existing tag may predate the source (the cache keeps an
    # unchanged rebuild cheap).
    with tempfile.TemporaryDirectory() as logs:
        build_images(Path(logs))


def size_and_layers(tag: str) -> tuple[int, int]:
    out = sh("podman", "image", "inspect", "--format", "{{.Size}} {{len .RootFS.Layers}}", tag)
    size, layers = out.split()
    return int(size), int(layers)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status)
    except OSError:
        return 0


def container_memory(name: str) -> tuple[int, int]:
    """(charged, anonymous) bytes of the container's memory cgroup: what the kernel charges it
    (page cache included) and the processes' own memory (heap, stacks: RSS without file pages)."""
    cid = sh("podman", "inspect", "--format", "{{.Id}}", name).strip()
    v1 = Path(f"/sys/fs/cgroup/memory/libpod_parent/libpod-{cid}")
    v2 = Path(f"/sys/fs/cgroup/libpod_parent/libpod-{cid}")
    if v1.exists():
        stat = dict(ln.split() for ln in (v1 / "memory.stat").read_text().splitlines())
        return int((v1 / "memory.usage_in_bytes").read_text()), int(stat["total_rss"])
    if v2.exists():
        stat = dict(ln.split() for ln in (v2 / "memory.stat").read_text().splitlines())
        return int((v2 / "memory.current").read_text()), int(stat["anon"])
    stats = json.loads(sh("podman", "stats", "--no-stream", "--format", "json", name))
    used = int(stats[0].get("mem_usage_bytes", 0))
    return used, used


def web_start(workers: int) -> tuple[float, float, tuple[int, int]]:
    """Seconds from `podman run` to /healthz 200 and to /readyz 200; idle memory after 5 s."""
    port = free_port()
    name = f"roar-bench-web-{os.getpid()}-{workers}"
    t0 = time.monotonic()
    sh(
        "podman",
        "run",
        "-d",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-e",
        f"ROAR_WORKERS={workers}",
        "-p",
        f"127.0.0.1:{port}:8080",
        WEB,
    )
    try:
        healthy = ready = 0.0
        while time.monotonic() - t0 < 60:
            if not healthy and http_status(f"http://127.0.0.1:{port}/healthz") == 200:
                healthy = time.monotonic() - t0
            if healthy and http_status(f"http://127.0.0.1:{port}/readyz") == 200:
                ready = time.monotonic() - t0
                break
            time.sleep(0.05)
        time.sleep(5)
        return healthy, ready, container_memory(name)
    finally:
        sh("podman", "rm", "-f", "-t", "5", name, check=False)


def db_start() -> float:
    """Seconds from `podman run` on an empty data dir to healthcheck.sh passing (init included)."""
    name = f"roar-bench-db-{os.getpid()}"
    t0 = time.monotonic()
    sh(
        "podman",
        "run",
        "-d",
        "--name",
        name,
        "-e",
        "MYSQL_USER=admin",
        "-e",
        "MYSQL_PASSWORD=bench-only",
        "-e",
        "MYSQL_ROOT_PASSWORD=bench-only-root",
        DB,
    )
    try:
        while time.monotonic() - t0 < 180:
            if (
                subprocess.run(
                    ["podman", "exec", name, "healthcheck.sh", "--connect", "--innodb_initialized"],
                    capture_output=True,
                    check=False,
                ).returncode
                == 0
            ):
                return time.monotonic() - t0
            time.sleep(0.2)
        return float("nan")
    finally:
        sh("podman", "rm", "-f", "-t", "10", name, check=False)


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def measure(runs: int) -> dict[str, object]:
    ensure_images()
    sizes = {tag: size_and_layers(tag) for tag in (*IMAGES, PYTHON_BASE, MARIADB_BASE)}
    web: dict[int, list[tuple[float, float, tuple[int, int]]]] = {1: [], 2: []}
    for _ in range(runs):
        for workers in web:
            web[workers].append(web_start(workers))
    db = [db_start() for _ in range(runs)]
    return {"sizes": sizes, "web": web, "db": db, "runs": runs}


def report(res: dict[str, object]) -> str:
    sizes: dict[str, tuple[int, int]] = res["sizes"]  # type: ignore[assignment]
    web: dict[int, list[tuple[float, float, tuple[int, int]]]] = res["web"]  # type: ignore[assignment]
    db: list[float] = res["db"]  # type: ignore[assignment]
    med = statistics.median
    lines = [
        START,
        "## Images (`bench/images.py`)",
        "",
        f"Measured {dt.date.today().isoformat()} with podman on this project's machine class "
        f"(2 cores), median of {res['runs']} runs. The bases are the local stand-ins the tests "
        "build (debootstrapped Debian, see `tests/images/standins/`), not the official images, "
        "whose sizes differ (the official python image carries a CPython built into /usr/local "
        "instead of Debian's python3 and pip): ROAR's own share is the figure that carries over.",
        "",
        "| image | size | layers | ROAR's own share (size over its base) |",
        "| --- | --- | --- | --- |",
    ]
    for tag in IMAGES:
        base = MARIADB_BASE if tag == DB else PYTHON_BASE
        size, layers = sizes[tag]
        lines.append(
            f"| `{tag}` | {mb(size)} | {layers} | {mb(size - sizes[base][0])} over "
            f"`{base.split('/')[-1]}` ({mb(sizes[base][0])}, {sizes[base][1]} layer) |"
        )
    lines += [
        "",
        "| measurement | ROAR_WORKERS=1 | ROAR_WORKERS=2 |",
        "| --- | --- | --- |",
        "| web: `podman run` to `/healthz` 200 (embedded SQLite, read-only root) | "
        + " | ".join(f"{med([r[0] for r in web[w]]):.2f} s" for w in (1, 2))
        + " |",
        "| web: `podman run` to `/readyz` 200 | "
        + " | ".join(f"{med([r[1] for r in web[w]]):.2f} s" for w in (1, 2))
        + " |",
        "| web: idle memory 5 s after ready, processes' own (cgroup RSS) | "
        + " | ".join(mb(med([r[2][1] for r in web[w]])) for w in (1, 2))
        + " |",
        "| web: idle memory charged to the container (page cache included) | "
        + " | ".join(mb(med([r[2][0] for r in web[w]])) for w in (1, 2))
        + " |",
        "",
        f"roar-db: `podman run` on an empty volume to `healthcheck.sh --connect "
        f"--innodb_initialized` passing (initialisation, time-zone tables, ROAR's init SQL, "
        f"restart): {med(db):.1f} s.",
        "",
        "What keeps roar-web small: a multi-stage build (the builder's pip, wheel cache, sources "
        "and build backend stay behind; only the virtualenv is copied), wheels only (no compiler "
        "in any stage), `PIP_NO_CACHE_DIR`, pip and setuptools removed from the venv, and one "
        "`COPY` layer for the whole venv on top of one small user layer. Bytecode is compiled at "
        "build time on purpose (about a third of the venv): the root filesystem is read-only, so "
        "without it every start would compile in memory.",
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs alone.")
    args = parser.parse_args()
    section = report(measure(args.runs))
    print(section)
    if not args.no_write:
        write_section("images", section)


if __name__ == "__main__":
    main()
