"""Names of the series that the rules and the dashboard query.

ROAR's own series are derived from the metric objects (a counter ``x`` is exposed as
``x_total``, a histogram as ``x_bucket``/``x_sum``/``x_count``), so each name is written once,
where the metric is defined. Series of other exporters that the rules read are named here.
"""

from __future__ import annotations

from prometheus_client.metrics import MetricWrapperBase

from roar import metrics
from roar.kube import names
from roar.operator import metrics as operator_metrics

__all__ = [
    "BUILD_INFO",
    "DB_POOL_IN_USE",
    "DB_POOL_SIZE",
    "DB_QUERY_BUCKET",
    "DB_UP",
    "HTTP_DURATION_BUCKET",
    "HTTP_REQUESTS",
    "OPERATOR_APPS",
    "OPERATOR_DURATION_BUCKET",
    "OPERATOR_ERRORS",
    "OPERATOR_RECONCILES",
    "OPERATOR_WRITES",
    "OPS_ROUTES",
    "POD_RESTARTS",
    "SNAPSHOT_LOADED",
    "SNAPSHOT_TTL",
]


def _name(metric: MetricWrapperBase) -> str:
    return next(iter(metric.describe())).name


def _total(counter: MetricWrapperBase) -> str:
    return f"{_name(counter)}_total"


def _bucket(histogram: MetricWrapperBase) -> str:
    return f"{_name(histogram)}_bucket"


HTTP_REQUESTS = _total(metrics.REQUESTS)
HTTP_DURATION_BUCKET = _bucket(metrics.REQUEST_SECONDS)
DB_POOL_IN_USE = _name(metrics.DB_POOL_IN_USE)
DB_POOL_SIZE = _name(metrics.DB_POOL_SIZE)
DB_QUERY_BUCKET = _bucket(metrics.DB_QUERY_SECONDS)
DB_UP = _name(metrics.DB_UP)
SNAPSHOT_LOADED = _name(metrics.SNAPSHOT_LOADED)
SNAPSHOT_TTL = _name(metrics.SNAPSHOT_TTL)
BUILD_INFO = _name(metrics.BUILD_INFO)

OPERATOR_RECONCILES = _total(operator_metrics.RECONCILES)
OPERATOR_DURATION_BUCKET = _bucket(operator_metrics.DURATION)
OPERATOR_ERRORS = _total(operator_metrics.ERRORS)
OPERATOR_WRITES = _total(operator_metrics.WRITES)
OPERATOR_APPS = _name(operator_metrics.APPS)

#: Probe and scrape endpoints: answered for the platform, not for users, so the availability
#: SLI leaves them out (a failing /readyz during an outage is the probe doing its job).
OPS_ROUTES = (names.LIVENESS_PATH, names.READINESS_PATH, names.METRICS_PATH)

#: kube-state-metrics' restart counter (kube-prometheus ships it); the only series the rules
#: read that ROAR does not expose.
POD_RESTARTS = "kube_pod_container_status_restarts_total"
