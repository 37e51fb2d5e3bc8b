"""Settings: where the database URL comes from, secrets from files, errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from roar.config import ConfigError, Settings
from support.roar import clear_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch)


def test_embedded_sqlite_by_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path}/roar.db"
    assert settings.is_embedded


def test_explicit_url_wins_and_gets_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROAR_DATABASE_URL", "mysql://u:p@db:3306/registry")
    monkeypatch.setenv("MYSQL_SERVICE_HOST", "10.0.0.1")
    assert Settings().resolved_database_url == (
        "mysql+aiomysql://u:p@db:3306/registry?charset=utf8mb4"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {
                "MYSQL_PORT_3306_TCP_ADDR": "172.17.0.2",
                "MYSQL_PORT_3306_TCP_PORT": "3306",
                "MYSQL_ENV_MYSQL_DATABASE": "registry",
            },
            "172.17.0.2:3306/registry",
        ),
        (
            {"MYSQL_SERVICE_HOST": "10.96.0.7", "MYSQL_SERVICE_PORT": "3307"},
            "10.96.0.7:3307/registry",
        ),
        (
            {"MYSQL_HOST": "db", "MYSQL_DATABASE": "other", "MYSQL_SERVICE_HOST": "10.96.0.7"},
            "db:3306/other",
        ),
    ],
)
def test_legacy_variables(monkeypatch: pytest.MonkeyPatch, env: dict, expected: str) -> None:
    for key, value in (env | {"MYSQL_USER": "admin", "MYSQL_PASSWORD": "p@ss/word"}).items():
        monkeypatch.setenv(key, value)
    url = Settings().resolved_database_url
    assert url == f"mysql+aiomysql://admin:p%40ss%2Fword@{expected}?charset=utf8mb4"


def test_legacy_host_without_password_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYSQL_SERVICE_HOST", "10.96.0.7")
    with pytest.raises(ConfigError, match="MYSQL_PASSWORD"):
        Settings().resolved_database_url  # noqa: B018


def test_secrets_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("tok\n")
    (tmp_path / "pw").write_text("from-file\n")
    monkeypatch.setenv("ROAR_API_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("MYSQL_PASSWORD_FILE", str(tmp_path / "pw"))
    monkeypatch.setenv("MYSQL_HOST", "db")
    settings = Settings()
    assert settings.token == "tok"
    assert ":from-file@db:" in settings.resolved_database_url


def test_unreadable_secret_file_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROAR_API_TOKEN_FILE", "/nonexistent/token")
    with pytest.raises(ConfigError, match="ROAR_API_TOKEN_FILE"):
        Settings()


def test_flavor_sets_the_status_version(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().status_version == "00.01.00"
    monkeypatch.setenv("ROAR_FLAVOR", "v2")
    assert Settings().status_version == "00.02.00"
    monkeypatch.setenv("ROAR_VERSION", "00.02.01")
    assert Settings().status_version == "00.02.01"


@pytest.mark.parametrize("url", ["postgres://x", "no-scheme"])
def test_unsupported_database_url(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ROAR_DATABASE_URL", url)
    with pytest.raises(ConfigError, match="ROAR_DATABASE_URL"):
        Settings().resolved_database_url  # noqa: B018


def test_empty_token_means_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROAR_API_TOKEN", "")
    assert Settings().token is None


def test_a_secret_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROAR_DATABASE_URL", "hunter2")  # a password pasted in the wrong place
    with pytest.raises(ConfigError) as caught:
        Settings()
    assert str(caught.value) == "ROAR_DATABASE_URL: the value is not a URL (expected scheme://...)"


def test_a_bad_url_in_a_file_names_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "url").write_text("postgres://u:hunter2@db/registry\n")
    monkeypatch.setenv("ROAR_DATABASE_URL_FILE", str(tmp_path / "url"))
    with pytest.raises(ConfigError) as caught:
        Settings()
    assert str(caught.value) == (
        f"ROAR_DATABASE_URL_FILE: {tmp_path / 'url'}: scheme 'postgres' is not supported "
        "(mysql, sqlite)"
    )
