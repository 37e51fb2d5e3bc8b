"""With ROAR_API_TOKEN set, every write (modern and legacy) needs the bearer token; reads don't."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from support.roar import RoarServer

TOKEN = "s3cret-token-for-tests"
AGENT = {"name": "Tom", "species": "cat", "service_start": "1940-02-10"}
LEGACY = {"AGENT_NAME": "Tom", "AGENT_SPECIES": "cat", "SERVICE_START": "1940-02-10"}

WRITES = [
    ("POST", "/api/v1/agents", AGENT),
    (
        "PUT",
        "/api/v1/agents/1",
        AGENT | {"name": "Road Runner", "species": "bird", "service_start": "1955-01-20"},
    ),
    ("PATCH", "/api/v1/agents/2", {"adversary_tech": "masks"}),
    ("DELETE", "/api/v1/agents/3", None),
    ("POST", "/roar/api/v2/registry", LEGACY),
    ("POST", "/roar/api/v3/registry", LEGACY | {"AGENT_NAME": "Sylvester"}),
    ("PUT", "/roar/api/v3/registry/cat/Tom", {"AGENT_NAME": "Tom", "SERVICE_LAST": "1950-01-01"}),
    ("DELETE", "/roar/api/v3/registry/cat/Sylvester", None),
]


@pytest.fixture(scope="module")
def guarded(backend, tmp_path_factory) -> Iterator[RoarServer]:  # type: ignore[no-untyped-def]
    token_file = tmp_path_factory.mktemp("secrets") / "token"
    token_file.write_text(TOKEN + "\n")  # from a file, as a mounted Secret would be
    log = tmp_path_factory.mktemp("logs") / "roar-token.log"
    server = RoarServer(
        env=backend.env | {"ROAR_API_TOKEN_FILE": str(token_file)}, log_path=log
    ).start()
    yield server
    server.stop()


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic czNjcmV0", f"bearer{TOKEN}"])
def test_write_without_the_token_is_401_and_changes_nothing(
    guarded: RoarServer,
    backend,
    method: str,
    path: str,
    body: object,
    auth: str | None,  # type: ignore[no-untyped-def]
) -> None:
    before = httpx.get(f"{guarded.url}/roar/api/v1/registry").content
    headers = {"Authorization": auth} if auth else {}
    r = httpx.request(method, guarded.url + path, json=body, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "token" in r.text
    assert httpx.get(f"{guarded.url}/roar/api/v1/registry").content == before


def test_writes_with_the_token_succeed_in_order(guarded: RoarServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for method, path, body in WRITES:
        r = httpx.request(method, guarded.url + path, json=body, headers=headers)
        assert r.status_code in (200, 201, 204), (method, path, r.text)


def test_reads_stay_open(guarded: RoarServer) -> None:
    for path in (
        "/roar/api/v1/registry",
        "/api/v1/agents",
        "/roar/api/v2/registry/dog",
        "/healthz",
        "/readyz",
        "/version",
        "/metrics",
    ):
        assert httpx.get(guarded.url + path).status_code == 200, path


def test_open_server_warns_at_startup(roar: RoarServer) -> None:
    assert "ROAR_API_TOKEN is not set" in roar.log_tail(20000)
