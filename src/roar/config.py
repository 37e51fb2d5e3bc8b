"""Every setting of the web service (``roar serve``, ``roar db``), in one place.

Settings come from ``ROAR_*`` variables; each secret can also come from a file
(``ROAR_API_TOKEN_FILE``, ``ROAR_DATABASE_URL_FILE``, ``MYSQL_PASSWORD_FILE``), as Kubernetes and
Compose secrets are mounted. The operator's settings are its own class
(``roar.operator.settings``, ``ROAR_OPERATOR_*``); the only other variable the package touches is
``PROMETHEUS_MULTIPROC_DIR``, which the worker supervisor (``roar.server``) sets for
prometheus_client's multi-process mode and ``roar.metrics`` reads back.

The database is chosen in this order:

1. ``ROAR_DATABASE_URL`` (or ``ROAR_DATABASE_URL_FILE``);
2. the legacy variables the workshop's manifests inject: Docker links
   (``MYSQL_PORT_3306_TCP_ADDR``/``_PORT``, ``MYSQL_ENV_MYSQL_DATABASE``), Kubernetes' service
   variables for a Service named ``mysql`` (``MYSQL_SERVICE_HOST``/``_PORT``) or an explicit
   ``MYSQL_HOST``, with ``MYSQL_USER``/``MYSQL_PASSWORD``/``MYSQL_DATABASE``;
3. the embedded SQLite file in the per-user data directory.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args
from urllib.parse import quote

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

__all__ = [
    "CHAOS_MAX_SECONDS",
    "ConfigError",
    "Flavor",
    "LogFormat",
    "Settings",
    "describe_errors",
    "get_settings",
]

#: The status version string of each flavor; Istio labs count these two strings.
FLAVOR_VERSIONS = {"v1": "00.01.00", "v2": "00.02.00"}

#: The longest delay (seconds) any chaos setting or route may ask for.
CHAOS_MAX_SECONDS = 60.0


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the variable."""


class Flavor(StrEnum):
    v1 = "v1"
    v2 = "v2"


class LogFormat(StrEnum):
    json = "json"
    text = "text"


