"""The operator's constants and its one settings class (env prefix ``ROAR_OPERATOR_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from roar.kube import names

__all__ = [
    "FIELD_MANAGER",
    "GROUP",
    "KIND",
    "MANAGED_BY",
    "PLURAL",
    "VERSION",
    "OperatorSettings",
]

GROUP = "app.example.com"
VERSION = "v1alpha1"
PLURAL = "roarapps"
KIND = "RoarApp"
API_VERSION = f"{GROUP}/{VERSION}"

#: The fieldManager of every write, so `kubectl get --show-managed-fields` names the operator.
FIELD_MANAGER = "roar-operator"
#: app.kubernetes.io/managed-by on every child; the child watches select on it.
MANAGED_BY = "roar-operator"

# Condition types and the reasons the operator writes (status.conditions).
READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"


class OperatorSettings(BaseSettings):
    """Every setting of ``roar operator run``; each field is ``ROAR_OPERATOR_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="ROAR_OPERATOR_", extra="ignore", frozen=True)

    #: kubeconfig file; None means in-cluster (the pod's ServiceAccount), else ~/.kube/config.
    kubeconfig: Path | None = None
    #: Namespaces to watch; empty with ``all_namespaces`` false means the kubeconfig's namespace.
    namespaces: list[str] = Field(default_factory=list)
    all_namespaces: bool = False
    #: Prometheus metrics; 127.0.0.1 locally, the pod sets 0.0.0.0.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(8090, ge=0, le=65535)
    #: kopf's liveness endpoint (``@kopf.on.probe``); None turns it off.
    liveness_endpoint: str | None = "http://127.0.0.1:8091/healthz"
    #: Seconds between full re-applies of every RoarApp (the safety net behind child watches).
    resync_seconds: float = Field(30.0, gt=0)
    #: Seconds a burst of child events is collapsed into one reconcile.
    debounce_seconds: float = Field(0.5, ge=0)
    #: Images used when a RoarApp leaves them out.
    web_image: str = names.WORKSHOP_WEB_IMAGE
    db_image: str = names.WORKSHOP_DB_IMAGE
    default_tag: str = names.DEFAULT_TAG
