"""compose.yaml's monitoring profile, as `docker compose config` resolves it, and the files it
mounts, as promtool and amtool read them: Prometheus scrapes the web service on the port web
listens on, loads ROAR's rules, and reaches the profile's Alertmanager; ports stay on loopback.

Building and running the image is the images tier's kind of work (podman, stand-in bases);
images/prometheus/Dockerfile builds FROM the web image's base so it can."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.prometheus import binary

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL_", "ROAR_"))}
    args = ["docker", "compose", "--project-directory", str(REPO), "-f", str(REPO / "compose.yaml")]
    args += ["--env-file", str(REPO / ".env.example"), "--profile", "monitoring"]
    result = subprocess.run(
        [*args, "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False, env=clean,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]  # type: ignore[no-any-return]


def _mount(service: dict[str, Any], target: str) -> Path:
    (volume,) = [v for v in service["volumes"] if v["target"] == target]
    assert volume["read_only"] is True
    return Path(volume["source"])


def _in_mount(service: dict[str, Any], flag: str) -> Path:
    """The host file behind a container path that a command-line flag names."""
    (arg,) = [a for a in service["command"] if a.startswith(f"--{flag}=")]
    container_path = Path(arg.split("=", 1)[1])
    root = Path("/etc/roar-monitoring")
    return _mount(service, str(root)) / container_path.relative_to(root)


def test_monitoring_services_are_built_locally_and_published_on_loopback(
    services: dict[str, Any],
) -> None:
    assert "grafana" not in services  # its own profile: the only image pulled from a registry
    for name, port in (("prometheus", 9090), ("alertmanager", 9093)):
        svc = services[name]
        assert svc["build"]["dockerfile"] == "images/prometheus/Dockerfile"
        assert [(p["host_ip"], p["published"], p["target"]) for p in svc["ports"]] == [
            ("127.0.0.1", str(port), port)
        ]
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]


def test_prometheus_scrapes_web_and_alerts_through_the_profile(services: dict[str, Any]) -> None:
    config_file = _in_mount(services["prometheus"], "config.file")
    check = subprocess.run(
        [binary("promtool"), "check", "config", str(config_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load(config_file.read_text())
    (job,) = config["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    web_ports = [p["target"] for p in services["web"]["ports"]]
    assert host == "web" and int(port) in web_ports
    (am,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    am_host, am_port = am.split(":")
    assert am_host == "alertmanager"
    assert int(am_port) in [p["target"] for p in services["alertmanager"]["ports"]]


def test_alertmanager_config_is_valid(services: dict[str, Any]) -> None:
    config_file = _in_mount(services["alertmanager"], "config.file")
    check = subprocess.run(
        [binary("amtool"), "check-config", str(config_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
