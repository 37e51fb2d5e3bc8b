"""The ``roar`` command: serve, manage the database, and use the API from a shell.

Every failure prints one line, ``roar: error: ...``, and exits non-zero (2 for a command line
that does not parse, 1 for everything else, a bad setting included), so scripts can trust the
exit code.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from roar import __version__
from roar.config import ConfigError, Settings

__all__ = ["main"]


def _settings(**overrides: Any) -> tuple[Settings, dict[str, Any]]:
    """The settings with the options given on top; a bad value is named by its flag."""
    given = {k: v for k, v in overrides.items() if v is not None}
    flags = _flags()
    settings = Settings(_given_as={k: flags[k] for k in given if k in flags}, **given)
    settings.resolved_database_url  # noqa: B018 - fail now on a bad database setting
    return settings, given


def _flags() -> dict[str, str]:
    """The running command's options by setting name: ``{"database_url": "--database-url"}``."""
    ctx = click.get_current_context(silent=True)
    params = ctx.command.params if ctx else []
    return {p.name: max(p.opts, key=len) for p in params if isinstance(p, click.Option) and p.name}


def _run(coro_fn: Callable[..., Any], *args: Any) -> Any:
    return asyncio.run(coro_fn(*args))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """ROAR, the Registry of Animal Responders."""


@cli.command()
def version() -> None:
    """Print ROAR's version."""
    click.echo(__version__)


@cli.command()
@click.option("--host", help="Address to bind (default 127.0.0.1; ROAR_HOST).")
@click.option("--port", type=int, help="Port to bind (default 8080; ROAR_PORT).")
@click.option("--workers", type=int, help="Worker processes (default 1; ROAR_WORKERS).")
@click.option("--database-url", help="SQLAlchemy URL (ROAR_DATABASE_URL); default: embedded.")
@click.option(
    "--migrate/--no-migrate",
    default=None,
    help="Migrate and seed before serving (default: only for the embedded database).",
)
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    database_url: str | None,
    migrate: bool | None,
) -> None:
    """Run the web service."""
    from roar import server
    from roar.logs import configure_logging

    settings, overrides = _settings(
        host=host, port=port, workers=workers, database_url=database_url
    )
    configure_logging(fmt=settings.log_format.value, level=settings.log_level)
    if migrate if migrate is not None else settings.is_embedded:
        _prepare_in_child(settings)
    log = logging.getLogger("roar")
    if settings.token is None:
        log.warning(
            "ROAR_API_TOKEN is not set: anyone who can reach this server can change the registry"
        )
    # The bind address as it is: on every interface (in a container) no URL is guessed, since
    # 0.0.0.0:8080 is the container's own port and only the engine knows where it is published.
    everywhere = settings.host in ("0.0.0.0", "::")
    bound = f"{f'[{settings.host}]' if ':' in settings.host else settings.host}:{settings.port}"
    log.info(
        "ROAR %s (%s, %d worker%s) listening on %s, page %s; database %s", __version__,
        settings.flavor.value, settings.workers, "s" if settings.workers > 1 else "",
        f"{bound} (every interface)" if everywhere else bound,
        "/roar/" if everywhere else f"http://{bound}/roar/", settings.database_name,
    )  # fmt: skip
    sys.exit(server.serve(settings, overrides))


def _prepare_in_child(settings: Settings) -> None:
    """Migrate and seed in a short-lived process, so that the server does not keep Alembic in
    memory for its whole life: 10 MB of a one-worker server on the embedded database (the
    README's one command), and SQLAlchemy too (35 MB) in a worker supervisor. Forked: the
    child starts at once with what this process has imported."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=_prepare_main, args=(settings,))
    child.start()
    child.join()
    if child.exitcode != 0:
        sys.exit(1)  # the child printed the one-line error


def _prepare_main(settings: Settings) -> None:
    from roar.logs import configure_logging

    # A handler of its own: the inherited one's buffer may hold the parent's lines.
    configure_logging(fmt=settings.log_format.value, level=settings.log_level)
    try:
        _run(_prepare, settings)
    except Exception as exc:
        from roar.errors import describe_failure

        click.echo(f"roar: error: {describe_failure(exc)}", err=True)
        sys.exit(1)


async def _prepare(settings: Settings) -> None:
    from roar.db import migrate
    from roar.db.engine import create_engine

    engine = create_engine(settings.resolved_database_url, timeout=settings.db_timeout)
    try:
        await migrate.upgrade(engine)
        await migrate.seed(engine)
    finally:
        await engine.dispose()


# Database --------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Migrate, seed, reset the database, or print its SQL."""


