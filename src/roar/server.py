"""Running ROAR: uvicorn workers sharing one listening socket, with graceful shutdown.

Shutdown, as podinfo does it and Kubernetes expects: on SIGTERM readiness turns 503 at once while
the server keeps serving for ``shutdown_drain`` seconds (endpoints controllers and load balancers
stop sending traffic), then the listener closes and in-flight requests get ``shutdown_grace``
seconds to finish. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.context import ForkProcess
from types import FrameType
from typing import Any

import uvicorn

from roar.config import Settings
from roar.counter import SharedWriteCounter, WriteCounter, shared_slots
from roar.logs import configure_logging, flush_logs

__all__ = ["serve"]

log = logging.getLogger("roar.server")

#: A worker that exits sooner than this after its start is failing, not crashing once.
_MIN_WORKER_LIFETIME = 5.0
#: Seconds an idle keep-alive connection stays open. Longer than the idle timeouts of what sits
#: in front (ingress-nginx and cloud load balancers 60 s, httpx's pool 5 s), so that they drop an
#: idle connection first: with uvicorn's default 5 s the server closed connections that a proxy
#: or client was just reusing, and that request failed (a reset; a 502 or 503 from a proxy).
_KEEP_ALIVE = 75


class _DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM only marks the app not ready, for a while."""

    def __init__(self, config: uvicorn.Config, drain: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._draining = False

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the signal after its graceful shutdown, so the process would die
        # "killed by SIGTERM" (exit 143). A graceful stop is a success: exit 0 instead.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self._drain <= 0:
            self._mark_draining()
            super().handle_exit(sig, frame)
            return
        self._mark_draining()
        log.info("stop requested: readiness is 503; closing in %.1fs", self._drain)
        timer = threading.Timer(self._drain, lambda: setattr(self, "should_exit", True))
        timer.daemon = True
        timer.start()

    def _mark_draining(self) -> None:
        self._draining = True
        app = self.config.app
        if hasattr(app, "state"):
            app.state.draining = True


def _uvicorn_config(
    settings: Settings, counter: WriteCounter | None = None, *, prune_log: bool = True
) -> uvicorn.Config:
    _without_pydantic_v1()
    from roar.api.app import create_app
    from roar.api.fastpath import serving
    from roar.httpproto import OneWriteHttpToolsProtocol

    return uvicorn.Config(
        serving(create_app(settings, counter=counter, prune_log=prune_log)),
        http=OneWriteHttpToolsProtocol,
        ws="none",  # ROAR serves no WebSocket; "auto" would import a WebSocket library
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace) or None,
        timeout_keep_alive=_KEEP_ALIVE,
        lifespan="on",
    )


def _run_worker(overrides: dict[str, Any], sock: socket.socket, slots: Any, slot: int) -> None:
    settings = Settings(**overrides)
    configure_logging(fmt=settings.log_format.value, level=settings.log_level)
    # The parent forwards SIGINT as SIGTERM; a terminal's Ctrl-C must not hit workers twice.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One worker per server prunes the database's change log (roar.cache).
    config = _uvicorn_config(settings, SharedWriteCounter(slots, slot), prune_log=slot == 0)
    server = _DrainingServer(config, settings.shutdown_drain)
    try:
        server.run(sockets=[sock])
    finally:
        flush_logs()


def serve(settings: Settings, overrides: dict[str, Any]) -> int:
    """Serve until stopped; returns the exit code (0 after a graceful stop)."""
    if settings.workers == 1:
        server = _DrainingServer(_uvicorn_config(settings), settings.shutdown_drain)
        server.run()
        return 0 if server.started else 1
    return _Supervisor(settings, overrides).run()


