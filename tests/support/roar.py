"""A real ROAR server (``roar serve`` in a subprocess) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.net import free_port
from support.wait import eventually

__all__ = [
    "RoarServer",
    "clean_env",
    "clear_settings",
    "embedded_server",
    "migrate",
    "roar_command",
    "run_roar",
]

#: The variables ROAR's settings read; every test sets its own.
SETTING_PREFIXES = ("ROAR_", "MYSQL_")


def roar_command() -> list[str]:
    return [sys.executable, "-m", "roar"]


def clean_env() -> dict[str, str]:
    """This process's environment without ROAR's or MySQL's settings (each test sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}


def clear_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset ROAR's and MySQL's variables in this process for one test (in-process Settings)."""
    for key in list(os.environ):
        if key.startswith(SETTING_PREFIXES):
            monkeypatch.delenv(key)


def run_roar(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``roar ARGS`` in a subprocess with only ``env``'s settings; output captured as text."""
    return subprocess.run(
        [*roar_command(), *args],
        capture_output=True,
        text=True,
        env=clean_env() | (env or {}),
        input=stdin,
        timeout=timeout,
    )


def migrate(env: dict[str, str]) -> None:
    """``roar db upgrade --seed`` against the database ``env`` names."""
    subprocess.run(
        [*roar_command(), "db", "upgrade", "--seed"],
        env=clean_env() | env,
        check=True,
        capture_output=True,
    )


def embedded_server(
    tmp: pytest.TempPathFactory, name: str, env: dict[str, str] | None = None
) -> RoarServer:
    """A started ROAR on its own embedded SQLite database (``roar serve`` migrates and seeds
    it), logging to a file named after ``name``; the caller stops it."""
    data = {"ROAR_DATA_DIR": str(tmp.mktemp(f"{name}-data"))}
    log = tmp.mktemp("logs") / f"{name}.log"
    return RoarServer(env=data | (env or {}), log_path=log).start()


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
        env = clean_env() | {"ROAR_LOG_FORMAT": "json"} | self.env
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
            # A process group of its own: stop() can end the workers too, should the
            # supervisor die first (a worker left running skews every later measurement).
            start_new_session=True,
        )
        proc = self.proc

        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"roar serve exited with {proc.returncode}:\n{self.log_tail()}")
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

        try:
            what = "roar serve to answer /healthz"
            eventually(healthy, what=what, within=timeout, every=0.1, ignoring=(httpx.HTTPError,))
        except AssertionError:
            self.stop()
            raise RuntimeError(
                f"roar serve did not answer within {timeout}s:\n{self.log_tail()}"
            ) from None
        return self

    def access_log(self) -> list[dict[str, Any]]:
        """The access-log entries written so far (the log is JSON: ROAR_LOG_FORMAT=json). Lines
        leave in batches a moment after their answers (roar.logs): wait for the ones you need."""
        lines = self.log_path.read_text().splitlines()
        entries = (json.loads(line) for line in lines if line.startswith("{"))
        return [e for e in entries if e.get("logger") == "roar.access"]

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
        with contextlib.suppress(ProcessLookupError):  # the group is gone: nothing outlived it
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
        return code
