"""Waiting for something to become true, bounded in time (the one poll loop of the tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["eventually"]

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None],
    *,
    what: str,
    within: float,
    every: float = 0.5,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """``probe()``'s first truthy answer, asked every ``every`` s for at most ``within`` s.

    An exception of a type in ``ignoring`` counts as "not yet" (a server still starting); any
    other propagates at once (a process that died). Times out with an AssertionError that names
    ``what`` and the last answer or error.
    """
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        try:
            last = probe()
        except ignoring as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}; last: {last!r}")
        time.sleep(every)
