"""roar-db under podman: init SQL from ROAR's one definition, the workshop's mysql command, health
check, *_FILE secrets, mariadbd as PID 1 under the mysql user, clean SIGTERM."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pymysql
import pytest

from support.net import free_port

from .conftest import Containers, DbCredentials, Images, inspect, podman_exec, wait_db_healthy
from .helpers import run

# Generous: the first test of a cold run also pays for the session's image builds.
pytestmark = pytest.mark.timeout(1800)


SEED_NAMES = ["Road Runner", "Scooby", "Perry", "Mr. Krabs", "Bugs Bunny"]


@pytest.fixture(scope="module")
def db(images: Images, containers: Containers, db_credentials: DbCredentials) -> tuple[str, int]:
    port = free_port()
    name = containers.run(images.db, "-p", f"127.0.0.1:{port}:3306", *db_credentials.env_args())
    wait_db_healthy(name)
    return name, port


def test_workshop_mysql_command_shows_the_five_seed_rows(
    db: tuple[str, int], db_credentials: DbCredentials
) -> None:
    name, _ = db
    out = podman_exec(
        name,
        "mysql",
        "-uadmin",
        f"-p{db_credentials.password}",
        "registry",
        "-e",
        "select * from agents",
    ).stdout
    lines = out.strip().splitlines()
    assert lines[0].split("\t")[:7] == [
        "id",
        "NAME",
        "SPECIES",
        "SRVSTART",
        "SRVLAST",
        "ADVNAME",
        "ADVTECH",
    ]
    rows = [ln.split("\t") for ln in lines[1:]]
    assert [r[1] for r in rows] == SEED_NAMES
    assert rows[0][:7] == [
        "1",
        "Road Runner",
        "bird",
        "1955-01-20",
        "1995-02-15",
        "Wile E. Coyote",
        "ACME product du jour",
    ]


def test_mysql_command_names_exist(db: tuple[str, int]) -> None:
    """MariaDB 11 images ship only mariadb* names (the stand-in too); the image adds mysql*."""
    name, _ = db
    found = podman_exec(
        name, "sh", "-c", "for n in mysql mysqladmin mysqldump; do command -v $n; done"
    ).stdout.split()
    assert found == [
        "/usr/local/bin/mysql",
        "/usr/local/bin/mysqladmin",
        "/usr/local/bin/mysqldump",
    ]
    assert "mariadb" in podman_exec(name, "mysqladmin", "--version").stdout.lower()


def test_init_sql_agrees_with_roar_db_sql(db: tuple[str, int], images: Images) -> None:
    """The image carries exactly what `roar db sql` of this source tree prints."""
    name, _ = db
    in_image = podman_exec(name, "cat", "/docker-entrypoint-initdb.d/01-roar.sql").stdout
    local = run([sys.executable, "-m", "roar", "db", "sql"]).stdout
    assert in_image == local


def test_reachable_on_loopback_with_the_compose_credentials(
    db: tuple[str, int], db_credentials: DbCredentials
) -> None:
    _, port = db
    conn = pymysql.connect(
        host="127.0.0.1",
        port=port,
        user=db_credentials.user,
        password=db_credentials.password,
        database="registry",
    )
    with conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM agents")
        assert cur.fetchone() == (5,)
        cur.execute("SHOW CREATE TABLE agents")
        ddl = cur.fetchone()[1]
        assert "ENGINE=InnoDB" in ddl and "utf8mb4" in ddl


def test_mariadbd_is_pid_1_under_the_mysql_user(db: tuple[str, int]) -> None:
    name, _ = db
    assert podman_exec(name, "cat", "/proc/1/comm").stdout.strip() == "mariadbd"
    status = podman_exec(name, "cat", "/proc/1/status").stdout
    uid_line = next(ln for ln in status.splitlines() if ln.startswith("Uid:"))
    assert uid_line.split()[1] == "999"


def test_health_check(db: tuple[str, int]) -> None:
    name, _ = db
    health = json.loads(inspect(name, "{{json .Config.Healthcheck}}"))
    assert health["Test"][1:] == ["healthcheck.sh", "--connect", "--innodb_initialized"]
    assert run(["podman", "healthcheck", "run", name], check=False).returncode == 0


def test_oci_labels(images: Images) -> None:
    labels = json.loads(
        run(["podman", "image", "inspect", "--format", "{{json .Config.Labels}}", images.db]).stdout
    )
    assert labels["org.opencontainers.image.title"] == "roar-db"
    assert labels["org.opencontainers.image.revision"] == images.revision


def test_file_variants_and_clean_sigterm(
    images: Images, containers: Containers, tmp_path: Path
) -> None:
    """MYSQL_PASSWORD_FILE / MARIADB_ROOT_PASSWORD_FILE (Kubernetes and compose secrets)."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "pw").write_text("from-a-file")
    (secrets / "root").write_text("root-from-a-file")
    for f in secrets.iterdir():
        f.chmod(0o644)
    name = containers.run(
        images.db,
        "-v",
        f"{secrets}:/run/secrets:ro,Z",
        "-e",
        "MYSQL_USER=admin",
        "-e",
        "MYSQL_PASSWORD_FILE=/run/secrets/pw",
        "-e",
        "MARIADB_ROOT_PASSWORD_FILE=/run/secrets/root",
    )
    wait_db_healthy(name)
    count = podman_exec(
        name,
        "mysql",
        "-uadmin",
        "-pfrom-a-file",
        "registry",
        "-N",
        "-e",
        "select count(*) from agents",
    ).stdout.strip()
    assert count == "5"
    root = podman_exec(name, "mysql", "-uroot", "-proot-from-a-file", "-N", "-e", "select 1")
    assert root.stdout.strip() == "1"
    run(["podman", "stop", "-t", "30", name], timeout=60)
    assert inspect(name, "{{.State.ExitCode}}") == "0"
    assert (
        "Shutdown complete"
        in run(["podman", "logs", name]).stderr + run(["podman", "logs", name]).stdout
    )
