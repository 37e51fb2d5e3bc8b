"""Debian's Prometheus and Alertmanager on 127.0.0.1 (scripts/setup/monitoring.sh installs them),
a webhook receiver for Alertmanager's notifications, and the few API calls the tests make."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from support.net import free_port
from support.wait import eventually  # re-exported: older tests import it from here

__all__ = ["Alertmanager", "Prometheus", "Webhook", "binary", "eventually"]


def binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if not found:
        raise RuntimeError(f"{name} not found: run scripts/setup/monitoring.sh")
    return found


@dataclass
class _Server:
    """One server process with a data directory, answering on 127.0.0.1:port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"

    def _start(self, cmd: list[str], ready_path: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited:\n{self.log.read_text()[-3000:]}")
            try:
                return httpx.get(self.url + ready_path, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(ready, what=f"{cmd[0]} to be ready", within=30, every=0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@dataclass
class Prometheus(_Server):
    """``prometheus`` with the given configuration (a dict, written as YAML)."""

    #: Another build than Debian's (which has no Kubernetes service discovery).
    executable: str = ""

    def start(self, config: dict[str, Any]) -> Prometheus:
        path = self.workdir / "prometheus.yml"
        self.workdir.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._start(
            [
                self.executable or binary("prometheus"),
                f"--config.file={path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            "/-/ready",
        )
        return self

    def api(self, path: str, **params: str) -> Any:
        reply = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = reply.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (an error fails the test)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result if data["resultType"] == "vector" else [{"value": result}]

    def targets_up(self) -> list[dict[str, Any]]:
        return [t for t in self.api("targets")["activeTargets"] if t["health"] == "up"]

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]


@dataclass
class Alertmanager(_Server):
    """``prometheus-alertmanager`` (Debian's name) without clustering."""

    def start(self, config: dict[str, Any]) -> Alertmanager:
        path = self.workdir / "alertmanager.yml"
        self.workdir.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._start(
            [
                binary("prometheus-alertmanager"),
                f"--config.file={path}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                # No gossip mesh: it would listen on every interface.
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            "/-/ready",
        )
        return self


class Webhook:
    """A tiny HTTP server that keeps every JSON body POSTed to it (Alertmanager's webhook)."""

    def __init__(self) -> None:
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                received.put(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    @contextmanager
    def running(self) -> Iterator[Webhook]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=10)

    def next(self, timeout: float) -> dict[str, Any]:
        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no notification within {timeout:g} s") from None
