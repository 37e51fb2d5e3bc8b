"""Starting the operator: settings and API client first, then kopf with them in its memo."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from pathlib import Path
from typing import Any

import kopf

from roar.operator import apply, metrics
from roar.operator.controller import Controller
from roar.operator.settings import OperatorSettings

__all__ = ["operate", "run"]

log = logging.getLogger("roar.operator")

#: What kopf accepts as stop/ready flags (asyncio or threading events, futures).
Flag = asyncio.Event | asyncio.Future[Any] | threading.Event | concurrent.futures.Future[Any]


async def operate(
    settings: OperatorSettings,
    *,
    stop_flag: Flag | None = None,
    ready_flag: Flag | None = None,
    serve_metrics: bool = True,
) -> None:
    """Run the operator in the current event loop until ``stop_flag`` is set (or a signal)."""
    from roar.operator import handlers  # noqa: F401  (registers the handlers with kopf)

    api, own_namespace = await apply.connect(settings.kubeconfig)
    controller = Controller(settings, api)
    if settings.all_namespaces:
        namespaces: list[str] = []
    else:
        namespaces = settings.namespaces or [own_namespace or "default"]
    log.info("watching %s", "all namespaces" if settings.all_namespaces else namespaces)

    async def login() -> kopf.ConnectionInfo:
        return await apply.connection_info(api, namespaces[0] if namespaces else own_namespace)

    if serve_metrics and settings.metrics_port:
        metrics.serve(settings.metrics_host, settings.metrics_port)
    try:
        await kopf.operator(
            # One replica, no peering: the Deployment uses the Recreate strategy, so two
            # operators never run at once and the kopfpeerings CRD and its RBAC are not needed.
            standalone=True,
            clusterwide=settings.all_namespaces,
            namespaces=namespaces,
            liveness_endpoint=settings.liveness_endpoint,
            memo=kopf.Memo(roar_controller=controller, roar_login=login),
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        await controller.close()


def run(
    kubeconfig: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
    *,
    metrics_host: str | None = None,
    metrics_port: int | None = None,
    liveness: str | None = None,
    verbose: bool = False,
) -> None:
    """Run the operator until SIGINT/SIGTERM. Arguments left None come from ROAR_OPERATOR_*."""
    overrides: dict[str, Any] = {
        "kubeconfig": Path(kubeconfig) if kubeconfig else None,
        "namespaces": [namespace] if namespace else None,
        "all_namespaces": all_namespaces or None,
        "metrics_host": metrics_host,
        "metrics_port": metrics_port,
        "liveness_endpoint": liveness,
    }
    settings = OperatorSettings(**{k: v for k, v in overrides.items() if v is not None})
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.PLAIN)
    asyncio.run(operate(settings))
