"""Concurrent writers across worker processes lose nothing and duplicate nothing."""

from __future__ import annotations

import asyncio

import httpx

from support.roar import RoarServer


async def _create_many(url: str, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/agents",
                    json={
                        "name": f"Agent {i:02d}",
                        "species": "swarm",
                        "service_start": "2020-01-01",
                    },
                )
                for i in range(count)
            )
        )
    assert all(r.status_code == 201 for r in answers), [r.text for r in answers[:3]]
    return [r.json()["id"] for r in answers]


def test_fifty_concurrent_creates_give_exactly_fifty_rows(backend, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = RoarServer(env=backend.env, log_path=tmp_path / "roar.log", workers=2).start()
    try:
        before = backend.count()
        ids = asyncio.run(_create_many(server.url, 50))
        assert len(set(ids)) == 50
        assert backend.count() == before + 50
        listed = httpx.get(
            f"{server.url}/api/v1/agents", params={"species": "swarm", "limit": 500}
        ).json()
        assert listed["total"] == 50
        assert sorted(a["name"] for a in listed["items"]) == [f"Agent {i:02d}" for i in range(50)]
    finally:
        assert server.stop() == 0