class _Supervisor:
    """Runs N worker processes on one socket; replaces a worker that dies, forwards signals."""

    def __init__(self, settings: Settings, overrides: dict[str, Any]) -> None:
        self.settings = settings
        self.overrides = overrides
        self.stopping = False
        # Forked, not spawned: the workers share the pages of what run() imports before it
        # starts them, instead of each importing its own copy (docs/benchmarks.md, memory).
        self.ctx = multiprocessing.get_context("fork")
        # The write counter all workers share (roar.counter): a slot per worker, which a
        # replacement worker takes over.
        self.slots = shared_slots(self.ctx, settings.workers)

    def run(self) -> int:
        # Metrics from all workers are merged through files in this directory, named by
        # prometheus_client's own variable, which the forked workers inherit: the one variable
        # outside the settings classes (written only here, read only by roar.metrics).
        metrics_dir = tempfile.mkdtemp(prefix="roar-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        _preload(self.settings, metrics_dir)
        sock = _bind(self.settings.host, self.settings.port)
        workers = [self._start(sock, slot) for slot in range(self.settings.workers)]
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal(workers, sock))
        started = {proc.pid: time.monotonic() for proc in workers}
        while not self.stopping:
            for i, proc in enumerate(workers):
                if proc.is_alive() or self.stopping:
                    continue
                _remove_metrics_of(metrics_dir, proc.pid)
                if time.monotonic() - started.pop(proc.pid, 0) < _MIN_WORKER_LIFETIME:
                    # Dying right after start is a configuration or code fault that a
                    # restart will not mend: stop everything and say so.
                    log.error(
                        "worker %d failed at start (exit %s); stopping", proc.pid, proc.exitcode
                    )
                    self._on_signal(workers, sock)(signal.SIGTERM, None)
                    for other in workers:
                        other.join()
                    return 1
                log.error("worker %d exited with %s; starting another", proc.pid, proc.exitcode)
                workers[i] = self._start(sock, i)
                started[workers[i].pid] = time.monotonic()
            time.sleep(0.2)
        for proc in workers:
            proc.join()
        # A worker killed by our SIGTERM before its own handlers were installed had not begun
        # serving (a worker that serves handles SIGTERM): nothing was lost, so it counts as clean.
        clean = (0, -signal.SIGTERM)
        return 0 if all(proc.exitcode in clean for proc in workers) else 1

    def _start(self, sock: socket.socket, slot: int) -> ForkProcess:
        proc = self.ctx.Process(
            target=_run_worker, args=(self.overrides, sock, self.slots, slot), daemon=False
        )
        proc.start()
        return proc

    def _on_signal(
        self, workers: list[ForkProcess], sock: socket.socket
    ) -> Callable[[int, FrameType | None], None]:
        def handler(sig: int, _frame: FrameType | None) -> None:
            self.stopping = True
            # The workers close their listeners when their drain ends; this process's copy
            # must not keep the port accepting connections that nobody will serve.
            sock.close()
            for proc in workers:
                if proc.is_alive() and proc.pid:
                    os.kill(proc.pid, signal.SIGTERM)

        return handler


def _preload(settings: Settings, metrics_dir: str) -> None:
    """Import what every worker runs, before the workers are forked: they share these pages
    (copy-on-write) and start without importing. After PROMETHEUS_MULTIPROC_DIR is set, so that
    prometheus_client is imported in its multi-process mode."""
    from sqlalchemy.engine import make_url

    _without_pydantic_v1()
    for module in ("roar.api.app", "roar.api.fastpath", "roar.httpproto"):
        importlib.import_module(module)
    make_url(settings.resolved_database_url).get_dialect().import_dbapi()
    # Importing the metrics wrote this process's live gauges (0) beside the workers' own; the
    # supervisor answers nothing, and roar_db_up (a minimum over processes) must not see them.
    _remove_metrics_of(metrics_dir, os.getpid())
    # Objects that survive to here live as long as the workers: the collector leaves them alone,
    # so it does not write to (and so copy) the shared pages. No collection first: after these
    # imports it finds nothing to free and costs about 30 ms of every start.
    gc.freeze()


def _without_pydantic_v1() -> None:
    """Keep ``pydantic.v1`` out of a server process (about 1.5 MB and 15 ms of every start).

    FastAPI asks of every route's parameter and response types whether they are pydantic v1
    models, and to ask it imports ``pydantic.v1``, a second copy of pydantic. ROAR has no v1
    model, and none can exist in a process that never imported that package; with the import
    blocked, FastAPI's check takes its ImportError branch and answers no (the fix proposed
    upstream in fastapi#16374 tests for the package in ``sys.modules`` instead). A process that
    has imported it already (a test run) keeps it."""
    sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]  # None: "not importable"


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on (the kernel spreads connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _remove_metrics_of(directory: str, pid: int | None) -> None:
    from prometheus_client import multiprocess

    if pid:
        multiprocess.mark_process_dead(pid, directory)
