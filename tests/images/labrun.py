"""Running a lab page's commands as a learner types them: a shell with the engines' settings,
a pseudo-terminal for ``-it``, tags that are put back afterwards, and a podman store of its own.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import tempfile
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

from .helpers import CACHE, CommandError, run

__all__ = ["PrivateStore", "Shell", "TagGuard"]


@dataclass
class Shell:
    """``bash -c`` in ``cwd`` with a learner's environment: the test engine as DOCKER_HOST,
    the cached tools (helm) on PATH, and no MYSQL_*/ROAR_* of the caller's (Compose would read
    them before .env)."""

    cwd: Path
    docker_host: str
    home: Path
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL_", "ROAR_"))}
        for key in ("COMPOSE_PROJECT_NAME", "COMPOSE_FILE", "DOCKER_BUILDKIT", "DOCKER_CONTEXT"):
            env.pop(key, None)
        env["DOCKER_HOST"] = self.docker_host
        env["PATH"] = f"{CACHE / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        # Helm keeps its registry login and cache under these; a test's own, not the user's.
        for var, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"),
                         ("HELM_DATA_HOME", "data")):  # fmt: skip
            env[var] = str(self.home / "helm" / sub)
        self.env = env

    def __call__(self, command: str, *, rc: int = 0, timeout: float = 300) -> str:
        """stdout and stderr as one stream (as on a terminal); fails unless the exit code is
        ``rc``."""
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != rc:
            raise CommandError(
                f"$ {command}\n-> exit {proc.returncode} (expected {rc})\n{proc.stdout[-4000:]}"
            )
        return proc.stdout

    def tty(self, command: str, *, timeout: float = 60) -> str:
        """``command`` on a pseudo-terminal (what ``docker exec -it`` needs), 120 columns."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            env={**self.env, "TERM": "xterm"},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        chunks = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.5)
                if not ready:
                    if proc.poll() is not None:
                        break
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the other side closed
                    break
                if not data:
                    break
                chunks.append(data)
            else:
                proc.kill()
                raise CommandError(f"$ {command}\n-> no end after {timeout:g} s")
        finally:
            os.close(master)
        code = proc.wait(timeout=30)
        out = b"".join(chunks).decode(errors="replace")
        if code != 0:
            raise CommandError(f"$ {command}\n-> exit {code}\n{out[-4000:]}")
        return out


class TagGuard:
    """Tags that a replay gives the lab's names (``localhost:5000/...``), put back as they were
    afterwards, so a learner's own images of those names survive a test run."""

    def __init__(self) -> None:
        self._before: dict[tuple[tuple[str, ...], str], str | None] = {}

    def remember(self, engine: tuple[str, ...], name: str) -> None:
        if (engine, name) in self._before:
            return
        proc = run([*engine, "image", "inspect", "--format", "{{.Id}}", name], check=False)
        found = proc.stdout.strip() if proc.returncode == 0 else ""
        self._before[(engine, name)] = found or None

    def tag(self, engine: tuple[str, ...], source: str, name: str) -> None:
        self.remember(engine, name)
        run([*engine, "tag", source, name])

    def restore(self) -> None:
        for (engine, name), image in self._before.items():
            if image is None:  # untag only: the image keeps its other names
                run([*engine, "rmi", name], check=False)
            else:
                run([*engine, "tag", image, name], check=False)
        self._before.clear()


@dataclass
class PrivateStore:
    """A podman image store of its own under ``root``, empty at first: an image pulled into it
    comes from the registry layer by layer, whatever the shared store holds."""

    root: Path
    # podman refuses a run root longer than 50 characters: a short one of its own in /tmp.
    runroot: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="roar-ps-")))

    @property
    def podman(self) -> tuple[str, ...]:
        return ("podman", "--root", str(self.root), "--runroot", str(self.runroot))

    def __call__(self, *args: str, timeout: float = 300) -> str:
        return run([*self.podman, *args], timeout=timeout).stdout

    def remove(self) -> None:
        run([*self.podman, "rm", "-a", "-f", "-t", "5"], check=False, timeout=120)
        # Nothing of this store may stay mounted before its directory goes.
        mounts = [m.split()[1] for m in Path("/proc/self/mounts").read_text().splitlines()]
        for mount in sorted(mounts, key=len, reverse=True):
            if mount.startswith((f"{self.root}/", f"{self.runroot}/")):
                subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.runroot, ignore_errors=True)
