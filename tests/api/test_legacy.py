"""The legacy /roar/api contract (shared/spec/legacy-api.md), byte for byte, on both backends."""

from __future__ import annotations

import httpx
import pytest

SEED_LIST = (
    b'[{"id":1,"NAME":"Road Runner","SPECIES":"bird","SRVSTART":"1955-01-20",'
    b'"SRVLAST":"1995-02-15","ADVNAME":"Wile E. Coyote","ADVTECH":"ACME product du jour"},'
    b'{"id":2,"NAME":"Scooby","SPECIES":"dog","SRVSTART":"1969-05-19","SRVLAST":"2000-02-11",'
    b'"ADVNAME":"fake ghosts","ADVTECH":"mask"},'
    b'{"id":3,"NAME":"Perry","SPECIES":"platypus","SRVSTART":"2013-01-20","SRVLAST":"2015-04-09",'
    b'"ADVNAME":"H. Doofensmirtz","ADVTECH":"...inator"},'
    b'{"id":4,"NAME":"Mr. Krabs","SPECIES":"crab","SRVSTART":"2010-06-17","SRVLAST":"2014-07-07",'
    b'"ADVNAME":"Plankton","ADVTECH":"various"},'
    b'{"id":5,"NAME":"Bugs Bunny","SPECIES":"rabbit","SRVSTART":"1966-05-22",'
    b'"SRVLAST":"1988-04-15","ADVNAME":"E. Fudd","ADVTECH":"wabbit gun"}]'
)
V3_ENTERED = b'[{"HTTP_CODE":"200","MSG":"Item has been entered successfully, Version 3"}]'
V3_DELETED = b'[{"HTTP_CODE":"200","MSG":"Item has been deleted successfully"}]'
ROAD_RUNNER_NO_ID = (
    b'[{"NAME":"Road Runner","SPECIES":"bird","SRVSTART":"1955-01-20","SRVLAST":"1995-02-15",'
    b'"ADVNAME":"Wile E. Coyote","ADVTECH":"ACME product du jour"}]'
)


@pytest.fixture()
def api(roar):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=f"{roar.url}/roar/api") as client:
        yield client


def test_v1_registry_is_the_seed_list_byte_for_byte(api: httpx.Client) -> None:
    r = api.get("/v1/registry")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.content == SEED_LIST


@pytest.mark.parametrize(
    "path",
    [
        "/v2/registry?species=bird",
        "/v2/registry?species=BIRD",
        "/v2/registry/bird",
        "/v2/registry/Bird/road%20runner",
        "/v2/registry/bird/Road%20Runner",
    ],
)
def test_v2_search_omits_id_and_ignores_case(api: httpx.Client, path: str) -> None:
    r = api.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.content == ROAD_RUNNER_NO_ID


def test_v2_search_without_species_is_400_plain_text(api: httpx.Client) -> None:
    r = api.get("/v2/registry")
    assert r.status_code == 400
    assert r.headers["content-type"] == "text/plain"
    assert r.text == "Error: please specify a species for this search."


def test_v2_search_unknown_species_is_empty_array(api: httpx.Client) -> None:
    r = api.get("/v2/registry/unicorn")
    assert (r.status_code, r.content) == (200, b"[]")


def test_status_pages_are_html(api: httpx.Client) -> None:
    r = api.get("/v1/status")
    assert (r.status_code, r.headers["content-type"], r.text) == (
        200,
        "text/html",
        "<p>Python Web Service</p>",
    )
    r = api.get("/v1/status/version")
    assert (r.headers["content-type"], r.text) == ("text/html", "<p>Version</p>00.01.00")
    r = api.get("/v1/status/database")
    assert r.status_code == 200
    assert r.text.startswith("<p>Database</p>20")  # the database's own clock


