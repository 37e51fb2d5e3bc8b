"""The write counter of one server: how every worker learns, before it answers a read, that a
write has committed through any worker of the same server (roar.cache).

A worker bumps it after each committed write and before it answers; a read compares its value
with the one the snapshot was synced at. With several workers it lives in shared memory that the
supervisor creates and every worker it forks inherits: one slot per worker, each written only by
its own worker, so no lock is needed (a lock held by a worker that dies would stop every write)
and a read is one copy of a few bytes. Standard library only: the supervisor imports it.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["LocalWriteCounter", "SharedWriteCounter", "WriteCounter", "shared_slots"]


class WriteCounter(Protocol):
    def value(self) -> object:
        """A value that changes whenever any worker of this server bumps the counter."""

    def bump(self) -> None:
        """Record a committed write (call before answering the request that made it)."""


class LocalWriteCounter:
    """One worker: a plain number in this process."""

    __slots__ = ("_n",)

    def __init__(self) -> None:
        self._n = 0

    def value(self) -> object:
        return self._n

    def bump(self) -> None:
        self._n += 1


def shared_slots(ctx: Any, workers: int) -> Any:
    """Shared memory for ``workers`` slots, from a multiprocessing context; pass it to each
    worker process with its slot number. By type code ("Q": unsigned 64 bits), so that a
    one-worker server does not import ctypes for it."""
    return ctx.RawArray("Q", workers)


class SharedWriteCounter:
    """One slot of ``slots`` is this worker's; the value is all slots' bytes."""

    __slots__ = ("_slot", "_slots", "_view")

    def __init__(self, slots: Any, slot: int) -> None:
        self._slots = slots
        self._slot = slot
        # Aligned 8-byte stores and loads do not tear on the platforms ROAR runs on; a value
        # read halfway through a bump would only cause one sync too many.
        self._view = memoryview(slots).cast("B")

    def value(self) -> object:
        return self._view.tobytes()

    def bump(self) -> None:
        self._slots[self._slot] += 1
