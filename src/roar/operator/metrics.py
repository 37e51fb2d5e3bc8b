"""Prometheus metrics of the operator, on their own registry and port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["REGISTRY", "record_reconcile", "record_request", "serve"]

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
    # Fine below 2.5 s, where reconciles of a healthy app fall, so quantiles mean something.
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.35, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30),
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
    "Writes that changed a child, by kind and action (created, updated, deleted, upgraded); "
    "an apply the API server found to be a no-op is not counted",
    ["kind", "action"],
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "roar_operator_api_requests",
    "Requests the reconciler sent to the Kubernetes API (kopf's watches and Events excluded), "
    "by verb (get, list, apply, patch, delete) and result (2xx or the HTTP status)",
    ["verb", "code"],
    registry=REGISTRY,
)
APPS = Gauge("roar_operator_apps", "RoarApps the operator is watching over", registry=REGISTRY)


def record_reconcile(result: str, seconds: float) -> None:
    RECONCILES.labels(result).inc()
    DURATION.observe(seconds)


def record_request(verb: str, code: str) -> None:
    API_REQUESTS.labels(verb, code).inc()


def serve(host: str, port: int) -> None:
    """Serve /metrics from a daemon thread (prometheus-client's own server)."""
    start_http_server(port, addr=host, registry=REGISTRY)