def _with_engine(action: Callable[[Any], Any]) -> Any:
    from roar.db.engine import create_engine

    settings, _ = _settings()

    async def run() -> Any:
        engine = create_engine(settings.resolved_database_url, timeout=settings.db_timeout)
        try:
            return await action(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@db.command()
@click.option("--seed", "also_seed", is_flag=True, help="Then seed, if the table is empty.")
def upgrade(also_seed: bool) -> None:
    """Migrate the database to the newest schema (safe to run on every rollout)."""
    from roar.db import migrate

    async def action(engine: Any) -> None:
        await migrate.upgrade(engine)
        if also_seed:
            count = await migrate.seed(engine)
            click.echo(f"seeded {count} agents" if count else "agents present; not seeded")

    _with_engine(action)
    click.echo("database is at the newest revision")


@db.command()
def seed() -> None:
    """Insert the five seed agents if the table is empty."""
    from roar.db import migrate

    count = _with_engine(migrate.seed)
    click.echo(f"seeded {count} agents" if count else "agents present; not seeded")


@db.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-seed", is_flag=True, help="Leave the table empty.")
def reset(yes: bool, no_seed: bool) -> None:
    """Wipe every agent and start again from the seed rows."""
    from roar.db import migrate

    settings, _ = _settings()

    target = settings.database_name
    if not yes and not click.confirm(f"Wipe every agent in {target}?", default=False):
        raise click.ClickException("nothing changed")

    async def action(engine: Any) -> None:
        await migrate.downgrade_to_base(engine)
        await migrate.upgrade(engine)
        if not no_seed:
            await migrate.seed(engine)

    _with_engine(action)
    click.echo(f"reset {target}")


@db.command()
def sql() -> None:
    """Print the MySQL/MariaDB DDL and seed SQL (the db image runs it)."""
    from roar.db import migrate

    click.echo(migrate.mysql_init_sql(), nl=False)


# Kubernetes ------------------------------------------------------------------------------


@cli.group()
def kube() -> None:
    """Kubernetes objects from ROAR's builders (the source of deploy/kustomize/base)."""


@kube.command()
@click.argument("what", type=click.Choice(["base", "mesh", "all"]))
@click.argument("directory", required=False)
def render(what: str, directory: str | None) -> None:
    """Write the kustomize base (or the mesh overlay's generated files) into DIRECTORY (default
    deploy/kustomize/base or deploy/kustomize/overlays/mesh), or print all objects as YAML."""
    from roar.kube.render import main as render_main

    code = render_main([what, *([directory] if directory else [])])
    if code:
        raise click.ClickException("render failed")


# Operator --------------------------------------------------------------------------------


@cli.group()
def operator() -> None:
    """The RoarApp operator (kopf)."""


@operator.command("run")
@click.option("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube/config).")
@click.option("-n", "--namespace", help="Namespace to watch.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch every namespace.")
@click.option("--metrics-host", help="Address of the metrics endpoint.")
@click.option("--metrics-port", type=int, help="Port of the metrics endpoint.")
@click.option("--liveness", help="Liveness endpoint, e.g. http://0.0.0.0:8091/healthz.")
@click.option("-v", "--verbose", is_flag=True)
def operator_run(
    kubeconfig: str | None,
    namespace: str | None,
    all_namespaces: bool,
    metrics_host: str | None,
    metrics_port: int | None,
    liveness: str | None,
    verbose: bool,
) -> None:
    """Run the operator against the current kubeconfig until SIGINT/SIGTERM."""
    from pydantic import ValidationError

    from roar.config import describe_errors
    from roar.operator.runner import run
    from roar.operator.settings import OperatorSettings

    try:
        run(
            kubeconfig,
            namespace,
            all_namespaces,
            metrics_host=metrics_host,
            metrics_port=metrics_port,
            liveness=liveness,
            verbose=verbose,
        )
    except ValidationError as exc:
        if exc.title != OperatorSettings.__name__:
            raise
        options = {"kubeconfig": kubeconfig, "namespaces": namespace, "liveness_endpoint": liveness,
                   "metrics_host": metrics_host, "metrics_port": metrics_port}  # fmt: skip
        flags = {"namespaces": "--namespace", "liveness_endpoint": "--liveness"}
        given_as = {k: flags.get(k, "--" + k.replace("_", "-")) for k, v in options.items() if v}
        raise ConfigError(describe_errors(OperatorSettings, exc, given_as)) from None


# API client ------------------------------------------------------------------------------

from roar.client_cli import agents  # noqa: E402  (the group lives beside its HTTP client)
from roar.load import load  # noqa: E402  (the command lives beside its load runner)

cli.add_command(agents)
cli.add_command(load)


def main(args: list[str] | None = None) -> None:
    try:
        cli.main(args, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("roar: error: aborted", err=True)
        sys.exit(1)
    except click.UsageError as exc:
        click.echo(f"roar: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"roar: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"roar: error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # one line for scripts; no traceback for expected failures
        from roar.errors import describe_failure

        click.echo(f"roar: error: {describe_failure(exc)}", err=True)
        sys.exit(1)
