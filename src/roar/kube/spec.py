"""The small typed spec the builders take."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from roar.kube import names

__all__ = [
    "ExternalDatabase",
    "Resources",
    "RoarSpec",
    "SecretKeyRef",
    "ServiceMonitor",
    "Track",
]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: A Prometheus duration as the Prometheus Operator's CRDs accept it (``30s``, ``1m``).
DURATION_PATTERN = r"^[0-9]+(ms|s|m|h)$"
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container (Kubernetes quantity strings)."""

    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = "1"
    memory_limit: str = "256Mi"

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


@dataclass(frozen=True)
class SecretKeyRef:
    """A key of an existing Secret."""

    name: str
    key: str


@dataclass(frozen=True)
class ExternalDatabase:
    """A MySQL/MariaDB that ROAR does not run; web reads where it is from an existing Secret.

    With ``url_key`` the Secret holds a full URL (``ROAR_DATABASE_URL``); otherwise it holds the
    host, user and password under the three ``*_key`` names, and the database name is the spec's.
    """

    secret: str
    url_key: str | None = None
    host_key: str = "host"
    user_key: str = "user"
    password_key: str = "password"
    port: int = 3306


@dataclass(frozen=True)
class ServiceMonitor:
    """A Prometheus Operator ServiceMonitor for web's /metrics (needs its CRD)."""

    interval: str = "30s"
    #: Labels the Prometheus selects ServiceMonitors by (e.g. ``release: kube-prometheus``).
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not re.match(DURATION_PATTERN, self.interval):
            raise ValueError(f"interval: {self.interval!r} is not a duration such as 30s")


@dataclass(frozen=True)
class Track:
    """One web version of several that run side by side behind the shared web Service (lab 8:
    Istio's DestinationRule subsets, Gateway API backends).

    Its pods, its Deployment's selector and its own Service select the pod label
    ``version: <label>`` as well, so the versions' Deployments never select each other's pods.
    """

    #: Value of the pod label ``version`` (the workshop's ``current`` and ``new``).
    label: str
    #: Short name (``v1``, ``v2``): the version's own Service is ``<instance>-web-<name>``, and
    #: so is its Deployment unless ``primary``.
    name: str
    #: The primary version keeps the plain ``<instance>-web`` Deployment name.
    primary: bool = False

    def __post_init__(self) -> None:
        for label, value in (("label", self.label), ("name", self.name)):
            if not _DNS_LABEL.match(value) or len(value) > 20:
                raise ValueError(f"track {label}: {value!r} is not a DNS label of at most 20 chars")


@dataclass(frozen=True)
class RoarSpec:
    """One ROAR installation: a web Deployment and a MariaDB StatefulSet.

    ``instance`` prefixes every object name and is the app.kubernetes.io/instance label.
    """

    instance: str = names.APP
    namespace: str = names.APP
    replicas: int = 2
    image: str = names.WEB_IMAGE
    tag: str = names.DEFAULT_TAG
    image_pull_policy: str = "IfNotPresent"
    flavor: Literal["v1", "v2"] = "v1"
    service_type: ServiceType = "ClusterIP"
    #: Only for NodePort/LoadBalancer; None lets Kubernetes pick one in its node-port range.
    node_port: int | None = None
    #: Horizontal autoscaling on CPU; when on, the Deployment leaves replicas to the HPA.
    autoscaling: bool = True
    max_replicas: int = 5
    target_cpu_percent: int = 70
    web_resources: Resources = field(default_factory=Resources)
    db_image: str = names.DB_IMAGE
    #: None means the web tag (the db image is built and tagged with web, see images/).
    db_tag: str | None = None
    db_storage_size: str = "1Gi"
    #: None uses the cluster's default StorageClass.
    db_storage_class: str | None = None
    db_resources: Resources = field(
        default_factory=lambda: Resources("100m", "256Mi", "1", "512Mi")
    )
    #: Name of the ClusterIP Service clients use; None means ``<instance>-mysql``.
    db_service_name: str | None = names.WORKSHOP_DB_SERVICE
    database: str = names.DEFAULT_DATABASE
    db_user: str = names.DEFAULT_USER
    #: When set, writes need this bearer token (ROAR_API_TOKEN from the Secret key).
    api_token_secret: SecretKeyRef | None = None
    ingress_namespace: str = names.DEFAULT_INGRESS_NAMESPACE
    #: When set, web uses this database and no MariaDB is built (the operator skips it).
    external_db: ExternalDatabase | None = None
    #: The StatefulSet's persistentVolumeClaimRetentionPolicy.whenDeleted; None leaves the
    #: field out (Kubernetes then retains the claim).
    db_claim_retention: Literal["Retain", "Delete"] | None = None
    log_format: Literal["json", "text"] = "json"
    #: When set, a ServiceMonitor lets a Prometheus Operator scrape web.
    service_monitor: ServiceMonitor | None = None
    #: When set, web is one of several versions side by side (see :class:`Track`); None is the
    #: one-version shape every other install uses.
    track: Track | None = None

    def __post_init__(self) -> None:
        for label, value in (("instance", self.instance), ("namespace", self.namespace)):
            if not _DNS_LABEL.match(value) or len(value) > 40:
                raise ValueError(f"{label}: {value!r} is not a DNS label of at most 40 chars")
        if self.replicas < 0:
            raise ValueError(f"replicas: must be >= 0, got {self.replicas}")
        if self.autoscaling and self.max_replicas < max(self.replicas, 1):
            raise ValueError("max_replicas: must be >= replicas")
        for label, tag in (("tag", self.tag), ("db_tag", self.db_tag)):
            if tag is not None and (not tag or tag == "latest"):
                raise ValueError(f"{label}: pin a version, not {tag!r}")
        if self.node_port is not None:
            if self.service_type == "ClusterIP":
                raise ValueError("node_port: needs service_type NodePort or LoadBalancer")
            if not 1 <= self.node_port <= 65535:
                raise ValueError(f"node_port: {self.node_port} is not a port")

    @property
    def web_image_ref(self) -> str:
        return f"{self.image}:{self.tag}"

    @property
    def db_image_ref(self) -> str:
        # An image that already names its tag (e.g. mariadb:11.4) is used as given.
        if ":" in self.db_image.rsplit("/", 1)[-1]:
            return self.db_image
        return f"{self.db_image}:{self.db_tag or self.tag}"

    @property
    def db_service(self) -> str:
        return self.db_service_name or f"{self.instance}-mysql"
