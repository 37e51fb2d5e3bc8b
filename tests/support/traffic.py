"""Bounded concurrent load for tests and benchmarks: a step function called with at most N in
flight, until a count, a time limit or a stop signal is reached (never unbounded)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["run_concurrently"]


async def run_concurrently(
    step: Callable[[int], Awaitable[None]],
    *,
    concurrency: int,
    requests: int,
    seconds: float,
    stop: asyncio.Event | None = None,
) -> int:
    """Await ``step(0)``, ``step(1)``, ... with at most ``concurrency`` running, until
    ``requests`` were started, ``seconds`` passed or ``stop`` is set; steps already running
    then finish. Returns how many were started."""
    issued = 0
    deadline = time.monotonic() + seconds
    stop = stop or asyncio.Event()

    async def lane() -> None:
        nonlocal issued
        while issued < requests and time.monotonic() < deadline and not stop.is_set():
            issued += 1
            await step(issued - 1)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return issued
