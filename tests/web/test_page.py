"""The v1 page end to end: what a person sees and does, and what the database then holds."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from support.roar import RoarServer

SEED_NAMES = ["Road Runner", "Scooby", "Perry", "Mr. Krabs", "Bugs Bunny"]
ORIGINAL_COLUMNS = [
    "Id",
    "Name",
    "Species",
    "Date of First Service",
    "Date of Last Service",
    "Adversary",
    "Adversary Tech",
]
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def server(registry) -> RoarServer:
    return registry.serve("v1", ROAR_FLAVOR="v1")


@pytest.fixture
def page(registry, server: RoarServer, new_page) -> Page:
    """The page on exactly the five seed agents, loaded."""
    registry.reseed()
    page = new_page(f"{server.url}/roar/")
    expect(page.locator("#agents tbody tr[data-id]")).to_have_count(5)
    return page


def names(page: Page) -> list[str]:
    return page.locator("#agents tbody tr[data-id] [data-key=name]").all_text_contents()


def row(page: Page, name: str):
    return page.locator("#agents tbody tr[data-id]").filter(
        has=page.locator("[data-key=name]", has_text=re.compile(f"^{re.escape(name)}$"))
    )


def fill_form(page: Page, **fields: str) -> None:
    for key, value in fields.items():
        page.locator(f"#f-{key}").fill(value)


def color(page: Page, selector: str, prop: str) -> str:
    return page.locator(selector).first.evaluate(
        f"(el) => getComputedStyle(el).getPropertyValue('{prop}')"
    )


def test_seed_agents_in_order_with_the_original_look(
    page: Page, server: RoarServer, web_output, snapshot
) -> None:
    expect(page.locator("h1")).to_have_text("R.O.A.R (Registry of Animal Responders) Agents")
    headers = page.locator("#agents thead th").all_text_contents()
    assert [re.sub(r"[▲▼↕]", "", h).strip() for h in headers[:7]] == ORIGINAL_COLUMNS
    assert "Years of Service" not in " ".join(headers)
    assert names(page) == SEED_NAMES
    first = page.locator("#agents tbody tr[data-id]").first.locator("th, td")
    assert first.all_text_contents()[:7] == [
        "1",
        "Road Runner",
        "bird",
        "1955-01-20",
        "1995-02-15",
        "Wile E. Coyote",
        "ACME product du jour",
    ]
    # The workshop's colours.
    assert color(page, "body", "background-color") == "rgb(197, 223, 232)"  # #C5DFE8
    assert color(page, "h1", "color") == "rgb(0, 0, 128)"  # navy
    assert color(page, "#agents thead th", "background-color") == "rgb(115, 191, 88)"  # #73BF58
    expect(page.locator(".flavor-mark")).to_have_count(0)
    status = httpx.get(f"{server.url}/roar/api/v1/status/version").text
    assert status == "<p>Version</p>00.01.00"
    expect(page.locator("#version")).to_have_text("00.01.00")
    snapshot(page, web_output / "roar-v1.png")


def test_routes_headers_and_assets(server: RoarServer) -> None:
    root = httpx.get(f"{server.url}/")
    assert root.status_code in (302, 307) and root.headers["location"] == "/roar/"
    for path in ("/roar/", "/roar/agents.html"):
        answer = httpx.get(server.url + path)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert '<script type="module" src="static/roar.js"></script>' in answer.text
        assert "<script>" not in answer.text  # no inline script for the CSP to allow
    js = httpx.get(f"{server.url}/roar/static/roar.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in js.text
    css = httpx.get(f"{server.url}/roar/static/roar.css")
    assert css.headers["content-type"].startswith("text/css")
    for bad in ("nope.js", "..%2Froutes.py", ".hidden.css", "roar.JS"):
        assert httpx.get(f"{server.url}/roar/static/{bad}").status_code == 404


def test_add_an_agent(page: Page, registry) -> None:
    page.get_by_role("button", name="Add agent").click()
    dialog = page.locator("#agent-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#f-name")).to_be_focused()
    fill_form(
        page,
        name="Woody Woodpecker",
        species="bird",
        service_start="1959-05-22",
        service_last="1979-04-15",
        adversary_name="Buzz Buzzard",
        adversary_tech="menacing stare",
    )
    dialog.get_by_role("button", name="Add agent").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#notice")).to_contain_text("Added Woody Woodpecker (Id 6)")
    expect(row(page, "Woody Woodpecker")).to_have_count(1)
    assert names(page)[-1] == "Woody Woodpecker"
    assert registry.db.query(
        "SELECT id, SPECIES, SRVSTART, SRVLAST, ADVNAME, ADVTECH FROM agents WHERE NAME = %s",
        "Woody Woodpecker",
    )[0][:2] == (6, "bird")


def test_edit_an_agent(page: Page, registry) -> None:
    row(page, "Perry").get_by_role("button", name="Edit Perry").click()
    expect(page.locator("#agent-dialog-title")).to_have_text("Edit agent Perry")
    expect(page.locator("#f-adversary_name")).to_have_value("H. Doofensmirtz")
    fill_form(page, adversary_name="Dr. Doofenshmirtz", service_last="")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#agent-dialog")).to_be_hidden()
    perry = row(page, "Perry")
    expect(perry.locator("[data-key=adversary_name]")).to_have_text("Dr. Doofenshmirtz")
    expect(perry.locator("[data-key=service_last]")).to_have_text("—")
    assert registry.db.query("SELECT ADVNAME, SRVLAST FROM agents WHERE id = 3") == [
        ("Dr. Doofenshmirtz", None)
    ]


def test_delete_asks_first(page: Page, registry) -> None:
    row(page, "Scooby").get_by_role("button", name="Delete Scooby").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("Agent Scooby (Id 2, dog) will be removed")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    assert "Scooby" in names(page)
    assert int(registry.db.query("SELECT COUNT(*) FROM agents")[0][0]) == 5

    row(page, "Scooby").get_by_role("button", name="Delete Scooby").click()
    confirm.get_by_role("button", name="Delete").click()
    expect(row(page, "Scooby")).to_have_count(0)
    expect(page.locator("#notice")).to_have_text("Deleted Scooby.")
    assert names(page) == ["Road Runner", "Perry", "Mr. Krabs", "Bugs Bunny"]
    assert registry.db.query("SELECT COUNT(*) FROM agents WHERE NAME = 'Scooby'")[0][0] == 0


def test_filter_search_and_sort(page: Page, server: RoarServer) -> None:
    httpx.post(
        f"{server.url}/api/v1/agents",
        json={
            "name": "Woody Woodpecker",
            "species": "bird",
            "service_start": "1959-05-22",
        },
    ).raise_for_status()
    page.reload()
    rows = page.locator("#agents tbody tr[data-id]")
    expect(rows).to_have_count(6)

    species = page.get_by_label("Species", exact=True)
    expect(species.locator("option")).to_have_count(6)  # "All species" and five species
    species.select_option("bird")
    expect(rows).to_have_count(2)
    assert names(page) == ["Road Runner", "Woody Woodpecker"]
    page.get_by_label("Search by name").fill("wood")
    expect(rows).to_have_count(1)
    species.select_option("")
    page.get_by_label("Search by name").fill("zzz")
    expect(page.locator("#agents tbody")).to_contain_text("No agent matches this search.")
    page.get_by_label("Search by name").fill("")
    expect(rows).to_have_count(6)

    name_header = page.locator("#agents thead th").nth(1)
    expect(page.locator("#agents thead th").first).to_have_attribute("aria-sort", "ascending")
    name_header.get_by_role("button").click()
    expect(name_header).to_have_attribute("aria-sort", "ascending")
    expect(rows.first.locator("[data-key=name]")).to_have_text("Bugs Bunny")
    assert names(page) == sorted([*SEED_NAMES, "Woody Woodpecker"])
    name_header.get_by_role("button").click()
    expect(name_header).to_have_attribute("aria-sort", "descending")
    expect(rows.first.locator("[data-key=name]")).to_have_text("Woody Woodpecker")
    assert names(page) == sorted([*SEED_NAMES, "Woody Woodpecker"], reverse=True)
    assert page.locator("#agents thead th[aria-sort]").count() == 1

    start_header = page.locator("#agents thead th").nth(3)
    start_header.get_by_role("button").click()
    expect(rows.first.locator("[data-key=name]")).to_have_text("Road Runner")  # 1955
    starts = page.locator("#agents tbody [data-key=service_start]").all_text_contents()
    assert starts == sorted(starts)


def test_sorting_by_keyboard_with_a_visible_focus(page: Page) -> None:
    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.locator(".skip-link")).to_be_focused()
    page.locator("#agents thead th").nth(2).get_by_role("button").focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    expect(page.locator("#agents thead th").nth(2)).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#agents tbody [data-key=species]")).to_have_text(
        ["bird", "crab", "dog", "platypus", "rabbit"]
    )
    for label in ("Search by name", "Species"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()


def test_a_script_in_a_name_stays_text(page: Page, server: RoarServer, watch) -> None:
    httpx.post(
        f"{server.url}/api/v1/agents",
        json={
            "name": XSS,
            "species": "<b>bold</b>",
            "service_start": "2020-01-01",
            "adversary_tech": "<script>alert(2)</script>",
        },
    ).raise_for_status()
    page.reload()
    evil = row(page, XSS)
    expect(evil).to_have_count(1)
    expect(evil.locator("[data-key=species]")).to_have_text("<b>bold</b>")
    expect(evil.locator("[data-key=adversary_tech]")).to_have_text("<script>alert(2)</script>")
    assert page.locator("#agents img, #agents b, #agents script").count() == 0
    evil.get_by_role("button", name="Edit").click()
    expect(page.locator("#agent-dialog-title")).to_have_text(f"Edit agent {XSS}")
    expect(page.locator("#f-name")).to_have_value(XSS)
    page.get_by_role("button", name="Cancel").click()
    evil.get_by_role("button", name="Delete").click()
    expect(page.locator("#confirm-title")).to_have_text(f"Delete {XSS}?")
    page.locator("#confirm-dialog").get_by_role("button", name="Cancel").click()
    page.wait_for_timeout(300)  # an onerror handler would have fired by now
    assert watch.dialogs == []
    assert page.locator("img").count() == 0


def test_validation_errors_next_to_their_fields(page: Page, registry, web_output) -> None:
    page.get_by_role("button", name="Add agent").click()
    fill_form(page, name="", species="cat", service_start="2020-05-01", service_last="2019-01-01")
    page.locator("#save-agent").click()
    last_error = page.locator("#f-service_last-error")
    expect(last_error).to_be_visible()
    expect(last_error).to_contain_text("Must not be before Date of First Service")
    expect(page.locator("#f-service_last")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-name-error")).to_have_text("Is required.")
    expect(page.locator("#f-name")).to_be_focused()
    expect(page.locator("#f-species-error")).to_be_hidden()
    expect(page.locator("#agent-dialog")).to_be_visible()
    # The message sits with its field: inside the same field group, below the input.
    group = page.locator(".field", has=page.locator("#f-service_last"))
    expect(group.locator(".field-error")).to_be_visible()
    assert int(registry.db.query("SELECT COUNT(*) FROM agents")[0][0]) == 5
    page.screenshot(path=web_output / "roar-v1-form-errors.png")

    fill_form(page, name="Garfield", service_last="2021-01-01")
    page.locator("#save-agent").click()
    expect(page.locator("#agent-dialog")).to_be_hidden()
    expect(row(page, "Garfield")).to_have_count(1)
    assert int(registry.db.query("SELECT COUNT(*) FROM agents")[0][0]) == 6


def test_a_stale_edit_says_so(page: Page, server: RoarServer, registry) -> None:
    row(page, "Mr. Krabs").get_by_role("button", name="Edit Mr. Krabs").click()
    httpx.patch(f"{server.url}/api/v1/agents/4", json={"adversary_tech": "the formula"})
    fill_form(page, adversary_name="Sheldon J. Plankton")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#form-error")).to_contain_text("Someone else changed this agent")
    assert registry.db.query("SELECT ADVNAME FROM agents WHERE id = 4") == [("Plankton",)]
    page.get_by_role("button", name="Reload agent").click()
    expect(page.locator("#f-adversary_tech")).to_have_value("the formula")
    expect(page.locator("#form-error")).to_be_hidden()


def test_narrow_screen_shows_cards(registry, server: RoarServer, new_page, web_output) -> None:
    registry.reseed()
    page = new_page(f"{server.url}/roar/", width=390, height=844)
    expect(page.locator("#agents tbody tr[data-id]")).to_have_count(5)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert color(page, "#agents tbody tr", "display") == "block"
    expect(page.get_by_label("Sort by")).to_be_visible()
    page.get_by_label("Sort by").select_option("name descending")
    expect(page.locator("#agents tbody tr[data-id]").first).to_contain_text("Scooby")
    page.screenshot(path=web_output / "roar-v1-narrow.png", full_page=True)
