"""A real ROAR server (``roar serve`` in a subprocess) on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.net import free_port

__all__ = ["RoarServer", "migrate", "roar_command"]


def roar_command() -> list[str]:
    return [sys.executable, "-m", "roar"]


def _clean_env() -> dict[str, str]:
    """This process's environment without ROAR's or MySQL's settings (each test sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("ROAR_", "MYSQL_"))}


def migrate(env: dict[str, str]) -> None:
    """``roar db upgrade --seed`` against the database ``env`` names."""
    subprocess.run(
        [*roar_command(), "db", "upgrade", "--seed"],
        env=_clean_env() | env,
        check=True,
        capture_output=True,
    )


@dataclass
class RoarServer:
    """``roar serve`` with the given environment; ``url`` is its base URL."""

    env: dict[str, str]
    log_path: Path
    workers: int = 1
    port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> RoarServer:
        env = (
            {k: v for k, v in os.environ.items() if not k.startswith(("ROAR_", "MYSQL_"))}
            | {"ROAR_LOG_FORMAT": "json"}
            | self.env
        )
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *roar_command(),
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                *self.args,
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"roar serve exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"roar serve did not answer within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def terminate(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.terminate()
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code
