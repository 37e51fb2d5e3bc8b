"""The workshop's OCI registry, for real: Debian's ``docker-registry`` (the CNCF Distribution
server) on 127.0.0.1:5000, its storage in a temporary directory, its config written here.

The labs, the manifests and the chart all name ``localhost:5000``, so the address is fixed and
two test sessions on one machine cannot both have it. They take turns: :func:`workshop_lock`
is an ``flock`` (the kernel drops it when its holder dies, so a killed run leaves no stale lock)
that a session holds while it uses the labs' fixed ports (5000, and lab 2's 8089 and 3308). A
port held by anything else is not waited for: :func:`ensure_free` fails at once, naming it.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .procs import stop_process
from .wait import eventually

__all__ = [
    "ADDRESS",
    "LOCK_PATH",
    "AddressInUse",
    "Registry",
    "ensure_free",
    "registry_config",
    "running_registry",
    "workshop_lock",
]

#: The workshop's registry address (docs/labs-1-3.md); images are named ``localhost:5000/...``.
ADDRESS = ("127.0.0.1", 5000)
LOCK_PATH = Path("/run/lock/roar-workshop.lock")


class AddressInUse(RuntimeError):
    """A fixed workshop port is held by a process that is not a test session of ours."""


def _listener(port: int) -> str:
    """Who listens on ``port`` (``ss`` from iproute2), for the error message."""
    try:
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"an unknown process ({exc})"
    return out or "a process that ss does not show"


def ensure_free(port: int, what: str) -> None:
    """Fails with the listener's name and pid when 127.0.0.1:``port`` cannot be bound."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise AddressInUse(
                f"{what} needs 127.0.0.1:{port} (the workshop's address), but it is taken: "
                f"{_listener(port)}. Stop that process, or run the tests where the port is free."
            ) from None


@contextmanager
def workshop_lock(timeout: float = 1200, poll: float = 2) -> Iterator[None]:
    """Holds the machine-wide lock of the labs' fixed ports; waits up to ``timeout`` s for it."""
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = Path(LOCK_PATH).read_text().strip() or "unknown"
                    raise TimeoutError(
                        f"{LOCK_PATH}: another test session has held the workshop's ports "
                        f"(5000, 8089, 3308) for over {timeout:g} s; holder: {holder}"
                    ) from None
                time.sleep(poll)
        # Who holds it, for the message of a session that waits too long.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def registry_config(storage: Path) -> dict[str, Any]:
    """The server's configuration: the one docs/labs-1-3.md shows, with the storage moved and
    what a test adds (a shared secret, so no warning; quiet logs)."""
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"{ADDRESS[0]}:{ADDRESS[1]}", "secret": secrets.token_hex(16)},
    }


@dataclass(frozen=True)
class Registry:
    """A running registry; ``host`` is what image names use, ``url`` its HTTP API."""

    config: Path
    storage: Path
    log: Path
    host: str = f"localhost:{ADDRESS[1]}"
    url: str = f"http://{ADDRESS[0]}:{ADDRESS[1]}"

    def api(self, path: str) -> Any:
        """GET ``/v2/...`` as JSON."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:
            return json.loads(resp.read())


def _answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


@contextmanager
def running_registry(workdir: Path) -> Iterator[Registry]:
    """``docker-registry serve`` on 127.0.0.1:5000 until the block ends. Hold
    :func:`workshop_lock` around it."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise FileNotFoundError(
            "docker-registry is not installed (Debian package docker-registry; "
            "scripts/setup/containers.sh installs it)"
        )
    ensure_free(ADDRESS[1], "the workshop's registry")
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    config.write_text(json.dumps(registry_config(storage), indent=2))  # JSON is YAML
    reg = Registry(config=config, storage=storage, log=workdir / "registry.log")
    with reg.log.open("w") as log:
        proc = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited with {proc.returncode}:\n"
                    + reg.log.read_text()[-3000:]
                )
            return _answers(f"{reg.url}/v2/")

        eventually(up, what="the registry's /v2/", within=30, every=0.2, ignoring=(OSError,))
        yield reg
    finally:
        stop_process(proc)
