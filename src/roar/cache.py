"""The agents snapshot: what makes the legacy list fast without a query per request.

Each worker keeps the whole agents table (small by nature: a registry of responders) and the
legacy list already rendered to bytes. A snapshot is served for at most ``ttl`` seconds. A
background task re-reads the table every ``ttl / 2`` seconds, so requests do not wait for that
read; if a snapshot is ever older than ``ttl`` (the refresher fell behind, or the database is
down), the next request reads the table itself, and concurrent requests wait for that one read
instead of each querying. A write through this worker drops the snapshot at once, so a client
reads its own writes; writes by other workers, replicas or SQL clients show within ``ttl``.

When the database is down, a snapshot older than ``ttl`` is not served: the read fails and the
API answers 503, as it must not pretend that stale data is current.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from roar import metrics
from roar.db.schema import AGENT_COLUMNS

__all__ = ["AgentsCache", "Snapshot", "legacy_json"]

log = logging.getLogger("roar.cache")


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

    def _fresh(self) -> Snapshot | None:
        snap = self._snapshot
        if snap is not None and time.monotonic() - snap.loaded_at < self._ttl:
            return snap
        return None

    async def get(self) -> Snapshot:
        if snap := self._fresh():
            return snap
        async with self._lock:
            # Another request refreshed it while this one waited: use that read.
            return self._fresh() or await self._reload()

    async def _reload(self) -> Snapshot:
        generation = self._generation
        started, started_wall = time.monotonic(), time.time()
        rows = tuple(await self._load())
        # Age counts from before the read: the rows are at least as new as that.
        snap = Snapshot(rows=rows, legacy_list=legacy_json(rows), loaded_at=started)
        # A write during the read may not be in it: then keep it for this request only.
        if generation == self._generation:
            self._snapshot = snap
            metrics.SNAPSHOT_LOADED.set(started_wall)
        return snap

    async def refresh_forever(self) -> None:
        """Keep the snapshot younger than ``ttl`` so that requests never wait for a read."""
        if self._ttl <= 0:
            return
        while True:
            await asyncio.sleep(self._ttl / 2)
            try:
                async with self._lock:
                    await self._reload()
            except Exception as exc:  # the database is down: requests will answer 503
                log.debug("agents snapshot refresh failed: %s", exc)

    def invalidate(self) -> None:
        """Forget the snapshot (after a write through this worker)."""
        self._generation += 1
        self._snapshot = None
