"""The agents snapshot: what serves the legacy list from memory, consistent across workers, at a
cost that grows with the changes, not with the table.

Each worker keeps one JSON fragment per agent, in id order, and the list joined from them. How it
stays current:

- **Writes through this server** (any worker): after each committed write the worker bumps the
  server's write counter (roar.counter: shared memory the supervisor gives every worker) before
  it answers. Every read compares the counter with the value the snapshot was synced at; if it
  moved, the read first applies the database's new changes. So a write is visible to every later
  read of the same server, whichever worker answers (read-your-writes).
- **Writes through other replicas, or straight into the database with SQL**: the database keeps
  a change log itself (``agent_changes``, filled by triggers on ``agents``; roar.db.schema). A
  background task looks at its newest entry every ``ROAR_CACHE_POLL_INTERVAL`` seconds (default
  0.1): one primary-key lookup, whatever the table size, through the driver on a connection of
  its own (under 1 % of a core per idle worker). Such changes show within the poll interval
  plus one sync: at most 0.25 s by default.
- **Why triggers**: every writer fires them (ROAR, lab 6's SQL, any client), and "did anything
  change?" becomes one lookup of the newest seq. ``COUNT(*)`` or ``MAX(row_version)`` scan the
  table and each misses some changes; re-reading the table, what this module did before, cost
  three quarters of a core per idle worker at 100,000 agents.
- **Applying changes** reads the log entries after the last one applied and then only the agents
  they name, by primary key; the list is re-joined from the cached fragments, no row is
  serialised again. A reader more than ``_MAX_DELTA`` entries behind, or whose last entry is gone
  (pruned, or the database was recreated), reads the whole table again instead.
- **Entries that commit out of order.** On MariaDB an entry's seq is taken when a transaction
  writes, not when it commits: a reader can see seq 11 before seq 10 commits. A seq missing
  below the newest one seen is kept as a gap and asked for again at every sync until it shows
  (or ``_GAP_GRACE`` seconds pass: a rolled-back write leaves a gap forever). SQLite has one
  writer at a time and no such gaps.
- **Freshness bound**: a snapshot not confirmed against the database within ``ROAR_CACHE_TTL``
  seconds (the poller keeps confirming it) is not served: the read syncs itself, and when the
  database is down it fails and the API answers 503, as stale data must not pass for current.

One worker of each server prunes the log, keeping the newest ``_KEEP`` entries.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from array import array
from bisect import bisect_left
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from roar import metrics
from roar.counter import LocalWriteCounter, WriteCounter
from roar.db import changes
from roar.db.async_core import AsyncConnection, AsyncEngine
from roar.db.engine import deadline
from roar.db.schema import AGENT_COLUMNS

__all__ = ["AgentsCache", "AgentsSnapshot", "CacheStats", "Kept", "legacy_json"]

log = logging.getLogger("roar.cache")

#: Rows per step of a full read. Between steps the load reports progress and lets the worker's
#: other requests run: each of their round trips waits up to a step (about 20 ms at 1000 rows;
#: at 5000, a new connection's handshake took 0.5 s during a 200k-row load).
_LOAD_BATCH = 1000
#: A reader more entries behind than this reads the whole table: cheaper than so many rows by id.
_MAX_DELTA = 5000
#: Entries the log keeps (more than ``_MAX_DELTA``, so a reader never needs a pruned one).
_KEEP = 20_000
_PRUNE_BATCH = 5000
_PRUNE_EVERY = 5.0
#: Seconds between batches while a backlog (a bulk load's) is pruned: 5,000 entries a second
#: at a few % of one worker's CPU, not as fast as it can.
_PRUNE_BACKLOG_EVERY = 1.0
#: Seconds a missing seq is asked for again before it counts as rolled back.
_GAP_GRACE = 10.0
#: Missing seqs tracked at most (auto_increment_increment > 1, on Galera, leaves many).
_GAP_LIMIT = 1000
#: At a full read, how far below the newest entry to look for seqs not committed yet.
_GAP_WINDOW = 1000
#: Seconds between full syncs when the cheap poll sees nothing new: they also check that the
#: newest entry seen is still the same (a recreated database may reach the same seq).
_VERIFY_EVERY = 5.0
#: Changes applied one by one up to this many; above, the arrays are rebuilt in one pass.
_MERGE_ABOVE = 64


def legacy_json(rows: Sequence[Mapping[Any, Any]], *, with_id: bool = True) -> bytes:
    """Rows as the legacy API writes them: wire key order, NULL columns left out."""
    keys = AGENT_COLUMNS if with_id else AGENT_COLUMNS[1:]
    return orjson.dumps([{k: row[k] for k in keys if row[k] is not None} for row in rows])


def _fragment(row: Sequence[Any]) -> bytes:
    """One agent as the legacy list writes it, from a row that starts with the legacy columns in
    wire order (the row version follows)."""
    legacy = zip(AGENT_COLUMNS, row[: len(AGENT_COLUMNS)], strict=True)
    encoded = orjson.dumps({k: v for k, v in legacy if v is not None})
    # orjson's bytes keep the block of its output buffer (about 4 kB): kept a million times,
    # that is 4 GB. A copy is the fragment's own size.
    return bytes(memoryview(encoded))


def _join(fragments: list[bytes]) -> bytes:
    """``[f1,f2,...]`` with one copy of the fragments (no intermediate joined string)."""
    if not fragments:
        return b"[]"
    parts = [b","] * (2 * len(fragments) + 1)
    parts[0], parts[-1] = b"[", b"]"
    parts[1::2] = fragments
    return b"".join(parts)


#: What the snapshot keeps of one agent: its legacy JSON fragment and its row version (the
#: modern API's ETag); None when the agent is gone.
Kept = tuple[bytes, int]

_generations = itertools.count(1)


class AgentsSnapshot:
    """The agents as the legacy list shows them: a JSON fragment and the row version per agent,
    in id order, and the list, joined from the fragments when first asked for after a change.
    ``generation`` changes with every change, so that renderings of it can be kept until then."""

    __slots__ = ("_fragments", "_ids", "_list", "_versions", "generation")

    def __init__(
        self,
        ids: array[int] | None = None,
        fragments: list[bytes] | None = None,
        versions: array[int] | None = None,
    ) -> None:
        self._ids = ids if ids is not None else array("q")
        self._fragments = fragments if fragments is not None else []
        self._versions = versions if versions is not None else array("q")
        if not len(self._ids) == len(self._fragments) == len(self._versions):
            raise ValueError("ids, fragments and versions must pair up")
        self._list: bytes | None = None
        self.generation = next(_generations)

    @property
    def count(self) -> int:
        """How many agents there are."""
        return len(self._ids)

    @property
    def legacy_list(self) -> bytes:
        body = self._list
        if body is None:
            body = self._list = _join(self._fragments)
        return body

    def first(self, n: int) -> list[tuple[int, bytes, int]]:
        """The first ``n`` agents by id: (id, fragment, row version)."""
        n = min(n, len(self._ids))
        return list(zip(self._ids[:n], self._fragments[:n], self._versions[:n], strict=True))

    def find(self, agent_id: int) -> Kept | None:
        """One agent's fragment and row version, or None."""
        i = bisect_left(self._ids, agent_id)
        if i < len(self._ids) and self._ids[i] == agent_id:
            return self._fragments[i], self._versions[i]
        return None

    def apply(self, changed: Mapping[int, Kept | None]) -> None:
        """Put each changed agent in its place; None removes the agent."""
        if not changed:
            return
        if len(changed) > _MERGE_ABOVE:
            self._merge(changed)
        else:
            for agent_id, entry in changed.items():
                self._put(agent_id, entry)
        self._list = None
        self.generation = next(_generations)

    def _put(self, agent_id: int, entry: Kept | None) -> None:
        ids = self._ids
        i = bisect_left(ids, agent_id)
        present = i < len(ids) and ids[i] == agent_id
        if entry is None:
            if present:
                del ids[i], self._fragments[i], self._versions[i]
        elif present:
            self._fragments[i], self._versions[i] = entry
        else:  # new agents have the highest ids: this is an append, as a rule
            ids.insert(i, agent_id)
            self._fragments.insert(i, entry[0])
            self._versions.insert(i, entry[1])

    def _merge(self, changed: Mapping[int, Kept | None]) -> None:
        new = sorted((i, e) for i, e in changed.items() if e is not None)
        ids: array[int] = array("q")
        fragments: list[bytes] = []
        versions: array[int] = array("q")

        def add(agent_id: int, fragment: bytes, version: int) -> None:
            ids.append(agent_id)
            fragments.append(fragment)
            versions.append(version)

        n = 0
        old = zip(self._ids, self._fragments, self._versions, strict=True)
        for agent_id, fragment, version in old:
            while n < len(new) and new[n][0] < agent_id:
                add(new[n][0], *new[n][1])
                n += 1
            if agent_id not in changed:  # a changed one is in ``new`` (or deleted)
                add(agent_id, fragment, version)
        for agent_id, entry in new[n:]:
            add(agent_id, *entry)
        self._ids, self._fragments, self._versions = ids, fragments, versions


