"""The test cluster's processes: start one in a session of its own, record its pid and start
time, wait for it, and stop exactly that process later (never one that reused its pid)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path


def spawn(
    name: str, argv: list[str], state: Path, *, env: dict[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> int:  # fmt: skip
    logs = state / "logs"
    logs.mkdir(exist_ok=True)
    with open(logs / f"{name}.log", "ab") as out:
        # A session of its own: the component outlives `up` and is not hit by the caller's ^C.
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=state, env=env, pass_fds=pass_fds,
        )  # fmt: skip
    (state / "pids").mkdir(exist_ok=True)
    stat = _proc_stat(proc.pid)
    (state / "pids" / name).write_text(f"{proc.pid} {stat[1] if stat else 0}\n")
    return proc.pid


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) from /proc/<pid>/stat, or None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[19])


def alive(pid: int, started: int) -> bool:
    """True while the process that `up` started runs. Its start time tells it apart from a later
    process that got the same pid, so `down` never signals anything else."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z" and stat[1] == started


def recorded(state: Path, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    out = {}
    for name in names:
        f = state / "pids" / name
        with contextlib.suppress(FileNotFoundError, ValueError):  # ValueError: not ours
            pid, started = f.read_text().split()
            out[name] = (int(pid), int(started))
    return out


def log_tail(state: Path, name: str, lines: int = 25) -> str:
    f = state / "logs" / f"{name}.log"
    if not f.exists():
        return "(no log)"
    return "\n".join(f.read_text(errors="replace").splitlines()[-lines:])


def _check_running(state: Path) -> None:
    names = [f.name for f in (state / "pids").glob("*")] if (state / "pids").is_dir() else []
    for name, (pid, started) in recorded(state, names).items():
        if not alive(pid, started):
            raise RuntimeError(
                f"{name} exited during start-up; its log ends:\n{log_tail(state, name)}"
            )


def wait(what: str, probe: Callable[[], object], state: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except Exception as exc:  # the probe's errors are expected until the thing is up
            last = exc
        _check_running(state)
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")


def https_ok(url: str, pki: Path, *, client: str | None = None) -> bool:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client:
        ctx.load_cert_chain(str(pki / f"{client}.crt"), str(pki / f"{client}.key"))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
            return resp.status == 200
    except urllib.error.HTTPError:
        return False


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status == 200


def free_port() -> int:
    # Racy in theory (another process may take it before we bind), harmless in practice here.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def https_anon_ok(url: str) -> bool:
    # kube-controller-manager and kube-scheduler serve /healthz with a self-signed certificate.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
        return resp.status == 200


def stop(state: Path, names: Iterable[str], *, log: Callable[[str], None]) -> None:
    """SIGTERM each recorded process (in the given order), SIGKILL after 15 s."""
    for name, (pid, started) in recorded(state, names).items():
        if alive(pid, started):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while alive(pid, started) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(pid, started):
                os.kill(pid, signal.SIGKILL)
            log(f"stopped {name} (pid {pid})")
        (state / "pids" / name).unlink(missing_ok=True)
