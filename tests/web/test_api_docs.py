"""/api/docs with the network cut off: Swagger UI comes from ROAR itself, under the page's CSP.

The browser asks for ROAR by a host name (``roar.test``, answered by the real server on
127.0.0.1), as on a cluster, since Swagger UI skips some third-party calls on localhost (its
validator badge). Every request to any other host is aborted and recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect

from support.roar import RoarServer, embedded_server

HOST = "roar.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoarServer]:
    roar = embedded_server(tmp_path_factory, "docs")
    yield roar
    roar.stop()


def test_docs_render_offline_under_the_csp(browser: Browser, server: RoarServer) -> None:
    left: list[str] = []  # requests that tried to leave ROAR
    errors: list[str] = []  # console errors: CSP refusals, script errors

    def route(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.hostname != HOST:
            left.append(route.request.url)
            route.abort()
            return
        answer = route.fetch(url=url._replace(netloc=urlsplit(server.url).netloc).geturl())
        route.fulfill(response=answer)

    def console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    context = browser.new_context()
    try:
        context.route("**/*", route)
        page = context.new_page()
        page.on("console", console)
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.goto(f"http://{HOST}/api/docs")
        listing = page.locator(".opblock-get .opblock-summary-path[data-path='/api/v1/agents']")
        expect(listing).to_be_visible()
        expect(page.locator(".info .title")).to_contain_text("Registry of Animal Responders")
        # The registry page's policy, plus only the hash of Swagger UI's start-up script.
        docs, registry = (_policy(page, path) for path in ("/api/docs", "/roar/"))
        assert re.sub(r" 'sha256-[A-Za-z0-9+/=]+'", "", docs) == registry
    finally:
        context.close()
    assert left == [], f"the docs page reached past ROAR: {left}"
    assert errors == [], f"the docs page reported errors: {errors}"


def _policy(page: Page, path: str) -> str:
    policy: str = page.evaluate(
        "path => fetch(path).then(r => r.headers.get('content-security-policy'))", path
    )
    return policy