@dataclass
class CacheStats:
    """What keeping the snapshot current has cost this worker (for tests and benchmarks)."""

    full_loads: int = 0
    syncs: int = 0
    rows_read: int = 0
    last_sync_seconds: float = 0.0


class AgentsCache:
    """One worker's agents snapshot, kept current as the module docstring says."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ttl: float,
        poll_interval: float = 0.1,
        counter: WriteCounter | None = None,
        prune: bool = True,
        probe_engine: AsyncEngine | None = None,
        read_timeout: float | None = None,
    ) -> None:
        self._engine = engine
        # The poll holds a connection: from an engine of its own, so the pool keeps them all.
        self._probe_engine = probe_engine or engine
        self._ttl = ttl
        #: How long a read may wait for a sync (its own or another's) before it fails.
        self._read_timeout = read_timeout
        self._poll_interval = poll_interval
        self._counter: WriteCounter = counter or LocalWriteCounter()
        self._prune = prune
        self._lock = asyncio.Lock()
        self._snapshot = AgentsSnapshot()
        self._loaded = False
        #: The counter's value when the last sync began: reads compare with it.
        self._synced_at: object = None
        #: When (monotonic) the snapshot was last confirmed current against the database.
        self._confirmed = float("-inf")
        #: The newest log entry applied, and seqs below it not committed when last asked.
        self._seen: changes.Entry | None = None
        self._gaps: dict[int, float] = {}
        #: The deadlines of reads waiting for a sync (``_bounded``), which progress moves on.
        self._waiting: set[asyncio.Timeout] = set()
        self._next_prune = 0.0
        self.stats = CacheStats()

    @property
    def confirmed_at(self) -> float:
        """When (``time.monotonic()``) the snapshot was last confirmed against the database."""
        return self._confirmed

    @property
    def loaded(self) -> bool:
        """Whether the whole table has been read once (at 1M agents that takes seconds)."""
        return self._loaded

    def current(self) -> AgentsSnapshot | None:
        """The snapshot if a read may use it as it is (no wait), else None: ``get`` syncs."""
        return self._snapshot if self._current() else None

    def _current(self) -> bool:
        return (
            self._synced_at == self._counter.value()
            and time.monotonic() - self._confirmed < self._ttl
        )

    def version_hint(self, agent_id: int) -> int | None:
        """The agent's row version as this server last saw it (this worker's snapshot, however
        old, or a write through any worker since: the counter's board): a guess for a write to
        check against the database (roar.db.agents.update_agent), never an answer."""
        found = self._snapshot.find(agent_id)
        known = (found[1] if found is not None else None, self._counter.board.version(agent_id))
        return max((v for v in known if v is not None), default=None)  # versions only grow

    async def get(self) -> AgentsSnapshot:
        """The snapshot, with every write this server has answered applied."""
        if self._current():
            return self._snapshot
        async with self._bounded(), self._lock:
            if not self._current():  # nobody synced it while this request waited
                await self._sync()
            return self._snapshot

    @asynccontextmanager
    async def _bounded(self) -> AsyncIterator[None]:
        """Within ``read_timeout`` seconds without progress: each round trip of a sync, whoever
        runs it, moves every such deadline on. A database that stops answering is a 503 after
        ``read_timeout``; the first read of a large table (1M agents: about 12 s on MariaDB),
        which answers all along, is waited for."""
        if not self._read_timeout:
            yield
            return
        async with deadline(self._read_timeout) as limit:
            self._waiting.add(limit)
            try:
                yield
            finally:
                self._waiting.discard(limit)

    def _progress(self) -> None:
        """A sync's round trip came back: the database answers."""
        if self._waiting and self._read_timeout:
            when = asyncio.get_running_loop().time() + self._read_timeout
            for limit in self._waiting:
                limit.reschedule(when)

    async def at_least(self, seq: int | None) -> AgentsSnapshot:
        """The snapshot with every change up to log entry ``seq`` applied (for a count that must
        agree with rows just read from the database)."""
        snapshot = await self.get()
        seen = self._seen.seq if self._seen else 0
        if (seq or 0) <= seen and not self._gaps:
            return snapshot
        async with self._bounded(), self._lock:
            await self._sync()
            return self._snapshot

    def invalidate(self, stored: tuple[int, int] | None = None) -> None:
        """Record a committed write: every worker of this server applies it before its next read.
        Call after the commit and before answering; ``stored``: the agent's id and the row
        version the write stored, when known (the guess for the server's next write to it)."""
        if stored is not None:
            self._counter.board.note(*stored)
        self._counter.bump()

    async def watch_forever(self) -> None:
        """Apply changes made elsewhere (other replicas, SQL) every ``poll_interval`` seconds.
        Each poll is one cheap look at the newest log entry; a full sync only when it moved (or
        seqs are missing, or every ``_VERIFY_EVERY`` s, to check the entry is still the same)."""
        failing = False
        probe = changes.NewestProbe(self._probe_engine)
        next_verify = 0.0
        try:
            while True:
                try:
                    started, wall = time.monotonic(), time.time()
                    seen = self._seen.seq if self._seen else None
                    if (
                        not self._loaded
                        or self._gaps
                        or started >= next_verify
                        or await self._moved(probe, seen)
                    ):
                        async with self._lock:
                            await self._sync()
                        next_verify = started + _VERIFY_EVERY
                    else:
                        self._confirm(started, wall)
                    if self._prune and time.monotonic() >= self._next_prune:
                        await self._prune_log()
                    if failing:
                        log.info("agents snapshot: the database answers again")
                    failing = False
                except Exception as exc:  # requests answer 503 meanwhile (see ``get``)
                    if not failing:
                        hint = " (run `roar db upgrade`)" if "agent_changes" in str(exc) else ""
                        log.warning("agents snapshot: cannot read changes%s: %s", hint, exc)
                        metrics.DB_UP.set(0)
                    failing = True
                await asyncio.sleep(self._poll_interval)
        finally:
            await probe.close()

    async def _moved(self, probe: changes.NewestProbe, seen: int | None) -> bool:
        # Bounded like a read: a server that stopped answering must not stall the poll for good
        # (the probe reopens its connection after the failure).
        async with self._bounded():
            return await probe.moved_from(seen)

    def _confirm(self, started: float, wall: float) -> None:
        """The snapshot was current at ``started`` (monotonic), ``wall`` (Unix time)."""
        self._confirmed = started
        metrics.SNAPSHOT_LOADED.set(wall)
        metrics.DB_UP.set(1)

    # Syncing -----------------------------------------------------------------------------

    async def _sync(self) -> None:
        token = self._counter.value()  # before reading: a bump after this forces another sync
        started, wall = time.monotonic(), time.time()
        try:
            async with self._engine.connect() as conn:
                if not self._loaded or not await self._apply_changes(conn):
                    await self._load_all(conn)
        except Exception:
            metrics.DB_UP.set(0)
            raise
        self._confirm(started, wall)
        self._synced_at = token
        self.stats.syncs += 1
        self.stats.last_sync_seconds = time.monotonic() - started

    async def _load_all(self, conn: AsyncConnection) -> None:
        """Read every agent (at start, or when the log no longer leads on from this snapshot).
        Each statement commits on its own (the engine is in autocommit), so the rows are read
        after ``newest``: they hold every change up to it (but the uncommitted seqs, noted as
        gaps), and maybe later ones, which the next sync applies again (applying a change reads
        the agent's row as it is then: doing it twice changes nothing)."""
        newest = await changes.newest(conn)
        self._progress()
        gaps: dict[int, float] = {}
        if newest is not None:
            low = max(0, newest.seq - _GAP_WINDOW)
            present = set(await changes.seqs_between(conn, low=low, high=newest.seq))
            self._progress()
            now = time.monotonic()
            gaps = {s: now for s in range(low + 1, newest.seq) if s not in present}
        ids: array[int] = array("q")
        fragments: list[bytes] = []
        versions: array[int] = array("q")
        async for rows in changes.stream_agents(conn, batch=_LOAD_BATCH):
            self._progress()
            # Rows that arrive faster than they are handled never suspend the stream: give
            # the loop back once a step, or other requests wait for the whole load.
            await asyncio.sleep(0)
            for row in rows:
                ids.append(row[0])
                fragments.append(_fragment(row))
                versions.append(row[-1])
        self._snapshot = AgentsSnapshot(ids, fragments, versions)
        self._seen, self._gaps, self._loaded = newest, gaps, True
        self.stats.full_loads += 1
        self.stats.rows_read += len(ids)

    async def _apply_changes(self, conn: AsyncConnection) -> bool:
        """Apply the entries after the last one seen (and any missing ones that have committed
        since). One query when nothing changed. False when the caller must read everything: the
        last entry seen is gone or different (pruned, or the database was recreated), or there
        are more than ``_MAX_DELTA`` new entries."""
        seen = self._seen
        after = seen.seq if seen else 0
        # ``>=``: the entry seen last comes back too, proving the log still leads on from it.
        entries = await changes.entries_from(
            conn, seq=after, also=self._gaps.keys(), limit=_MAX_DELTA + 2
        )
        self._progress()
        if len(entries) > _MAX_DELTA + 1:
            return False
        # Work on copies and change this object only after the last await: a query that fails
        # or is cancelled (a deadline) part way must leave the snapshot where it was, or the
        # changes read so far would count as applied while their rows never were.
        now = time.monotonic()
        gaps = dict(self._gaps)
        expected, newest, confirmed = after + 1, seen, seen is None
        changed_ids = set()
        for entry in entries:
            if entry.seq < after:  # a gap that has committed since
                gaps.pop(entry.seq, None)
            elif entry.seq == after:
                confirmed = entry == seen
                continue
            else:
                for missing in range(expected, min(entry.seq, expected + _GAP_LIMIT)):
                    gaps[missing] = now
                expected, newest = entry.seq + 1, entry
            changed_ids.add(entry.agent_id)
        if not confirmed:
            return False
        for seq, first_missed in list(gaps.items()):
            if now - first_missed > _GAP_GRACE or len(gaps) > _GAP_LIMIT:
                del gaps[seq]  # rolled back, most likely (or too many to follow)
        rows = await changes.agents_by_id(conn, changed_ids) if changed_ids else []
        self._seen, self._gaps = newest, gaps
        if changed_ids:
            changed: dict[int, Kept | None] = dict.fromkeys(changed_ids)
            changed.update((row[0], (_fragment(row), row[-1])) for row in rows)
            self._snapshot.apply(changed)
            self.stats.rows_read += len(rows)
        return True

    async def _prune_log(self) -> None:
        async with self._engine.begin() as conn:
            more = await changes.prune(conn, keep=_KEEP, batch=_PRUNE_BATCH)
        self._next_prune = time.monotonic() + (_PRUNE_BACKLOG_EVERY if more else _PRUNE_EVERY)
