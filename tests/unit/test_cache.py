"""The agents snapshot's rules (roar.cache), driven by a loader that counts its reads."""

from __future__ import annotations

import asyncio

from roar.cache import AgentsCache, legacy_json


def _loader(rows: list[dict]):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    async def load() -> list[dict]:
        calls["n"] += 1
        await asyncio.sleep(0.01)
        return list(rows)

    return load, calls


async def test_concurrent_requests_share_one_read() -> None:
    load, calls = _loader([])
    cache = AgentsCache(load, ttl=10)
    await asyncio.gather(*(cache.get() for _ in range(50)))
    assert calls["n"] == 1


async def test_snapshot_expires_after_ttl() -> None:
    load, calls = _loader([])
    cache = AgentsCache(load, ttl=0.05)
    await cache.get()
    await asyncio.sleep(0.08)
    await cache.get()
    assert calls["n"] == 2


ROW = {
    "id": 1,
    "NAME": "A",
    "SPECIES": "b",
    "SRVSTART": "2000-01-01",
    "SRVLAST": None,
    "ADVNAME": None,
    "ADVTECH": None,
}


async def test_invalidate_forces_a_read() -> None:
    rows: list[dict] = []
    load, calls = _loader(rows)
    cache = AgentsCache(load, ttl=10)
    assert (await cache.get()).rows == ()
    rows.append(ROW)
    cache.invalidate()
    snapshot = await cache.get()
    assert snapshot.rows == (ROW,)
    assert snapshot.legacy_list == b'[{"id":1,"NAME":"A","SPECIES":"b","SRVSTART":"2000-01-01"}]'
    assert calls["n"] == 2


def test_legacy_json_orders_keys_and_drops_nulls() -> None:
    row = {
        "ADVTECH": None,
        "NAME": "A",
        "id": 7,
        "SPECIES": "b",
        "SRVSTART": "2000-01-01",
        "SRVLAST": None,
        "ADVNAME": "C",
        "row_version": 3,
    }
    assert legacy_json([row]) == (
        b'[{"id":7,"NAME":"A","SPECIES":"b","SRVSTART":"2000-01-01","ADVNAME":"C"}]'
    )
    assert legacy_json([row], with_id=False).startswith(b'[{"NAME":"A"')


async def test_refresher_keeps_the_snapshot_fresh_without_requests_waiting() -> None:
    load, calls = _loader([])
    cache = AgentsCache(load, ttl=0.2)
    await cache.get()
    task = asyncio.create_task(cache.refresh_forever())
    try:
        await asyncio.sleep(0.55)
        assert calls["n"] >= 3  # the first read, then one about every ttl / 2
        before = calls["n"]
        await asyncio.gather(*(cache.get() for _ in range(20)))
        assert calls["n"] == before  # served from the refreshed snapshot
    finally:
        task.cancel()
