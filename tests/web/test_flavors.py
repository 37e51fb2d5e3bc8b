"""The v2 flavor's look and its Years of Service column, and writes behind an API token."""

from __future__ import annotations

import datetime as dt

import httpx
from playwright.sync_api import expect

TOKEN = "web-tier-token"


def test_v2_has_its_mark_its_colour_and_years_of_service(
    registry, new_page, web_output, snapshot
) -> None:
    registry.reseed()
    server = registry.serve("v2", ROAR_FLAVOR="v2")
    started = dt.date.today().isoformat()
    httpx.post(
        f"{server.url}/api/v1/agents",
        json={
            "name": "Rookie",
            "species": "cat",
            "service_start": started,
        },
    ).raise_for_status()
    page = new_page(f"{server.url}/roar/")
    rows = page.locator("#agents tbody tr[data-id]")
    expect(rows).to_have_count(6)

    mark = page.locator("h1 .flavor-mark")
    expect(mark).to_be_visible()
    expect(mark).to_have_text("v2")
    headers = page.locator("#agents thead th").all_text_contents()
    assert "Years of Service" in headers
    years = page.locator("#agents tbody [data-key=years]").all_text_contents()
    assert years == ["40", "30", "2", "4", "21", "0 (serving)"]
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(197, 223, 232)"  # not v1's page colour

    status = httpx.get(f"{server.url}/roar/api/v1/status/version").text
    assert status.startswith("<p>Version</p>")
    expect(page.locator("#version")).to_have_text(status.removeprefix("<p>Version</p>"))
    assert status.endswith("00.02.00")

    httpx.delete(f"{server.url}/api/v1/agents/6").raise_for_status()
    page.reload()
    expect(rows).to_have_count(5)
    snapshot(page, web_output / "roar-v2.png")


def test_the_token_is_asked_once_and_kept_for_the_session(registry, new_page) -> None:
    registry.reseed()
    server = registry.serve("token", ROAR_API_TOKEN=TOKEN)
    page = new_page(f"{server.url}/roar/")
    expect(page.locator("#agents tbody tr[data-id]")).to_have_count(5)

    page.get_by_role("button", name="Add agent").click()
    page.locator("#f-name").fill("Tom")
    page.locator("#f-species").fill("cat")
    page.locator("#f-service_start").fill("1940-02-10")
    page.locator("#save-agent").click()

    token_dialog = page.locator("#token-dialog")
    expect(token_dialog).to_be_visible()
    expect(page.get_by_label("API token", exact=True)).to_be_focused()
    page.get_by_label("API token", exact=True).fill("wrong")
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#token-text")).to_contain_text("not accepted")
    page.get_by_label("API token", exact=True).fill(TOKEN)
    page.get_by_role("button", name="Use token").click()

    expect(page.locator("#agent-dialog")).to_be_hidden()
    expect(page.locator("#agents tbody tr[data-id]")).to_have_count(6)
    assert registry.db.query("SELECT SPECIES FROM agents WHERE NAME = 'Tom'") == [("cat",)]
    assert page.evaluate("sessionStorage.getItem('roar.apiToken')") == TOKEN
    assert page.evaluate("localStorage.length") == 0

    # The next write uses the kept token: no second prompt.
    page.get_by_role("button", name="Delete Tom").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    expect(page.locator("#notice")).to_have_text("Deleted Tom.")
    expect(token_dialog).to_be_hidden()
    assert registry.db.query("SELECT COUNT(*) FROM agents WHERE NAME = 'Tom'")[0][0] == 0

    # Cancelling the prompt (in a new session, without the token) saves nothing and says why.
    other = new_page(f"{server.url}/roar/")
    other.get_by_role("button", name="Delete Perry").click()
    other.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    expect(other.locator("#token-dialog")).to_be_visible()
    other.locator("#token-dialog").get_by_role("button", name="Cancel").click()
    expect(other.locator("#notice")).to_contain_text("need its API token")
    assert registry.db.query("SELECT COUNT(*) FROM agents WHERE NAME = 'Perry'")[0][0] == 1