def _read_secret_file(path: Path, variable: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from exc


def _legacy(name: str) -> Any:
    """A field read from an unprefixed variable the workshop's manifests inject."""
    return Field(None, validation_alias=AliasChoices(name))


class Settings(BaseSettings):
    """ROAR's settings; each field is the variable ``ROAR_<FIELD>`` unless said otherwise.

    A bad value raises ConfigError with one line per setting that names it as the user gave
    it: the variable, or the name in ``_given_as`` (``{"port": "--port"}`` for a CLI flag).
    """

    model_config = SettingsConfigDict(env_prefix="ROAR_", extra="ignore", frozen=True)

    def __init__(self, *, _given_as: Mapping[str, str] | None = None, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(describe_errors(Settings, exc, _given_as or {})) from None

    #: SQLAlchemy URL; ``mysql://`` and ``sqlite:///`` are given their async drivers.
    database_url: SecretStr | None = None
    database_url_file: Path | None = None
    #: Directory of the embedded SQLite database (default: the per-user data directory).
    data_dir: Path | None = None
    #: Connections kept per worker process.
    db_pool_size: int = Field(10, ge=1, le=100)
    #: Seconds a database connect or readiness check may take before it counts as down.
    db_timeout: float = Field(2.0, gt=0, le=60)
    #: Seconds a request's database work may take (checkout, queries, commit) before it is
    #: answered 503: a server that accepts connections but never replies must not hang clients.
    db_query_timeout: float = Field(10.0, gt=0, le=600)
    #: Seconds the agents snapshot may be served without being confirmed current against the
    #: database (the background poll confirms it); past that, reads check the database
    #: themselves and answer 503 when it is down. 0: every read checks (docs/configuration.md).
    cache_ttl: float = Field(1.0, ge=0, le=60)
    #: Seconds between two looks at the database's change log for changes made elsewhere
    #: (other replicas, SQL); they show within this plus one sync. Writes through this server
    #: show at once, whichever worker answers.
    cache_poll_interval: float = Field(0.1, ge=0.01, le=10)

    #: Bearer token that every write must carry; unset means writes are open.
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    #: Largest request body accepted, in bytes (413 above it).
    max_body_bytes: int = Field(64 * 1024, ge=1024)

    #: UI and API flavor: v2 changes the page and the status version.
    flavor: Flavor = Flavor.v1
    #: Status version string; defaults to the flavor's (v1 ``00.01.00``, v2 ``00.02.00``).
    version: str | None = None
    #: Source commit of this build, if known (set by the image build).
    build_commit: str | None = None

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    #: Seconds readiness reports 503 after SIGTERM while still serving, so load balancers
    #: stop sending traffic before the listener closes.
    shutdown_drain: float = Field(0.0, ge=0, le=120)
    #: Seconds in-flight requests get to finish after the listener closes.
    shutdown_grace: float = Field(20.0, ge=0, le=600)

    log_format: LogFormat = LogFormat.text
    log_level: Annotated[str, NoDecode] = "INFO"
    #: One ``roar.access`` line per request; false: only answers with status 400 or above.
    access_log: bool = True
    #: Share (0..1) of successful requests that get an access-log line; errors always do.
    access_log_sample: float = Field(1.0, ge=0, le=1)
    #: Log probe and metrics requests (/healthz, /readyz, /metrics) too, when they succeed.
    access_log_probes: bool = False

    #: Marks a production deployment; ROAR then refuses to start with ``chaos`` on.
    production: bool = False
    #: Test-only fault injection (docs/chaos.md): the /chaos routes and the random faults below.
    #: Off by default; without it the ``chaos_*`` settings are ignored.
    chaos: bool = False
    #: Share of API and page requests answered with ``chaos_error_status`` (0..1).
    chaos_error_rate: float = Field(0.0, ge=0, le=1)
    chaos_error_status: int = Field(500, ge=400, le=599)
    #: Share of API and page requests delayed by ``chaos_delay_seconds`` (0..1).
    chaos_delay_rate: float = Field(0.0, ge=0, le=1)
    chaos_delay_seconds: float = Field(0.0, ge=0, le=CHAOS_MAX_SECONDS)

    # Legacy variables (unprefixed), see the module docstring.
    mysql_host: str | None = _legacy("MYSQL_HOST")
    mysql_service_host: str | None = _legacy("MYSQL_SERVICE_HOST")
    mysql_service_port: int | None = _legacy("MYSQL_SERVICE_PORT")
    mysql_link_addr: str | None = _legacy("MYSQL_PORT_3306_TCP_ADDR")
    mysql_link_port: int | None = _legacy("MYSQL_PORT_3306_TCP_PORT")
    mysql_link_database: str | None = _legacy("MYSQL_ENV_MYSQL_DATABASE")
    mysql_port: int | None = Field(None, validation_alias=AliasChoices("MYSQL_TCP_PORT"))
    mysql_user: str | None = _legacy("MYSQL_USER")
    mysql_password: SecretStr | None = _legacy("MYSQL_PASSWORD")
    mysql_password_file: Path | None = _legacy("MYSQL_PASSWORD_FILE")
    mysql_database: str | None = _legacy("MYSQL_DATABASE")

    @model_validator(mode="after")
    def _load_secret_files(self) -> Settings:
        pairs = (
            ("api_token", "api_token_file", "ROAR_API_TOKEN_FILE"),
            ("database_url", "database_url_file", "ROAR_DATABASE_URL_FILE"),
            ("mysql_password", "mysql_password_file", "MYSQL_PASSWORD_FILE"),
        )
        for field, file_field, variable in pairs:
            path = getattr(self, file_field)
            if getattr(self, field) is None and path is not None:
                value = _read_secret_file(path, variable)
                if field == "database_url":
                    try:
                        value = normalize_database_url(value)
                    except ValueError as exc:
                        raise ConfigError(f"{variable}: {path}: {exc}") from None
                object.__setattr__(self, field, SecretStr(value))
        return self

    @field_validator("database_url")
    @classmethod
    def _supported_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        return SecretStr(normalize_database_url(value.get_secret_value())) if value else value

    @field_validator("chaos_error_status")
    @classmethod
    def _known_error_status(cls, value: int) -> int:
        return known_status(value)

    @model_validator(mode="after")
    def _no_chaos_in_production(self) -> Settings:
        if self.chaos and self.production:
            raise ConfigError(
                "ROAR_CHAOS and ROAR_PRODUCTION are both true: fault injection is for tests "
                "only; unset ROAR_CHAOS to run in production"
            )
        return self

    @property
    def status_version(self) -> str:
        return self.version or FLAVOR_VERSIONS[self.flavor.value]

    @property
    def token(self) -> str | None:
        value = self.api_token.get_secret_value() if self.api_token else ""
        return value or None

    @functools.cached_property
    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL to connect to, chosen as the module docstring says."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()  # normalized when read
        host = self.mysql_host or self.mysql_service_host or self.mysql_link_addr
        if host:
            port = self.mysql_port or self.mysql_service_port or self.mysql_link_port or 3306
            database = self.mysql_database or self.mysql_link_database or "registry"
            if self.mysql_password is None:
                raise ConfigError(
                    f"MYSQL_PASSWORD (or MYSQL_PASSWORD_FILE) is required to reach MySQL at {host}"
                )
            user = quote(self.mysql_user or "admin", safe="")
            password = quote(self.mysql_password.get_secret_value(), safe="")
            return f"mysql+aiomysql://{user}:{password}@{host}:{port}/{database}?charset=utf8mb4"
        # platformdirs is imported only where the embedded database is used.
        import platformdirs

        data_dir = self.data_dir or Path(platformdirs.user_data_dir("roar"))
        return f"sqlite+aiosqlite:///{data_dir / 'roar.db'}"

    @property
    def database_name(self) -> str:
        """The database URL without its password, for logs and errors."""
        return redact_url(self.resolved_database_url)

    @property
    def is_embedded(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def describe_errors(
    model: type[BaseSettings], exc: ValidationError, given_as: Mapping[str, str]
) -> str:
    """pydantic's errors on a settings class as ``NAME: value is wrong (the rule)`` on one line,
    ``;`` between settings. NAME is ``given_as[field]`` where the field was given so (a CLI
    flag), else the variable it is read from (the env prefix and field name, or its alias)."""
    return "; ".join(dict.fromkeys(_describe_one(model, error, given_as) for error in exc.errors()))


def _describe_one(
    model: type[BaseSettings], error: ErrorDetails, given_as: Mapping[str, str]
) -> str:
    fields = model.model_fields
    key = str(error["loc"][0]) if error["loc"] else ""
    # A legacy field's errors carry its variable (the alias) rather than the field's name.
    field = key if key in fields else next((f for f in fields if _variable(model, f) == key), "")
    name = given_as.get(field) or (_variable(model, field) if field else "settings")
    return f"{name}: {_problem(error, fields.get(field))}"


def _variable(model: type[BaseSettings], field: str) -> str:
    """The environment variable a field is read from."""
    alias = model.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    return f"{model.model_config.get('env_prefix', '')}{field}".upper()


def _problem(error: ErrorDetails, info: FieldInfo | None) -> str:
    kind, ctx, given = error["type"], error.get("ctx", {}), error["input"]
    secret = info is not None and SecretStr in (info.annotation, *get_args(info.annotation))
    shown = "the value" if secret else repr(given) if isinstance(given, str) else str(given)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bounds = _bounds(info)
        return f"{given} is out of range" + (f" (must be {bounds})" if bounds else "")
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"{shown} is not an integer"
    if kind in ("float_parsing", "float_type"):
        return f"{shown} is not a number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{shown} is not a boolean (true or false)"
    if kind in ("enum", "literal_error"):
        return f"{shown} is not a valid choice (must be {ctx.get('expected', '?')})"
    if kind == "value_error":  # our own validators word their messages for people
        return str(ctx.get("error", error["msg"]))
    return f"{shown} is not valid ({error['msg'][:1].lower()}{error['msg'][1:]})"


def _bounds(info: FieldInfo | None) -> str:
    """A field's numeric limits, written ``0..65535`` or ``> 0 and <= 60``."""
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    limits = {
        sign: bound
        for item in (info.metadata if info else ())
        for op, sign in signs.items()
        if (bound := getattr(item, op, None)) is not None
    }
    if ">=" in limits and "<=" in limits:
        return f"{limits['>=']:g}..{limits['<=']:g}"
    return " and ".join(f"{sign} {bound:g}" for sign, bound in limits.items())


def known_status(value: int) -> int:
    """``value`` if it is an HTTP status with a standard phrase (answers need its title)."""
    try:
        HTTPStatus(value)
    except ValueError:
        raise ValueError(f"{value} is not a standard HTTP status") from None
    return value


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (plain string work: no SQLAlchemy import
    in processes that only need to name the database, like the worker supervisor)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not (sep and at and ":" in credentials):
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{location}"


def normalize_database_url(url: str) -> str:
    """Give plain ``mysql://``/``mariadb://``/``sqlite://`` URLs the async drivers ROAR uses."""
    scheme, sep, rest = url.partition("://")
    if not sep:  # the value itself is not echoed: it may be a password pasted in the wrong place
        raise ValueError("the value is not a URL (expected scheme://...)")
    drivers = {
        "mysql": "mysql+aiomysql",
        "mariadb": "mysql+aiomysql",
        "mysql+pymysql": "mysql+aiomysql",
        "sqlite": "sqlite+aiosqlite",
    }
    scheme = drivers.get(scheme, scheme)
    if not scheme.startswith(("mysql+", "sqlite+")):
        raise ValueError(f"scheme {scheme!r} is not supported (mysql, sqlite)")
    if scheme.startswith("mysql") and "charset=" not in rest:
        rest += ("&" if "?" in rest else "?") + "charset=utf8mb4"
    return f"{scheme}://{rest}"


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
