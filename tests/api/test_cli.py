"""The `roar` command: exit codes scripts can trust, one-line errors, and the API client."""

from __future__ import annotations

import json

import pytest

from support.roar import RoarServer
from support.roar import run_roar as roar


def test_version() -> None:
    result = roar("version")
    assert result.returncode == 0 and result.stdout.strip()[0].isdigit()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("serve", "--port", "notaport"), 2, "'notaport' is not a valid integer"),
        (("nosuchcommand",), 2, "No such command"),
        (("agents", "update", "1"), 2, "nothing to change"),
    ],
)
def test_bad_usage_is_one_line_and_nonzero(args: tuple[str, ...], code: int, message: str) -> None:
    result = roar(*args)
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roar: error: ") and message in lines[0]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(
            ("serve", "--port", "99999"), {},
            "--port: 99999 is out of range (must be 0..65535)", id="flag",
        ),
        pytest.param(
            ("serve",), {"ROAR_PORT": "abc"}, "ROAR_PORT: 'abc' is not an integer", id="variable"
        ),
        pytest.param(
            ("serve",), {"MYSQL_SERVICE_PORT": "x"},
            "MYSQL_SERVICE_PORT: 'x' is not an integer", id="legacy-variable",
        ),
        pytest.param(
            ("serve", "--workers", "0"), {"ROAR_FLAVOR": "v3", "ROAR_WORKERS": "2"},
            "ROAR_FLAVOR: 'v3' is not a valid choice (must be 'v1' or 'v2'); "
            "--workers: 0 is out of range (must be 1..64)",  # the flag, not ROAR_WORKERS, won
            id="two-at-once",
        ),
        pytest.param(
            ("operator", "run", "--metrics-port", "99999"), {"ROAR_OPERATOR_RESYNC_SECONDS": "0"},
            "--metrics-port: 99999 is out of range (must be 0..65535); "
            "ROAR_OPERATOR_RESYNC_SECONDS: 0 is out of range (must be > 0)",
            id="operator",
        ),
    ],
)  # fmt: skip
def test_a_bad_setting_is_named_as_given(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = roar(*args, env=env)
    assert (result.returncode, result.stderr) == (1, f"roar: error: {message}\n")


def test_unreachable_database_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = roar(
        "db",
        "upgrade",
        env={"ROAR_DATABASE_URL": "mysql://u:p@127.0.0.1:1/registry", "ROAR_DB_TIMEOUT": "1"},
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("roar: error: database unavailable")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])  # with 2, a child process migrates
def test_serve_that_cannot_migrate_stops_with_one_line(workers: str) -> None:
    result = roar(
        "serve",
        "--port",
        "0",
        "--workers",
        workers,
        "--migrate",
        env={"ROAR_DATABASE_URL": "mysql://u:p@127.0.0.1:1/registry", "ROAR_DB_TIMEOUT": "1"},
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("roar: error:")]
    assert errors == [errors[0]] and "database unavailable" in errors[0]
    assert "Traceback" not in result.stderr


def test_missing_password_names_the_variable() -> None:
    result = roar("db", "upgrade", env={"MYSQL_SERVICE_HOST": "10.0.0.1"})
    assert result.returncode == 1 and "MYSQL_PASSWORD" in result.stderr


def test_reset_asks_first(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"ROAR_DATA_DIR": str(tmp_path)}
    assert roar("db", "upgrade", "--seed", env=env).returncode == 0
    refused = roar("db", "reset", env=env, stdin="n\n")
    assert refused.returncode == 1 and "nothing changed" in refused.stderr
    done = roar("db", "reset", "--yes", env=env)
    assert done.returncode == 0, done.stderr


def test_agents_client_round_trip(roar: RoarServer) -> None:
    base = ("agents", "--url", roar.url)
    listed = _roar(*base, "list", "--species", "dog")
    assert listed.returncode == 0
    assert "Scooby" in listed.stdout and "FIRST SERVICE" in listed.stdout

    added = _roar(
        *base, "--json", "add", "--name", "Tom", "--species", "cat", "--start", "1940-02-10"
    )
    agent = json.loads(added.stdout)
    assert agent["name"] == "Tom"

    bad = _roar(*base, "add", "--name", "Tom", "--species", "cat", "--start", "1940-02-30")
    assert bad.returncode == 1 and "service_start" in bad.stderr

    stale = _roar(*base, "update", str(agent["id"]), "--tech", "pan", "--if-match", "99")
    assert stale.returncode == 1 and "412" in stale.stderr
    changed = _roar(*base, "--json", "update", str(agent["id"]), "--tech", "pan")
    assert json.loads(changed.stdout)["adversary_tech"] == "pan"

    assert _roar(*base, "delete", str(agent["id"])).returncode == 0
    gone = _roar(*base, "delete", str(agent["id"]))
    assert gone.returncode == 1 and "404" in gone.stderr


def test_client_cannot_reach_server() -> None:
    result = _roar("agents", "--url", "http://127.0.0.1:1", "list")
    assert result.returncode == 1 and "cannot reach ROAR" in result.stderr


_roar = roar
