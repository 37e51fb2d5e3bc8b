"""The hot GETs, answered in front of FastAPI: a raw ASGI layer for the requests that load tests,
probes and the workshop's scripts repeat thousands of times a second.

Measured (docs/benchmarks.md, `bench/compare.py --profile`): FastAPI's own layers (its
middlewares, routing, dependency solving, response classes) cost more than the work of these
answers, which is either a constant or bytes the agents snapshot already holds. So, for a GET
with no query string on one of these paths, this layer answers itself:

- ``/healthz``, ``/readyz`` (ready while the snapshot is current: confirmed against the database
  within ``ROAR_CACHE_TTL`` by its poll; otherwise the route answers, checking the database);
- ``/roar/api/v1/registry`` and ``/roar/api/v1/status/version``;
- ``/api/v1/agents`` (the first page, as the route answers it without parameters) and
  ``/api/v1/agents/{id}``, from the snapshot, which every write through this server updates
  before it answers (roar.cache): a client reads its own writes here as from the database.

The answers are byte for byte those of the routes, headers included (tests/api/test_fastpath.py
compares them), and each is counted and logged by the same ``Recorder`` as every other request.
Anything else, and any case these answers do not cover (an unknown id, the database down, the
server draining), goes to the FastAPI app unchanged, which answers it as always. With chaos on
(``ROAR_CHAOS``, tests only) this layer is not installed: every request meets the faults.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from roar.api.record import Recorder, request_id

__all__ = ["FastPath", "modern_agent", "serving"]

#: The modern list's default page size (``limit`` in roar.api.routes.agents).
_PAGE = 50
#: Modern renderings kept per worker (by agent id); past that the memo starts again.
_MEMO_MAX = 4096

Headers = list[tuple[bytes, bytes]]
#: route template, status, headers, body
Answer = tuple[str, int, Headers, bytes]


class Agents(Protocol):
    """What this layer reads from the agents snapshot (roar.cache.AgentsSnapshot)."""

    @property
    def legacy_list(self) -> bytes: ...

    @property
    def count(self) -> int: ...

    @property
    def generation(self) -> int: ...

    def first(self, n: int) -> Sequence[tuple[int, bytes, int]]:
        """The first ``n`` agents by id: (id, legacy fragment, row version)."""
        ...

    def find(self, agent_id: int) -> tuple[bytes, int] | None:
        """One agent's legacy fragment and row version, or None."""
        ...


def modern_agent(fragment: bytes, version: int) -> bytes:
    """An agent as the modern API writes it (``AgentPublic``), from its legacy fragment: the same
    values (the legacy fragment leaves NULL columns out) under the modern names, in order."""
    row = orjson.loads(fragment)
    return orjson.dumps(
        {
            "id": row["id"],
            "name": row["NAME"],
            "species": row["SPECIES"],
            "service_start": row["SRVSTART"],
            "service_last": row.get("SRVLAST"),
            "adversary_name": row.get("ADVNAME"),
            "adversary_tech": row.get("ADVTECH"),
            "version": version,
        }
    )


def serving(app: Any) -> ASGIApp:
    """What the server runs for ROAR's FastAPI ``app``: this layer in front of it, unless chaos
    is on (then every request must meet the faults)."""
    settings = app.state.settings
    if settings.chaos:
        chaotic: ASGIApp = app
        return chaotic
    return FastPath(app, recorder=app.state.recorder, status_version=settings.status_version)


def _json_headers(body: bytes, *, length_first: bool) -> Headers:
    # Starlette writes the headers it is given, then the ones it adds: ``exact()`` gives
    # content-type (so it comes first), ``Response(media_type=...)`` adds both, length first.
    length = (b"content-length", str(len(body)).encode())
    kind = (b"content-type", b"application/json")
    return [length, kind] if length_first else [kind, length]


