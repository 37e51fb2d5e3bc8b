"""Hypothesis over the legacy /roar/api routes, on a real server (SQLite and MariaDB).

The legacy contract is outside the OpenAPI document (shared/spec/legacy-api.md): arbitrary
methods, paths, parameters and bodies (bad JSON, wrong types, huge numbers, unicode, missing
fields) must never get a 5xx; every 4xx is the legacy form (``text/plain``, ``Error: ...``);
a refused write changes nothing, an accepted one only what it says. Bounded and derandomized.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from roar.db.schema import SEED_AGENTS

if TYPE_CHECKING:
    from conftest import Backend
    from support.roar import RoarServer

EXAMPLES = 300
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Row = tuple[Any, ...]
V3_ENTERED = b'[{"HTTP_CODE":"200","MSG":"Item has been entered successfully, Version 3"}]'
V3_DELETED = b'[{"HTTP_CODE":"200","MSG":"Item has been deleted successfully"}]'
WRITES = {"POST", "PUT", "DELETE", "PATCH"}


# What to send -------------------------------------------------------------------------------

PAIRS = [(str(row["SPECIES"]), str(row["NAME"])) for row in SEED_AGENTS]
NAMES = [name for _, name in PAIRS]
SPECIES = [species for species, _ in PAIRS]

# Unicode of every kind, lone surrogates included (they cannot be encoded as UTF-8).
text = st.text(max_size=40) | st.text(
    st.characters(categories=["Cs", "Cc", "Zs", "So"]), min_size=1, max_size=5
)
dates = st.dates().map(dt.date.isoformat)
bad_dates = (
    st.sampled_from(["2001-02-29", "1940/02/10", "0000-01-01", "2000-1-1", "2000-01-01T00:00"])
    | st.just("\u0661\u0669\u0664\u0660-01-01")  # Arabic-Indic digits
    | text
)
huge = st.integers(min_value=-(2**80), max_value=2**80) | st.floats()
scalars = st.none() | st.booleans() | huge | text
values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(text, scalars, max_size=3)

# A valid body: required keys present, dates in order (SERVICE_LAST may be empty), any unicode.
valid_body = st.fixed_dictionaries(
    {
        "AGENT_NAME": st.sampled_from(NAMES) | st.text(min_size=1, max_size=30),
        "AGENT_SPECIES": st.sampled_from(SPECIES) | st.text(min_size=1, max_size=100),
        "SERVICE_START": dates,
    },
    optional={
        "SERVICE_LAST": dates | st.just(""),
        "ADVERSARY_NAME": st.text(max_size=40),
        "ADVERSARY_TECH": st.text(max_size=400),
        "NAME": values,  # the read key, not a write key: ignored, as the original did
    },
).map(lambda body: body | _in_order(body))


def _in_order(body: dict[str, Any]) -> dict[str, Any]:
    start, last = body["SERVICE_START"], body.get("SERVICE_LAST")
    return {"SERVICE_START": last, "SERVICE_LAST": start} if last and last < start else {}


@st.composite
def broken_body(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with one key wrong: missing, of another type, too long, not a date."""
    body = draw(valid_body)
    key = draw(st.sampled_from(sorted(k for k in body if k != "NAME")))
    wrong = {
        "AGENT_NAME": st.just(" ") | st.text(min_size=31, max_size=40),
        "AGENT_SPECIES": st.text(min_size=101, max_size=110),
        "SERVICE_START": bad_dates | st.just(""),
        "SERVICE_LAST": bad_dates | st.just("0001-01-01"),
        "ADVERSARY_NAME": st.text(min_size=41, max_size=50),
        "ADVERSARY_TECH": st.text(min_size=401, max_size=410),
    }[key]
    if draw(st.booleans()):
        del body[key]
    else:
        body[key] = draw(wrong | values)
    return body


def _encode(body: object) -> bytes:
    return json.dumps(body).encode("utf-8", "surrogatepass")


bodies = st.one_of(
    valid_body.map(_encode),
    valid_body.map(_encode),
    broken_body().map(_encode),
    values.map(_encode),  # JSON, but not an object
    st.binary(max_size=50),  # not JSON, not even UTF-8
    st.just(b""),
    st.just(b'{"AGENT_NAME": "Tom",'),  # cut off
)
# The legacy PUT's body: an agent by name and its new date of last service.
last_service = st.fixed_dictionaries(
    {"AGENT_NAME": st.sampled_from(NAMES) | text},
    optional={"SERVICE_LAST": dates | st.just("") | bad_dates | values},
).map(_encode)


