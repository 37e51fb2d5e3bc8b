"""Prometheus metrics of the operator, on their own registry and port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["REGISTRY", "record_reconcile", "serve"]

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "roar_operator_reconciles",
    "Reconciles of a RoarApp, by result (ok, invalid, error)",
    ["result"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "roar_operator_reconcile_duration_seconds",
    "Seconds one reconcile of a RoarApp took",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
ERRORS = Counter(
    "roar_operator_errors",
    "API calls that failed during a reconcile, by kind of child",
    ["kind"],
    registry=REGISTRY,
)
WRITES = Counter(
    "roar_operator_child_writes",
    "Children created or patched (drift repaired), by kind and action",
    ["kind", "action"],
    registry=REGISTRY,
)
APPS = Gauge("roar_operator_apps", "RoarApps the operator is watching over", registry=REGISTRY)


def record_reconcile(result: str, seconds: float) -> None:
    RECONCILES.labels(result).inc()
    DURATION.observe(seconds)


def serve(host: str, port: int) -> None:
    """Serve /metrics from a daemon thread (prometheus-client's own server)."""
    start_http_server(port, addr=host, registry=REGISTRY)