class FastPath:
    """An ASGI app in front of ROAR's FastAPI app (see the module docstring)."""

    def __init__(self, app: Any, *, recorder: Recorder, status_version: str) -> None:
        self.app: ASGIApp = app
        self._state = app.state
        self._recorder = recorder
        self._version_header = (b"x-roar-version", status_version.encode("latin-1"))
        status_html = f"<p>Version</p>{status_version}".encode()
        self._healthz = self._constant("/healthz", b'{"status":"ok"}', b"application/json")
        self._status_version = self._constant(
            "/roar/api/v1/status/version", status_html, b"text/html"
        )
        ready = b'{"status":"ready","database":"ok"}'
        self._ready = self._constant("/readyz", ready, b"application/json")
        self._exact: dict[str, Callable[[], Awaitable[Answer | None]]] = {
            "/healthz": self._answer_healthz,
            "/readyz": self._answer_readyz,
            "/roar/api/v1/registry": self._answer_legacy_list,
            "/roar/api/v1/status/version": self._answer_status_version,
            "/api/v1/agents": self._answer_first_page,
        }
        self._memo: dict[int, tuple[bytes, int, bytes]] = {}
        self._page: tuple[object, int, bytes] | None = None

    @property
    def state(self) -> Any:
        """The app's state (roar.server marks it draining on SIGTERM)."""
        return self._state

    @staticmethod
    def _constant(route: str, body: bytes, kind: bytes) -> Answer:
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        return route, 200, headers, body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        handler = self._exact.get(path)
        started = time.perf_counter()
        try:
            if handler is not None:
                answer = await handler()
            elif path.startswith("/api/v1/agents/"):
                answer = await self._answer_agent(path[15:])
            else:
                answer = None
        except Exception:  # the database is down, say: the route answers that as always
            answer = None
        if answer is None:
            await self.app(scope, receive, send)
            return
        route, status, headers, body = answer
        rid = request_id(scope["headers"])
        headers = [*headers, (b"x-request-id", rid.encode("latin-1")), self._version_header]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self._recorder.done(
            method="GET", route=route, path=path, status=status, started=started, request_id=rid
        )

    # Answers: None leaves the request to the FastAPI app --------------------------------------

    async def _answer_healthz(self) -> Answer:
        return self._healthz

    async def _answer_status_version(self) -> Answer:
        return self._status_version

    async def _answer_readyz(self) -> Answer | None:
        state = self._state
        # The snapshot's poll reached the database within ROAR_CACHE_TTL: ready, without a query
        # of this request's own. Otherwise (or draining) the route checks and says why not.
        if state.draining or state.cache.current() is None:
            return None
        return self._ready

    def _snapshot(self) -> Agents | None:
        """The snapshot when it may be served as it is. When it must sync first (a write just
        bumped the counter, or the poll has not confirmed it within ROAR_CACHE_TTL) the route
        waits for that sync, within ROAR_DB_QUERY_TIMEOUT, and answers a failure in its own
        format: waiting here as well would double the wait on a database that stopped answering."""
        snapshot: Agents | None = self._state.cache.current()
        return snapshot

    async def _answer_legacy_list(self) -> Answer | None:
        if (snapshot := self._snapshot()) is None:
            return None
        body = snapshot.legacy_list
        return "/roar/api/v1/registry", 200, _json_headers(body, length_first=False), body

    async def _answer_first_page(self) -> Answer | None:
        if (snapshot := self._snapshot()) is None:
            return None
        page = self._page
        if page is None or page[0] is not snapshot or page[1] != snapshot.generation:
            items = b",".join(self._modern(i, f, v) for i, f, v in snapshot.first(_PAGE))
            body = b'{"items":[%b],"total":%d,"limit":%d,"offset":0}' % (
                items,
                snapshot.count,
                _PAGE,
            )
            page = self._page = (snapshot, snapshot.generation, body)
        body = page[2]
        return "/api/v1/agents", 200, _json_headers(body, length_first=True), body

    async def _answer_agent(self, text: str) -> Answer | None:
        # Only the canonical form of an id the route accepts; "01", "+1" or "1 " go to the route.
        if not (text.isascii() and text.isdigit()) or text[0] == "0" or len(text) > 10:
            return None
        agent_id = int(text)
        if agent_id > 2**31 - 1:
            return None
        snapshot = self._snapshot()
        found = snapshot.find(agent_id) if snapshot is not None else None
        if found is None:
            return None  # the route answers the 404
        body = self._modern(agent_id, *found)
        headers = [(b"etag", b'"%d"' % found[1]), *_json_headers(body, length_first=True)]
        return "/api/v1/agents/{agent_id}", 200, headers, body

    def _modern(self, agent_id: int, fragment: bytes, version: int) -> bytes:
        memo = self._memo.get(agent_id)
        if memo is not None and memo[0] is fragment and memo[1] == version:
            return memo[2]
        body = modern_agent(fragment, version)
        if len(self._memo) >= _MEMO_MAX:
            self._memo.clear()
        self._memo[agent_id] = (fragment, version, body)
        return body
