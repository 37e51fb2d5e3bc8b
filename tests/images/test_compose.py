"""compose.yaml for real: `docker compose` v2 against Debian's dockerd (the path where health
checks and `depends_on: condition: service_healthy` work here), with the podman-built images
loaded into dockerd. Tests run in file order: they walk one stack through its life."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.agents import WOODY
from support.net import free_port

from .conftest import Images
from .helpers import REPO, CommandError, get, http, http_ok, run, wait_for

# Generous: the first test of a cold run also pays for the session's image builds.
pytestmark = pytest.mark.timeout(1800)


LEGACY_AGENT = {
    "AGENT_NAME": "Daffy Duck",
    "AGENT_SPECIES": "duck",
    "SERVICE_START": "1937-04-17",
    "SERVICE_LAST": "1968-01-01",
    "ADVERSARY_NAME": "Elmer Fudd",
    "ADVERSARY_TECH": "duck season signs",
}


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    # `config` needs no engine: it parses, interpolates and validates the file.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL_", "ROAR_"))}
    return subprocess.run(
        [
            "docker",
            "compose",
            "--project-directory",
            str(REPO),
            "-f",
            str(REPO / "compose.yaml"),
            "--env-file",
            str(env_file),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean,
    )


def test_compose_file_shape() -> None:
    """Compose specification (no `version:`), loopback ports 8089/3308, health-gated order,
    a named volume, credentials from the env file (the example's placeholders)."""
    assert "version:" not in (REPO / "compose.yaml").read_text().split("services:")[0]
    proc = compose_config(REPO / ".env.example")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    web, db = cfg["services"]["web"], cfg["services"]["db"]
    assert [(p["host_ip"], p["published"], p["target"]) for p in web["ports"]] == [
        ("127.0.0.1", "8089", 8080)
    ]
    assert [(p["host_ip"], p["published"], p["target"]) for p in db["ports"]] == [
        ("127.0.0.1", "3308", 3306)
    ]
    assert web["depends_on"]["db"]["condition"] == "service_healthy"
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert web["environment"]["MYSQL_HOST"] == "db"
    assert web["read_only"] is True
    assert db["volumes"][0]["type"] == "volume" and db["volumes"][0]["target"] == "/var/lib/mysql"
    assert "mysql" in db["networks"]["default"]["aliases"]
    assert web["build"]["dockerfile"] == "images/web/Dockerfile"
    assert db["build"]["dockerfile"] == "images/db/Dockerfile"
    assert web["healthcheck"]["test"] and db["healthcheck"]["test"][1] == "healthcheck.sh"


def test_compose_refuses_to_start_without_passwords(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    proc = compose_config(empty)
    assert proc.returncode != 0, proc.stdout[:500]
    # Compose names the first missing one it meets (MYSQL_PASSWORD or MYSQL_ROOT_PASSWORD).
    assert re.search(r"MYSQL_(ROOT_)?PASSWORD is missing", proc.stderr), proc.stderr
    assert "see .env.example" in proc.stderr, proc.stderr


@dataclass
class Stack:
    host: str
    project: str
    env_file: Path
    web_port: int
    db_port: int
    password: str
    started: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def compose(self, *args: str, timeout: float = 240, check: bool = True):  # type: ignore[no-untyped-def]
        return run(
            [
                "docker",
                "-H",
                self.host,
                "compose",
                "--project-name",
                self.project,
                "--project-directory",
                str(REPO),
                "-f",
                str(REPO / "compose.yaml"),
                "--env-file",
                str(self.env_file),
                *args,
            ],
            timeout=timeout,
            check=check,
        )

    def up(self) -> None:
        try:
            self.compose(
                "up", "-d", "--wait", "--no-build", "--pull", "never", "--wait-timeout", "180"
            )
        except CommandError as exc:
            logs = self.compose("logs", "--no-color", "--tail", "60", check=False).stdout
            raise CommandError(f"{exc}\n--- compose logs ---\n{logs[-6000:]}") from None

    def container(self, service: str) -> str:
        return self.compose("ps", "-a", "-q", service).stdout.strip()

    def docker(self, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
        return run(["docker", "-H", self.host, *args], check=check, timeout=120)

    def sql(self, query: str) -> str:
        return self.compose(
            "exec",
            "-T",
            "db",
            "mysql",
            "-uadmin",
            f"-p{self.password}",
            "registry",
            "-N",
            "-e",
            query,
        ).stdout.strip()


@pytest.fixture(scope="module")
def stack(
    docker_images: Images, dockerd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("compose")
    password = secrets.token_urlsafe(12)
    web_port, db_port = free_port(), free_port()
    env_file = tmp / "test.env"
    # A file of our own: a developer's .env in the repo must not leak into the test.
    env_file.write_text(
        "\n".join(
            [
                "MYSQL_USER=admin",
                f"MYSQL_PASSWORD={password}",
                "MYSQL_DATABASE=registry",
                f"MYSQL_ROOT_PASSWORD={secrets.token_urlsafe(12)}",
                f"ROAR_WEB_PORT={web_port}",
                f"ROAR_DB_PORT={db_port}",
                "ROAR_BIND_ADDRESS=127.0.0.1",
                f"ROAR_WEB_IMAGE={docker_images.web_v2}",
                f"ROAR_DB_IMAGE={docker_images.db}",
                "",
            ]
        )
    )
    s = Stack(dockerd, f"roartest{uuid.uuid4().hex[:8]}", env_file, web_port, db_port, password)
    try:
        s.up()
        yield s
    finally:
        s.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)


def test_up_waits_for_healthy_services(stack: Stack) -> None:
    ps = [
        json.loads(ln) for ln in stack.compose("ps", "-a", "--format", "json").stdout.splitlines()
    ]
    by_service = {p["Service"]: p for p in ps}
    assert by_service["db"]["Health"] == "healthy"
    assert by_service["web"]["Health"] == "healthy"
    assert by_service["migrate"]["State"] == "exited" and by_service["migrate"]["ExitCode"] == 0
    # Published on loopback only, on the ports chosen for this run.
    for p in ps:
        for pub in p.get("Publishers") or []:
            if pub.get("PublishedPort"):
                assert pub["URL"] == "127.0.0.1", pub
    web = stack.docker("inspect", stack.container("web")).stdout
    assert json.loads(web)[0]["HostConfig"]["ReadonlyRootfs"] is True


def test_page_and_both_apis(stack: Stack) -> None:
    page = get(f"{stack.base}/roar/")
    assert page.status == 200 and "text/html" in page.headers.get("content-type", "")
    legacy = get(f"{stack.base}/roar/api/v1/registry").json()
    assert isinstance(legacy, list) and len(legacy) == 5
    modern = get(f"{stack.base}/api/v1/agents")
    assert modern.status == 200
    assert get(f"{stack.base}/roar/api/v1/status/version").body == "<p>Version</p>00.02.00"
    ready = get(f"{stack.base}/readyz")
    assert ready.status == 200


def test_writes_land_in_mariadb(stack: Stack) -> None:
    created = http("POST", f"{stack.base}/api/v1/agents", WOODY)
    assert created.status == 201, created.body
    legacy = http("POST", f"{stack.base}/roar/api/v2/registry", LEGACY_AGENT)
    assert legacy.status == 200 and legacy.body == "Item inserted", legacy.body
    rows = stack.sql("select NAME, SPECIES, SRVSTART from agents where id > 5 order by id")
    assert rows.splitlines() == [
        "Woody Woodpecker\tbird\t1959-05-22",
        "Daffy Duck\tduck\t1937-04-17",
    ]


def test_data_survives_down_and_up(stack: Stack) -> None:
    stack.compose("down", "--timeout", "20")
    stack.up()
    names = [a["NAME"] for a in get(f"{stack.base}/roar/api/v1/registry").json()]  # type: ignore[union-attr]
    assert "Woody Woodpecker" in names and "Daffy Duck" in names and len(names) == 7


def test_database_outage_gives_503_and_recovers_without_restarting_web(stack: Stack) -> None:
    web_id = stack.container("web")
    started = stack.docker("inspect", "--format", "{{.State.StartedAt}}", web_id).stdout
    stack.compose("stop", "db")
    try:
        wait_for("readyz 503", http_ok(f"{stack.base}/readyz", 503), timeout=30)

        # Reads: the API says the database is unavailable (503), not an empty table.
        def api_503() -> bool:
            reply = get(f"{stack.base}/api/v1/agents")
            return reply.status == 503 and "database" in reply.body.lower()

        wait_for("API 503 naming the database", api_503, timeout=60)

        # The legacy list may serve its snapshot for up to ROAR_CACHE_TTL (1 s) more, by design.
        def legacy_503() -> bool:
            reply = get(f"{stack.base}/roar/api/v1/registry")
            return reply.status == 503 and "database" in reply.body.lower()

        wait_for("legacy API 503 naming the database", legacy_503, timeout=30)
        time.sleep(1.5)  # past the TTL no worker may serve its old snapshot
        assert all(legacy_503() for _ in range(6))
        write = http("POST", f"{stack.base}/api/v1/agents", {**WOODY, "name": "Nobody"})
        assert write.status == 503, write.body
        assert get(f"{stack.base}/healthz").status == 200  # liveness does not depend on the db
    finally:
        stack.compose("start", "db")
    wait_for("readyz 200 again", http_ok(f"{stack.base}/readyz"), timeout=120, interval=1)
    wait_for("API 200 again", http_ok(f"{stack.base}/api/v1/agents"), timeout=30)
    assert len(get(f"{stack.base}/roar/api/v1/registry").json()) == 7  # type: ignore[arg-type]
    # Same container, same start: web recovered by itself.
    assert stack.container("web") == web_id
    now = stack.docker(
        "inspect", "--format", "{{.State.StartedAt}} {{.RestartCount}}", web_id
    ).stdout.split()
    assert now == [started.strip(), "0"]


def test_down_v_removes_the_data(stack: Stack) -> None:
    stack.compose("down", "-v", "--timeout", "20")
    volumes = stack.docker(
        "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={stack.project}"
    ).stdout
    assert volumes.strip() == ""
    stack.up()
    names = [a["NAME"] for a in get(f"{stack.base}/roar/api/v1/registry").json()]  # type: ignore[union-attr]
    assert len(names) == 5 and "Woody Woodpecker" not in names
