"""A database outage: the page says so plainly (never an empty table) and recovers by itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from support.mariadb import MariaDB
from support.roar import RoarServer

#: The page retries every 5 s; allow for a slow reconnect on 2 busy cores.
RECOVERY_MS = 30_000


@pytest.fixture(scope="module")
def own_db(roar_db) -> Iterator[MariaDB]:
    """A MariaDB of this module's own: the test stops it."""
    with MariaDB.temporary() as db:
        roar_db({"ROAR_DATABASE_URL": db.url}, "upgrade", "--seed")
        yield db


@pytest.fixture(scope="module")
def server(own_db: MariaDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoarServer]:
    log = tmp_path_factory.mktemp("outage-logs") / "roar.log"
    roar = RoarServer(env={"ROAR_DATABASE_URL": own_db.url}, log_path=log).start()
    yield roar
    roar.stop()


def test_outage_message_then_recovery(
    own_db: MariaDB, server: RoarServer, new_page, web_output
) -> None:
    page = new_page(f"{server.url}/roar/")
    rows = page.locator("#agents tbody tr[data-id]")
    expect(rows).to_have_count(5)

    own_db.stop()
    try:
        page.reload()
        outage = page.locator("#outage")
        expect(outage).to_be_visible()
        expect(outage).to_contain_text("The registry's database is unavailable")
        expect(outage).to_have_attribute("role", "alert")
        expect(page.locator("#agents")).to_be_hidden()  # no empty table pretending all is well
        page.screenshot(path=web_output / "roar-outage.png")
    finally:
        own_db.start()

    expect(rows).to_have_count(5, timeout=RECOVERY_MS)  # the page's own retry brings it back
    expect(page.locator("#outage")).to_be_hidden()
    expect(page.get_by_label("Species", exact=True).locator("option")).to_have_count(6)
