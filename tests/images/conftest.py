"""Fixtures of the images tier: stand-in bases, the three images, podman containers, dockerd.

The images are built once per session with podman from the unchanged Dockerfiles, on stand-ins
of the official bases (tests/images/standins/build.sh, cached); see docs/labs-1-3.md.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.procs import stop_process
from support.registry import Registry, running_registry, workshop_lock

from .helpers import (
    CACHE,
    CONTAINERS_CONF,
    DB,
    OPERATOR,
    REVISION,
    SETUP,
    STANDINS,
    WEB_V1,
    WEB_V2,
    CommandError,
    build_images,
    have,
    run,
)

RUN_ID = uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class Images:
    web_v1: str
    web_v2: str
    db: str
    revision: str
    operator: str


@pytest.fixture(scope="session")
def podman() -> None:
    """podman configured for these machines (runc, cgroupfs, ulimits) with the stand-in bases."""
    compose = have("docker") and run(["docker", "compose", "version"], check=False).returncode == 0
    tools = all(have(t) for t in ("podman", "dockerd", "docker-registry", "skopeo"))
    if not (tools and compose and CONTAINERS_CONF.exists()):
        run(["bash", str(SETUP), "--no-standins"], timeout=900)
    os.environ["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    run(["bash", str(STANDINS), "all"], timeout=1200)


@pytest.fixture(scope="session")
def registry(podman: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The workshop's registry on 127.0.0.1:5000 (tests/support/registry.py). Holding it also
    reserves the labs' other fixed ports (8089, 3308) for this session: sessions take turns."""
    with workshop_lock(), running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def images(podman: None, tmp_path_factory: pytest.TempPathFactory) -> Images:
    build_images(tmp_path_factory.mktemp("build-logs"))
    return Images(WEB_V1, WEB_V2, DB, REVISION, OPERATOR)


class Containers:
    """Starts podman containers and removes every one of them at teardown."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def run(self, image: str, *args: str, cmd: tuple[str, ...] = ()) -> str:
        name = f"roar-test-{RUN_ID}-{len(self.names)}"
        self.names.append(name)
        run(["podman", "run", "-d", "--name", name, *args, image, *cmd], timeout=120)
        return name

    def cleanup(self) -> None:
        for name in reversed(self.names):
            run(["podman", "rm", "-f", "-t", "5", name], check=False, timeout=60)
        self.names.clear()


@pytest.fixture(scope="module")
def containers(podman: None) -> Iterator[Containers]:
    c = Containers()
    try:
        yield c
    finally:
        c.cleanup()


def podman_exec(name: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["podman", "exec", name, *cmd], check=check, timeout=60)


def inspect(name: str, fmt: str) -> str:
    return run(["podman", "inspect", "--format", fmt, name]).stdout.strip()


@dataclass(frozen=True)
class DbCredentials:
    user: str
    password: str
    root_password: str
    database: str = "registry"

    def env_args(self) -> list[str]:
        return [
            "-e",
            f"MYSQL_USER={self.user}",
            "-e",
            f"MYSQL_PASSWORD={self.password}",
            "-e",
            f"MYSQL_DATABASE={self.database}",
            "-e",
            f"MYSQL_ROOT_PASSWORD={self.root_password}",
        ]


@pytest.fixture(scope="session")
def db_credentials() -> DbCredentials:
    # Random per run: nothing real, nothing committed.
    return DbCredentials("admin", secrets.token_urlsafe(12), secrets.token_urlsafe(12))


def wait_db_healthy(name: str, timeout: float = 120) -> float:
    """Runs the image's own health check until it passes."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        proc = run(
            ["podman", "exec", name, "healthcheck.sh", "--connect", "--innodb_initialized"],
            check=False,
            timeout=30,
        )
        if proc.returncode == 0:
            return time.monotonic() - start
        state = inspect(name, "{{.State.Status}}")
        if state not in ("running", "created"):
            logs = run(["podman", "logs", name], check=False).stdout[-3000:]
            raise AssertionError(f"db container {name} is {state}:\n{logs}")
        time.sleep(1)
    raise AssertionError(f"db container {name} not healthy after {timeout}s")


# --- dockerd for the compose tests ----------------------------------------------------------

DOCKERD_DIR = CACHE / "dockerd"
DOCKERD_SOCK = Path("/run/roar-dockerd/docker.sock")


def _docker_ok(host: str) -> bool:
    try:
        return (
            run(
                ["docker", "-H", host, "version", "--format", "{{.Server.Version}}"],
                check=False,
                timeout=15,
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="session")
def dockerd() -> Iterator[str]:
    """A Docker engine for `docker compose`: an existing one, or Debian's dockerd started here
    (with the flags these machines need) and stopped again at the end."""
    existing = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if _docker_ok(existing):
        yield existing
        return
    host = f"unix://{DOCKERD_SOCK}"
    if _docker_ok(host):  # left by an earlier run that could not stop it: reuse
        yield host
        return
    DOCKERD_SOCK.parent.mkdir(parents=True, exist_ok=True)
    DOCKERD_DIR.mkdir(parents=True, exist_ok=True)
    log = (DOCKERD_DIR / "dockerd.log").open("w")
    proc = subprocess.Popen(
        [
            "dockerd",
            "--host",
            host,
            "--data-root",
            str(DOCKERD_DIR / "data"),
            "--exec-root",
            str(DOCKERD_SOCK.parent / "exec"),
            "--pidfile",
            str(DOCKERD_SOCK.parent / "dockerd.pid"),
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
            "--default-ulimit",
            "nofile=1024:1024",
            "--default-ulimit",
            "nproc=4096:4096",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _docker_ok(host):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise CommandError(
                    "dockerd did not start; see "
                    f"{DOCKERD_DIR / 'dockerd.log'}:\n"
                    + (DOCKERD_DIR / "dockerd.log").read_text()[-3000:]
                )
            time.sleep(0.5)
        yield host
    finally:
        stop_process(proc, timeout=30)
        log.close()


def load_into_docker(host: str, tags: list[str]) -> None:
    """podman and dockerd keep separate stores: copy the images over unless already there."""
    missing = []
    for tag in tags:
        pid = run(["podman", "image", "inspect", "--format", "{{.Id}}", tag]).stdout.strip()
        got = run(
            ["docker", "-H", host, "image", "inspect", "--format", "{{.Id}}", tag], check=False
        ).stdout.strip()
        if got.removeprefix("sha256:") != pid:
            missing.append(tag)
    if not missing:
        return
    save = subprocess.Popen(
        ["podman", "save", "--format", "docker-archive", "-m", *missing], stdout=subprocess.PIPE
    )
    try:
        load = subprocess.run(
            ["docker", "-H", host, "load"],
            stdin=save.stdout,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        assert save.stdout is not None
        save.stdout.close()
        save.wait(timeout=60)
    if load.returncode != 0 or save.returncode != 0:
        raise CommandError(f"podman save | docker load failed: {load.stderr[-3000:]}")


@pytest.fixture(scope="session")
def docker_images(images: Images, dockerd: str) -> Images:
    load_into_docker(dockerd, [images.web_v1, images.web_v2, images.db])
    return images
