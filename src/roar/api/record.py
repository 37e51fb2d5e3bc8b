"""What every answer leaves behind: its request id, its metrics and its access-log line.

One place for both ways a request is answered (the FastAPI app behind
``roar.api.middleware.RequestMiddleware``, and the hot GETs of ``roar.api.fastpath``), so the two
count and log alike.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable
from typing import Any

from roar import metrics
from roar.logs import access_logger

__all__ = ["PROBE_PATHS", "Recorder", "request_id"]

#: Requests a scraper or the kubelet makes every few seconds: no access-log line by default.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-Id`` (the last one sent, cut to 64 characters), or a new id."""
    given = b""
    for name, value in headers:
        if name == b"x-request-id":
            given = value
    return given.decode("latin-1")[:64] or uuid.uuid4().hex


class Recorder:
    """Counts and logs answers as the settings say (``ROAR_ACCESS_LOG*``)."""

    def __init__(
        self, *, access_log: bool = True, sample: float = 1.0, probes: bool = False
    ) -> None:
        # Share of successful requests logged (0 with the access log off); errors always are.
        self.sample = sample if access_log else 0.0
        self.quiet_paths = frozenset() if probes else PROBE_PATHS
        # Label children, resolved once per (method, route, status): the hot path skips
        # prometheus_client's label lookup and its lock.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    def done(
        self,
        *,
        method: str,
        route: str,
        path: str,
        status: int,
        started: float,
        request_id: str,
    ) -> None:
        """Record one answer; ``route`` is the route template (label values must stay few)."""
        elapsed = time.perf_counter() - started
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = metrics.REQUESTS.labels(method, route, str(status))
            self._counters[(method, route, status)] = counter
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[(method, route)] = metrics.REQUEST_SECONDS.labels(method, route)
        counter.inc()
        timer.observe(elapsed)
        if status >= 400 or self._log_success(path):
            access_logger.info(
                "%s %s %s",
                method,
                path,
                status,
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )

    def _log_success(self, path: str) -> bool:
        if self.sample <= 0 or path in self.quiet_paths:
            return False
        return self.sample >= 1 or random.random() < self.sample
