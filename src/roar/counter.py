"""The write counter of one server: how every worker learns, before it answers a read, that a
write has committed through any worker of the same server (roar.cache); and its version board,
what the latest write to each agent stored, whichever worker made it.

A worker bumps the counter after each committed write and before it answers; a read compares its
value with the one the snapshot was synced at. With several workers both live in shared memory
that the supervisor creates and every worker it forks inherits: one counter slot per worker, each
written only by its own worker, so no lock is needed (a lock held by a worker that dies would stop
every write) and a read is one copy of a few bytes. Standard library only: the supervisor imports
it.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = [
    "LocalWriteCounter",
    "SharedWriteCounter",
    "VersionBoard",
    "WriteCounter",
    "shared_slots",
]

#: Entries of the version board: agents share an entry when their ids are equal modulo this.
BOARD_ENTRIES = 4096


class VersionBoard:
    """The row version each agent's latest write through this server stored: the guess a PUT
    makes of the version it replaces (roar.db.agents.update_agent checks it), fresher than a
    worker's snapshot, which learns other workers' writes only at its next sync.

    An entry per id modulo ``BOARD_ENTRIES``, two words: the id, then the version. Nothing locks
    it: an entry read while another worker writes it, or written by two at once, may pair one
    write's id with another's version. That is a wrong guess, which the database refuses and
    the write then costs two statements more; never a wrong answer."""

    __slots__ = ("_words",)

    def __init__(self, memory: Any = None) -> None:
        """Over ``memory`` (``2 * BOARD_ENTRIES`` unsigned 64-bit words, shared) or, for one
        worker, memory of its own."""
        if memory is None:
            memory = bytearray(16 * BOARD_ENTRIES)  # zeroed: no agent has id 0
        self._words = memoryview(memory).cast("B").cast("Q")

    def note(self, agent_id: int, version: int) -> None:
        at = 2 * (agent_id % BOARD_ENTRIES)
        self._words[at] = agent_id
        self._words[at + 1] = version

    def version(self, agent_id: int) -> int | None:
        at = 2 * (agent_id % BOARD_ENTRIES)
        return self._words[at + 1] if self._words[at] == agent_id else None


class WriteCounter(Protocol):
    #: What the server's writes stored, per agent.
    board: VersionBoard

    def value(self) -> object:
        """A value that changes whenever any worker of this server bumps the counter."""

    def bump(self) -> None:
        """Record a committed write (call before answering the request that made it)."""


class LocalWriteCounter:
    """One worker: a plain number in this process."""

    __slots__ = ("_n", "board")

    def __init__(self) -> None:
        self._n = 0
        self.board = VersionBoard()

    def value(self) -> object:
        return self._n

    def bump(self) -> None:
        self._n += 1


def shared_slots(ctx: Any, workers: int) -> Any:
    """Shared memory for ``workers`` counter slots and the version board, from a
    multiprocessing context; pass it to each worker process with its slot number. By type code
    ("Q": unsigned 64 bits), so that a one-worker server does not import ctypes for it."""
    return ctx.RawArray("Q", workers + 2 * BOARD_ENTRIES)


class SharedWriteCounter:
    """One slot of ``slots`` is this worker's; the value is all slots' bytes. The board is the
    words after the slots."""

    __slots__ = ("_slot", "_slots", "_view", "board")

    def __init__(self, slots: Any, slot: int) -> None:
        self._slots = slots
        self._slot = slot
        words = memoryview(slots).cast("B")
        workers = len(slots) - 2 * BOARD_ENTRIES
        # Aligned 8-byte stores and loads do not tear on the platforms ROAR runs on; a value
        # read halfway through a bump would only cause one sync too many.
        self._view = words[: 8 * workers]
        self.board = VersionBoard(words[8 * workers :])

    def value(self) -> object:
        return self._view.tobytes()

    def bump(self) -> None:
        self._slots[self._slot] += 1