def test_writes_round_trip_with_exact_answers(api: httpx.Client, backend) -> None:  # type: ignore[no-untyped-def]
    before = backend.count()
    body = {
        "AGENT_NAME": "Tom",
        "AGENT_SPECIES": "cat",
        "SERVICE_START": "1940-02-10",
        "SERVICE_LAST": "",
        "ADVERSARY_NAME": "Jerry",
        "ADVERSARY_TECH": "mousetrap",
    }
    r = api.post("/v2/registry", json=body)
    assert (r.status_code, r.headers["content-type"], r.text) == (
        200,
        "text/plain",
        "Item inserted",
    )
    # A NULL column (SERVICE_LAST was empty) is left out of the object.
    assert api.get("/v2/registry/cat").content == (
        b'[{"NAME":"Tom","SPECIES":"cat","SRVSTART":"1940-02-10","ADVNAME":"Jerry",'
        b'"ADVTECH":"mousetrap"}]'
    )
    r = api.post("/v3/registry", json=body | {"AGENT_NAME": "Sylvester"})
    assert (r.status_code, r.content) == (200, V3_ENTERED)
    # PUT sets SRVLAST of the agent named in the body; the path is ignored, as in the original.
    r = api.put(
        "/v3/registry/ignored/ignored", json={"AGENT_NAME": "Tom", "SERVICE_LAST": "1958-03-01"}
    )
    assert (r.status_code, r.content) == (200, V3_ENTERED)
    assert b'"SRVLAST":"1958-03-01"' in api.get("/v2/registry/cat/tom").content
    r = api.delete("/v3/registry/cat/Tom")
    assert (r.status_code, r.content) == (200, V3_DELETED)
    r = api.delete("/v3/registry/cat/Sylvester")
    assert r.status_code == 200
    assert api.get("/v2/registry/cat").content == b"[]"
    assert backend.count() == before


BAD_WRITES = [
    ({"AGENT_SPECIES": "cat", "SERVICE_START": "2000-01-01"}, "AGENT_NAME"),
    ({"AGENT_NAME": "Tom", "SERVICE_START": "2000-01-01"}, "AGENT_SPECIES"),
    ({"AGENT_NAME": "Tom", "AGENT_SPECIES": "cat"}, "SERVICE_START"),
    ({"AGENT_NAME": "Tom", "AGENT_SPECIES": "cat", "SERVICE_START": "2000-02-30"}, "SERVICE_START"),
    ({"AGENT_NAME": "Tom", "AGENT_SPECIES": "cat", "SERVICE_START": "01/02/2000"}, "SERVICE_START"),
    ({"AGENT_NAME": "T" * 31, "AGENT_SPECIES": "cat", "SERVICE_START": "2000-01-01"}, "AGENT_NAME"),
    (
        {
            "AGENT_NAME": "Tom",
            "AGENT_SPECIES": "cat",
            "SERVICE_START": "2000-01-01",
            "SERVICE_LAST": "1999-12-31",
        },
        "SERVICE_LAST",
    ),
    (
        {
            "AGENT_NAME": "Tom",
            "AGENT_SPECIES": "cat",
            "SERVICE_START": "2000-01-01",
            "ADVERSARY_TECH": "x" * 401,
        },
        "ADVERSARY_TECH",
    ),
]


@pytest.mark.parametrize("version", ["v2", "v3"])
@pytest.mark.parametrize(("body", "field"), BAD_WRITES)
def test_bad_writes_are_4xx_naming_the_field_and_write_nothing(
    api: httpx.Client,
    backend,
    version: str,
    body: dict,
    field: str,  # type: ignore[no-untyped-def]
) -> None:
    before = backend.count()
    r = api.post(f"/{version}/registry", json=body)
    assert r.status_code == 400
    assert r.headers["content-type"] == "text/plain"
    assert r.text.startswith("Error: ") and field in r.text
    assert "Traceback" not in r.text
    assert backend.count() == before


def test_body_that_is_not_json_is_400(api: httpx.Client) -> None:
    r = api.post("/v2/registry", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "not valid JSON" in r.text


def test_put_of_unknown_agent_is_404_and_before_first_service_is_400(api: httpx.Client) -> None:
    r = api.put("/v3/registry/x/y", json={"AGENT_NAME": "Nobody", "SERVICE_LAST": "2000-01-01"})
    assert r.status_code == 404 and "Nobody" in r.text
    r = api.put("/v3/registry/x/y", json={"AGENT_NAME": "Scooby", "SERVICE_LAST": "1900-01-01"})
    assert r.status_code == 400 and "SERVICE_LAST" in r.text
    assert b'"SRVLAST":"2000-02-11"' in api.get("/v2/registry/dog").content  # unchanged
    r = api.put("/v3/registry/x/y", json={"SERVICE_LAST": "2000-01-01"})
    assert r.status_code == 400 and "AGENT_NAME" in r.text


def test_delete_of_unknown_agent_is_404(api: httpx.Client) -> None:
    r = api.delete("/v3/registry/dog/Nobody")
    assert r.status_code == 404
    assert r.text.startswith("Error: ")
