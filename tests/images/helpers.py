"""Helpers for the images tier: commands, free loopback ports, HTTP polling.

Everything here drives real tools (podman, docker, docker compose); nothing is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from support.wait import eventually

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ROAR_CACHE_DIR", "/var/cache/roar"))
CONTAINERS_CONF = CACHE / "containers.conf"
STANDINS = REPO / "tests" / "images" / "standins" / "build.sh"
SETUP = REPO / "scripts" / "setup" / "containers.sh"


class CommandError(AssertionError):
    """A command failed; the message carries its output so the test report shows why."""


def run(
    args: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 120,
    input: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CommandError(
            f"{' '.join(args)} -> exit {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def run_logged(
    args: Sequence[str],
    log: Path,
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Long commands (builds): output to a log file, its tail in the failure message."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        proc = subprocess.run(
            list(args),
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            check=False,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-6000:]
        raise CommandError(f"{' '.join(args)} -> exit {proc.returncode} (log {log})\n{tail}")


# Test tags: distinct from the workshop's localhost:5000/... names, so a learner's images are
# never overwritten; stable across runs, so podman's layer cache makes a warm run cheap.
# bench/images.py measures the same builds.
WEB_V1 = "localhost/roar-web:test-v1"
WEB_V2 = "localhost/roar-web:test-v2"
DB = "localhost/roar-db:test"
OPERATOR = "localhost/roar-operator:test"
BUILDS = (
    (WEB_V1, "images/web/Dockerfile", ("--build-arg", "FLAVOR=v1")),
    (WEB_V2, "images/web/Dockerfile", ("--build-arg", "FLAVOR=v2")),
    (DB, "images/db/Dockerfile", ()),
    (OPERATOR, "images/operator/Dockerfile", ()),
)
# A fixed revision, not the commit: podman 4.3 (buildah 1.28) keys its layer cache on the
# unexpanded LABEL/ENV text, so a cached step is reused when only ${REVISION} changed and a
# per-commit value would go stale on a warm cache. A constant proves the wiring as well.
REVISION = "0123456789abcdef0123456789abcdef01234567"


def build_images(logs: Path) -> None:
    """Build every image of BUILDS with podman from the unchanged Dockerfiles (the stand-in
    bases must exist); podman's layer cache makes an unchanged rebuild cheap."""
    common = ["podman", "build", "--pull=never", "--layers", "--format", "docker",
              "--build-arg", f"REVISION={REVISION}"]  # fmt: skip
    # One at a time: they share the dependency layer, and the machine has two cores.
    for tag, dockerfile, extra in BUILDS:
        log = logs / (tag.rsplit("/", 1)[-1].replace(":", "-") + ".log")
        cmd = [*common, *extra, "-f", dockerfile, "-t", tag, "."]
        run_logged(cmd, log, timeout=1500, cwd=REPO)
        # The same cache quirk, for caches made with another revision: rebuild without them.
        label = '{{index .Config.Labels "org.opencontainers.image.revision"}}'
        got = run(["podman", "image", "inspect", "--format", label, tag]).stdout
        if got.strip() != REVISION:
            run_logged([*cmd[:2], "--no-cache", *cmd[2:]], log, timeout=1500, cwd=REPO)


@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str]

    def json(self) -> object:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: object | None = None,
    timeout: float = 5,
    headers: dict[str, str] | None = None,
) -> Reply:
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Reply(resp.status, resp.read().decode(), dict(resp.headers))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read().decode(errors="replace"), dict(exc.headers))


def get(url: str, timeout: float = 5) -> Reply:
    return http("GET", url, timeout=timeout)


def wait_for(
    what: str, probe: Callable[[], bool], timeout: float = 60, interval: float = 0.5
) -> float:
    """Polls probe until it is true; returns the seconds it took, fails after timeout."""
    start = time.monotonic()
    ignoring = (OSError, CommandError)  # not up yet
    eventually(probe, what=what, within=timeout, every=interval, ignoring=ignoring)
    return time.monotonic() - start


def http_ok(url: str, status: int = 200) -> Callable[[], bool]:
    return lambda: get(url, timeout=3).status == status


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def git_revision() -> str:
    proc = run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"
