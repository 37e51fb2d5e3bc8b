"""The web tier: Debian's Chromium (scripts/setup/browser.sh) driven by Playwright against real
ROAR servers on a real MariaDB.

One backend only (MariaDB): the page talks to the modern API, whose backends the api tier already
compares; MariaDB is the one whose outage the page must survive.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.mariadb import MariaDB
from support.roar import RoarServer, run_roar

try:
    from playwright import sync_api
except ImportError:  # a developer without the tier installed; CI must not skip silently
    if os.environ.get("CI"):
        raise
    pytest.skip("Playwright is missing: run scripts/setup/browser.sh", allow_module_level=True)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Long enough for a cold Chromium on 2 busy cores, short enough to fail fast.
TIMEOUT_MS = 15_000
sync_api.expect.set_options(timeout=TIMEOUT_MS)


def run_roar_db(env: dict[str, str], *args: str) -> None:
    """``roar db ARGS`` against the database ``env`` names."""
    result = run_roar("db", *args, env=env)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def roar_db() -> Callable[..., None]:
    """``roar_db(env, "upgrade", "--seed")`` runs ``roar db upgrade --seed`` on env's database."""
    return run_roar_db


@dataclass
class Registry:
    """A MariaDB database migrated by ROAR, and the servers started on it."""

    db: MariaDB
    logs: Path
    servers: list[RoarServer] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"ROAR_DATABASE_URL": self.db.url}

    def reseed(self) -> None:
        """Back to exactly the five seed agents, ids 1 to 5."""
        run_roar_db(self.env, "reset", "--yes")

    def serve(self, name: str, **env: str) -> RoarServer:
        server = RoarServer(env=self.env | env, log_path=self.logs / f"roar-{name}.log").start()
        self.servers.append(server)
        return server

    def names(self) -> list[str]:
        return [row[0] for row in self.db.query("SELECT NAME FROM agents ORDER BY id")]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="module")
def registry(mariadb: MariaDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The session's MariaDB, wiped and migrated for this module."""
    mariadb.reset_database()
    reg = Registry(mariadb, tmp_path_factory.mktemp("web-logs"))
    run_roar_db(reg.env, "upgrade", "--seed")
    yield reg
    reg.stop()


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# while it is open, which would break the asyncio tests of any tier collected after the web tier.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup/browser.sh")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class PageWatch:
    """What a page did besides rendering: native dialogs, script errors, CSP reports."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _console(watch: PageWatch, msg) -> None:
    # Chromium logs every 4xx/5xx fetch; the page handles those. Anything else (a script
    # error, a CSP refusal) is a bug.
    if msg.type == "error" and "Failed to load resource" not in msg.text:
        watch.errors.append(msg.text)


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def new_page(browser, watch: PageWatch) -> Iterator[Callable[..., object]]:
    """Open pages in fresh contexts (own sessionStorage); any script error fails the test."""
    contexts = []

    def open_page(url: str, *, width: int = 1280, height: int = 800):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: watch.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: _console(watch, msg))

        def on_dialog(dialog) -> None:  # an alert() from injected markup would land here
            watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(url)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert watch.errors == [], f"the page reported errors: {watch.errors}"


@pytest.fixture(scope="session")
def web_output(output_dir: Path) -> Path:
    path = output_dir / "web"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _snapshot(page, path: Path, *, width: int = 1200) -> None:
    page.set_viewport_size({"width": width, "height": 300})
    page.screenshot(path=path, full_page=True)


@pytest.fixture(scope="session")
def snapshot() -> Callable[..., None]:
    """``snapshot(page, path)``: a README-sized picture, as tall as the content."""
    return _snapshot
