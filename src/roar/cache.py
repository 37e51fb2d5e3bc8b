"""The agents snapshot: what makes the legacy list fast without a query per request.

Each worker keeps the whole agents table (small by nature: a registry of responders) and the
legacy list already rendered to bytes. A snapshot is served for at most ``ttl`` seconds, then the
next request re-reads the table; concurrent requests wait for that one read instead of each
querying. A write through this worker drops the snapshot at once, so a client reads its own
writes; writes by other workers, replicas or SQL clients show within ``ttl`` seconds.

When the database is down, a snapshot older than ``ttl`` is not served: the read fails and the
API answers 503, as it must not pretend that stale data is current.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from roar.db.schema import AGENT_COLUMNS

__all__ = ["AgentsCache", "Snapshot", "legacy_json"]


def legacy_json(rows: Sequence[dict[str, Any]], *, with_id: bool = True) -> bytes:
    """Rows as the legacy API writes them: wire key order, NULL columns left out."""
    keys = AGENT_COLUMNS if with_id else AGENT_COLUMNS[1:]
    return orjson.dumps([{k: row[k] for k in keys if row[k] is not None} for row in rows])


@dataclass(frozen=True, slots=True)
class Snapshot:
    rows: tuple[dict[str, Any], ...]
    legacy_list: bytes
    loaded_at: float = field(default_factory=time.monotonic)


class AgentsCache:
    """A per-worker, time-bounded snapshot of the agents table."""

    def __init__(self, load: Callable[[], Awaitable[Sequence[dict[str, Any]]]], ttl: float):
        self._load = load
        self._ttl = ttl
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()
        self._generation = 0

    async def get(self) -> Snapshot:
        snap = self._snapshot
        if snap is not None and time.monotonic() - snap.loaded_at < self._ttl:
            return snap
        generation = self._generation
        async with self._lock:
            snap = self._snapshot
            # Another request refreshed it while this one waited: use that read.
            if snap is not None and time.monotonic() - snap.loaded_at < self._ttl:
                return snap
            rows = tuple(await self._load())
            snap = Snapshot(rows=rows, legacy_list=legacy_json(rows))
            # A write during the read may not be in it: keep it for this request only.
            if generation == self._generation:
                self._snapshot = snap
            return snap

    def invalidate(self) -> None:
        """Forget the snapshot (after a write through this worker)."""
        self._generation += 1
        self._snapshot = None
