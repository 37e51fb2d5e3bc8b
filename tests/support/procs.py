"""A running server's processes, read from /proc: a supervisor's workers and their memory.

This kernel has no /proc/PID/task/TID/children, so children are found by their parent pid."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Memory", "children", "cpu_seconds", "memory", "stop_process", "worker_pids"]


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited while we looked
            continue
        # The command name (field 2) may hold spaces and ')': the fields after the last ')'
        # are state, ppid, ...
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def worker_pids(supervisor: int) -> list[int]:
    """The uvicorn workers of a ``roar serve --workers N`` supervisor: its children (forked, so
    they show the supervisor's own command line), not a multiprocessing resource tracker."""
    workers = []
    for pid in children(supervisor):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:
            workers.append(pid)
    return workers


@dataclass(frozen=True)
class Memory:
    """Resident memory of one process, in bytes: RSS counts shared pages in full, PSS divides
    each shared page among the processes that map it (so PSS adds up across processes)."""

    rss: int
    pss: int


def memory(pid: int) -> Memory:
    """``pid``'s RSS and PSS from /proc/PID/smaps_rollup."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key] = int(rest.split()[0]) * 1024  # kB
    return Memory(rss=values["Rss"], pss=values["Pss"])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far (/proc/PID/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # from field 3 (state) on
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> int:
    """SIGTERM ``proc`` (if it still runs), SIGKILL it after ``timeout``; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=timeout)
