"""Prometheus metrics. With several workers, prometheus-client's multiprocess mode is used:
``roar.server`` sets PROMETHEUS_MULTIPROC_DIR before any worker imports this module."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

__all__ = [
    "CONTENT_TYPE_LATEST",
    "DB_POOL_IN_USE",
    "DB_QUERY_SECONDS",
    "DB_UP",
    "IN_FLIGHT",
    "REQUESTS",
    "REQUEST_SECONDS",
    "SNAPSHOT_LOADED",
    "SNAPSHOT_TTL",
    "render",
    "set_build_info",
]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter("roar_http_requests", "HTTP requests answered", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "roar_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "roar_http_requests_in_flight", "HTTP requests being served", multiprocess_mode="livesum"
)
DB_POOL_IN_USE = Gauge(
    "roar_db_pool_connections_in_use",
    "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "roar_db_pool_size", "Database connections each worker keeps", multiprocess_mode="liveall"
)
DB_QUERY_SECONDS = Histogram(
    "roar_db_query_duration_seconds",
    "Database statement latency",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
)
#: Set by every round trip whose purpose is to reach the database: the agents snapshot's
#: background poll (every ROAR_CACHE_POLL_INTERVAL s) and each readiness check. 0 until the first.
DB_UP = Gauge(
    "roar_db_up",
    "1 when this worker's last database round trip succeeded, 0 when it failed",
    multiprocess_mode="livemin",
)
SNAPSHOT_LOADED = Gauge(
    "roar_agents_snapshot_loaded_timestamp_seconds",
    "Unix time the oldest worker's agents snapshot was read from the database",
    multiprocess_mode="livemin",
)
SNAPSHOT_TTL = Gauge(
    "roar_agents_snapshot_ttl_seconds",
    "The agents snapshot's freshness bound (ROAR_CACHE_TTL); 0 means no snapshot is kept",
    multiprocess_mode="livemax",
)
BUILD_INFO = Gauge(
    "roar_build_info",
    "Always 1; the labels say which ROAR build runs",
    ["version", "status_version", "flavor", "commit"],
    multiprocess_mode="max",
)


def set_build_info(*, version: str, status_version: str, flavor: str, commit: str) -> None:
    BUILD_INFO.labels(version, status_version, flavor, commit).set(1)


def render() -> bytes:
    """The exposition text, merged over all workers when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