def _escaped(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


# A path segment or query value, escaped: a known one, any unicode, or any bytes.
segment = st.one_of(
    st.sampled_from(NAMES + SPECIES).map(_escaped),
    text.map(_escaped),
    st.binary(min_size=1, max_size=4).map(lambda b: quote(b, safe="")),
)
#: The routes as the contract has them (method, path), and paths it does not have.
ROUTES = [
    ("GET", "v1/registry"),
    ("GET", "v2/registry"),
    ("GET", "v2/registry/{a}"),
    ("GET", "v2/registry/{a}/{b}"),
    ("POST", "v2/registry"),
    ("POST", "v3/registry"),
    ("PUT", "v3/registry/{a}/{b}"),
    ("DELETE", "v3/registry/{a}/{b}"),
    ("GET", "v1/status"),
    ("GET", "v1/status/version"),
    ("GET", "v1/status/database"),
]
ELSEWHERE = ["{a}", "v2/{a}/{b}/{a}", "v3/registry/{a}", "v1/registry/{a}"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


@dataclass
class Request:
    method: str
    path: str  # with its query, escaped
    content: bytes = b""
    content_type: str | None = None


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """Mostly a route of the contract with its own method; else any method on any path."""
    method, route = draw(st.sampled_from(ROUTES))
    if draw(st.integers(0, 3)) == 0:
        method = draw(st.sampled_from(METHODS))
        route = draw(st.sampled_from([r for _, r in ROUTES] + ELSEWHERE))
    known = st.sampled_from(PAIRS).map(lambda pair: tuple(map(_escaped, pair)))
    a, b = draw(known | st.tuples(segment, segment))
    path = "/roar/api/" + route.format(a=a, b=b)
    params = draw(st.fixed_dictionaries({}, optional={"species": segment, "x": segment}))
    if params:
        path += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    content = b""
    if method in WRITES:
        content = draw(last_service if method == "PUT" else bodies)
    kind = draw(st.sampled_from([None, "application/json", "text/plain"]))
    return Request(method, path, content, kind)


# What must hold ----------------------------------------------------------------------------


_COLUMNS = "id, NAME, SPECIES, SRVSTART, SRVLAST, ADVNAME, ADVTECH, row_version"
SRVLAST = 4


Table = Callable[[], list[Row]]


@pytest.fixture(scope="module")
def table(backend: Backend) -> Iterator[Table]:
    """Reads every row (dates as text on both backends) on one connection that sees each
    commit: one read before and one after each write."""
    sql = f"SELECT {_COLUMNS} FROM agents ORDER BY id"
    if backend.mariadb:
        conn: Any = backend.mariadb.connect(autocommit=True)
    else:
        conn = sqlite3.connect(Path(backend.env["ROAR_DATA_DIR"]) / "roar.db")

    def read() -> list[Row]:
        cursor = conn.cursor()
        cursor.execute(sql)
        rows = cursor.fetchall()
        cursor.close()
        return [tuple(v.isoformat() if isinstance(v, dt.date) else v for v in r) for r in rows]

    yield read
    conn.close()


def _send(client: httpx.Client, request: Request) -> httpx.Response:
    headers = {"content-type": request.content_type} if request.content_type else {}
    return client.request(request.method, request.path, content=request.content, headers=headers)


def _assert_legacy_error(request: Request, r: httpx.Response) -> None:
    assert r.headers["content-type"] == "text/plain", (request, r.headers, r.text)
    if request.method != "HEAD":
        assert r.text.startswith("Error: ") and r.text.endswith("."), (request, r.text)
        assert "Traceback" not in r.text, r.text
    if r.status_code == 405:
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert request.method not in allowed and allowed, (request, r.headers)


def _as_stored(body: dict[str, Any]) -> Row:
    """The row a legacy POST body makes: texts without the whitespace around them, empty
    values as NULL; version 1."""

    def value(key: str) -> Any:
        given = body.get(key)
        return (given.strip() or None) if isinstance(given, str) else given

    keys = ("AGENT_NAME", "AGENT_SPECIES", "SERVICE_START", "SERVICE_LAST")
    return (*map(value, keys), value("ADVERSARY_NAME"), value("ADVERSARY_TECH"), 1)


def _assert_write_effect(
    request: Request, r: httpx.Response, before: list[Row], after: list[Row]
) -> None:
    """An accepted write answered as the original did and changed only what it says."""
    old, new = {row[0]: row for row in before}, {row[0]: row for row in after}
    added = [new[i] for i in new.keys() - old.keys()]
    removed = old.keys() - new.keys()
    changed = {i for i in old.keys() & new.keys() if old[i] != new[i]}
    if request.method == "POST":
        assert r.content == (b"Item inserted" if "/v2/" in request.path else V3_ENTERED)
        assert len(added) == 1 and not removed and not changed, (request, added, changed)
        assert added[0][1:] == _as_stored(json.loads(request.content)), (request, added)
    elif request.method == "PUT":
        assert r.content == V3_ENTERED
        assert changed and not added and not removed, request
        kept = [slice(0, SRVLAST), slice(SRVLAST + 1, -1)]  # all but SRVLAST and the version
        assert all(new[i][k] == old[i][k] for i in changed for k in kept), request
    else:
        assert (request.method, r.content) == ("DELETE", V3_DELETED)
        assert removed and not added and not changed, request


@pytest.fixture(scope="module")
def client(roar: RoarServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=roar.url, timeout=10) as client:
        yield client


@FUZZ
@given(request=requests())
def test_any_request_gets_an_answer_in_the_legacy_form(
    client: httpx.Client, table: Table, request: Request
) -> None:
    write = request.method in WRITES
    before = table() if write else []
    r = _send(client, request)
    event(f"{request.method} {r.status_code}")  # --hypothesis-show-statistics

    assert r.status_code < 500, (request, r.status_code, r.text)
    if r.status_code >= 400:
        _assert_legacy_error(request, r)
    if write:
        after = table()
        if r.is_success:
            _assert_write_effect(request, r, before, after)
        else:
            assert after == before, (request, r.status_code, r.text)
