"""Names, ports, paths and variable names of ROAR's Kubernetes objects.

Everything here is a fact other places depend on (the Helm chart, the operator, the docs,
the workshop labs); change one only together with them.
"""

from __future__ import annotations

APP = "roar"
#: Image tag the manifests ship with; kept equal to the package and chart versions by a test.
DEFAULT_TAG = "0.2.0"
WEB_IMAGE = "roar-web"
#: MariaDB 11.8 plus ROAR's init SQL (images/db); a plain MariaDB image such as
#: UPSTREAM_DB_IMAGE works too because the web pod's init container migrates and seeds.
DB_IMAGE = "roar-db"
UPSTREAM_DB_IMAGE = "mariadb:11.4"
#: The workshop's local registry (lab 1 tags and pushes there). The kustomize base keeps the bare
#: names above as a template that every overlay rewrites with `images:`; what deploys as it is
#: (the chart's defaults, the operator and its default images) names the registry.
WORKSHOP_REGISTRY = "localhost:5000"
WORKSHOP_WEB_IMAGE = f"{WORKSHOP_REGISTRY}/{WEB_IMAGE}"
WORKSHOP_DB_IMAGE = f"{WORKSHOP_REGISTRY}/{DB_IMAGE}"

# Components (the value of app.kubernetes.io/component) and object-name suffixes.
WEB = "web"
DB = "db"

# Ports.
WEB_PORT = 8080
WEB_PORT_NAME = "http"
#: The workshop's web port. A NodePort of 8089 is outside the default node-port range
#: (30000-32767), so 8089 is the Service port and overlays pick an in-range nodePort.
WEB_SERVICE_PORT = 8089
DB_PORT = 3306
DB_PORT_NAME = "mysql"
#: The workshop's db Service name; ROAR finds it through MYSQL_HOST, not service-link variables.
WORKSHOP_DB_SERVICE = "mysql"

# HTTP paths.
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"
PAGE_PATH = "/roar/"

# Users: the web image runs as 10001; the MariaDB images' mysql user is 999.
WEB_UID = 10001
DB_UID = 999

# Shutdown: readiness fails for DRAIN seconds, then in-flight requests get GRACE seconds.
SHUTDOWN_DRAIN = 5
SHUTDOWN_GRACE = 20
#: Must exceed DRAIN + GRACE so the kubelet never kills a pod that is still draining.
WEB_TERMINATION_GRACE = 30

# Keys of the ConfigMap and the Secret (also the variable names both containers read).
MYSQL_DATABASE = "MYSQL_DATABASE"
MYSQL_USER = "MYSQL_USER"
MYSQL_PASSWORD = "MYSQL_PASSWORD"
MYSQL_ROOT_PASSWORD = "MYSQL_ROOT_PASSWORD"
MYSQL_HOST = "MYSQL_HOST"
MYSQL_TCP_PORT = "MYSQL_TCP_PORT"
DEFAULT_DATABASE = "registry"
DEFAULT_USER = "roar"

# The migration command, run once per pod start before web serves.
MIGRATE_COMMAND = ("roar", "db", "upgrade", "--seed")

#: Namespace whose pods (the ingress controller) may reach web on 8080.
DEFAULT_INGRESS_NAMESPACE = "ingress-nginx"


def web_name(instance: str) -> str:
    return f"{instance}-{WEB}"


def web_track_name(instance: str, track: str) -> str:
    """A web version's own Service (and Deployment, for all but the primary version)."""
    return f"{instance}-{WEB}-{track}"


def db_name(instance: str) -> str:
    return f"{instance}-{DB}"


def db_headless_name(instance: str) -> str:
    return f"{instance}-{DB}-headless"


def db_config_name(instance: str) -> str:
    return f"{instance}-db-config"


def db_secret_name(instance: str) -> str:
    return f"{instance}-db-credentials"
