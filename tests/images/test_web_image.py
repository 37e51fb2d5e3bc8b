"""roar-web under podman: non-root, read-only root filesystem, health, flavors, labels, SIGTERM."""

from __future__ import annotations

import json

import pytest

from support.net import free_port

from .conftest import Containers, Images, inspect, podman_exec
from .helpers import get, http_ok, run, wait_for

# Generous: the first test of a cold run also pays for the session's image builds.
pytestmark = pytest.mark.timeout(1800)


HARDENED = [
    "--read-only",
    "--tmpfs",
    "/tmp:rw,size=64m",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]


def start_web(containers: Containers, image: str, *extra: str) -> tuple[str, str]:
    port = free_port()
    name = containers.run(image, "-p", f"127.0.0.1:{port}:8080", *HARDENED, *extra)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{name} /healthz", http_ok(f"{base}/healthz"), timeout=60)
    return name, base


@pytest.fixture(scope="module")
def web_v1(images: Images, containers: Containers) -> tuple[str, str]:
    return start_web(containers, images.web_v1)


@pytest.fixture(scope="module")
def web_v2(images: Images, containers: Containers) -> tuple[str, str]:
    return start_web(containers, images.web_v2)


def test_runs_as_numeric_non_root_user(web_v1: tuple[str, str]) -> None:
    name, _ = web_v1
    assert inspect(name, "{{.Config.User}}") == "10001:10001"
    assert podman_exec(name, "id", "-u").stdout.strip() == "10001"
    # The app itself is PID 1 (exec form), not a shell.
    cmdline = podman_exec(name, "cat", "/proc/1/cmdline").stdout.split("\0")
    assert any(part.endswith("/roar") for part in cmdline), cmdline
    assert "serve" in cmdline


def test_read_only_root_filesystem(web_v1: tuple[str, str]) -> None:
    name, base = web_v1
    assert inspect(name, "{{.HostConfig.ReadonlyRootfs}}") == "true"
    denied = podman_exec(name, "touch", "/opt/roar/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    # Embedded SQLite lives under /tmp (tmpfs): the app works, reads and writes.
    assert get(f"{base}/readyz").status == 200
    assert len(get(f"{base}/roar/api/v1/registry").json()) == 5  # type: ignore[arg-type]


def test_health_and_liveness(web_v1: tuple[str, str]) -> None:
    name, base = web_v1
    reply = get(f"{base}/healthz")
    assert reply.status == 200 and reply.json() == {"status": "ok"}
    # The image's HEALTHCHECK, run by podman itself (python one-liner, no curl in slim).
    health = json.loads(inspect(name, "{{json .Config.Healthcheck}}"))
    assert "http://127.0.0.1:8080/healthz" in " ".join(health["Test"])
    assert run(["podman", "healthcheck", "run", name], check=False).returncode == 0


@pytest.mark.parametrize(("flavor", "expected"), [("v1", "00.01.00"), ("v2", "00.02.00")])
def test_status_version_per_flavor(
    flavor: str, expected: str, request: pytest.FixtureRequest
) -> None:
    _, base = request.getfixturevalue(f"web_{flavor}")
    reply = get(f"{base}/roar/api/v1/status/version")
    assert reply.status == 200
    assert reply.body == f"<p>Version</p>{expected}"
    version = get(f"{base}/version").json()
    assert isinstance(version, dict)
    assert version["flavor"] == flavor and version["status_version"] == expected


@pytest.mark.parametrize(("flavor", "expected"), [("v1", "00.01.00"), ("v2", "00.02.00")])
def test_oci_labels(images: Images, flavor: str, expected: str) -> None:
    tag = images.web_v1 if flavor == "v1" else images.web_v2
    labels = json.loads(
        run(["podman", "image", "inspect", "--format", "{{json .Config.Labels}}", tag]).stdout
    )
    assert labels["org.opencontainers.image.title"] == "roar-web"
    assert labels["org.opencontainers.image.version"] == expected
    assert labels["org.opencontainers.image.revision"] == images.revision
    assert labels["org.opencontainers.image.source"]
    assert labels["io.roar.flavor"] == flavor
    env = run(["podman", "image", "inspect", "--format", "{{json .Config.Env}}", tag]).stdout
    assert f"ROAR_FLAVOR={flavor}" in env and "ROAR_LOG_FORMAT=json" in env
    assert f"ROAR_BUILD_COMMIT={images.revision}" in env


def test_no_build_leftovers_or_secrets_in_the_image(images: Images) -> None:
    check = (
        "test ! -e /opt/roar/bin/pip && test ! -e /src && test ! -e /root/.cache/pip && echo clean"
    )
    assert (
        run(["podman", "run", "--rm", images.web_v1, "sh", "-c", check]).stdout.strip() == "clean"
    )
    env = run(
        ["podman", "image", "inspect", "--format", "{{json .Config.Env}}", images.web_v1]
    ).stdout
    for word in ("PASSWORD", "TOKEN", "SECRET"):
        assert word not in env


def test_logs_are_json_lines(web_v1: tuple[str, str]) -> None:
    name, base = web_v1
    get(f"{base}/roar/api/v1/registry")
    logs = run(["podman", "logs", name])
    lines = [ln for ln in (logs.stdout + logs.stderr).splitlines() if ln.startswith("{")]
    assert lines, "no JSON log lines"
    assert all("level" in json.loads(ln) for ln in lines)


def stop_exit_code(containers: Containers, image: str, *env: str) -> int:
    name, _ = start_web(containers, image, *env)
    run(["podman", "stop", "-t", "30", name], timeout=60)
    return int(inspect(name, "{{.State.ExitCode}}"))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_stops_gracefully_with_exit_0(
    images: Images, containers: Containers, workers: str
) -> None:
    assert stop_exit_code(containers, images.web_v1, "-e", f"ROAR_WORKERS={workers}") == 0
