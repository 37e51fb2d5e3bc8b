"""One reconcile of one RoarApp, and the per-app loop that repeats it.

The order of a reconcile: map the spec (refuse a bad one), read the stable db passwords, apply
every child (create if absent, merge-patch if drifted, else no write), observe the workloads,
write the status if it changed. kopf's change handlers and the per-app resync daemon both call
:meth:`Controller.reconcile`; a lock per app keeps them from interleaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio import client

from roar.kube import labels as lb
from roar.kube import names
from roar.operator import metrics, reconcile
from roar.operator.apply import ApiException, Kube
from roar.operator.settings import OperatorSettings

__all__ = ["Controller", "ReconcileFailed"]

Obj = dict[str, Any]
Key = tuple[str, str]

#: Statuses that mean the object the operator built was refused: sending it again cannot help,
#: only a spec change can (which kopf delivers as an update).
REFUSED = {400, 422}


class ReconcileFailed(Exception):
    """Some children could not be applied; ``permanent`` when the API refused them."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _post(app: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
    """A Kubernetes Event on the RoarApp, through kopf's poster (a no-op outside kopf)."""
    with contextlib.suppress(LookupError):  # no operator context (unit tests)
        (kopf.info if kind == "Normal" else kopf.warn)(dict(app), reason=reason, message=message)


class Controller:
    """Holds the API client and the per-app locks and kicks; one per operator process."""

    def __init__(self, settings: OperatorSettings, api: client.ApiClient) -> None:
        self.settings = settings
        self.api = api
        self.kube = Kube(api)
        self._locks: weakref.WeakValueDictionary[Key, asyncio.Lock] = weakref.WeakValueDictionary()
        self._kicks: dict[Key, asyncio.Event] = {}

    async def close(self) -> None:
        await self.api.close()

    @property
    def watched(self) -> int:
        return len(self._kicks)

    async def reconcile(self, app: Mapping[str, Any], logger: logging.Logger | Any) -> Obj:
        """Bring one app's children to the desired state and write its status; returns it.

        Raises :class:`reconcile.InvalidSpec` (status says why) or :class:`ReconcileFailed`.
        """
        meta = app["metadata"]
        key = (meta["namespace"], meta["name"])
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            started = time.monotonic()
            try:
                status = await self._reconcile(app, logger)
            except reconcile.InvalidSpec:
                metrics.record_reconcile("invalid", time.monotonic() - started)
                raise
            except BaseException:
                metrics.record_reconcile("error", time.monotonic() - started)
                raise
            metrics.record_reconcile("ok", time.monotonic() - started)
            return status

    async def _reconcile(self, app: Mapping[str, Any], logger: Any) -> Obj:
        meta = app["metadata"]
        ns, name = meta["namespace"], meta["name"]
        try:
            spec = reconcile.to_roar_spec(app, self.settings)
        except reconcile.InvalidSpec as exc:
            status = reconcile.compute_status(
                app, None, reconcile.Observed(), now=_now(), invalid=str(exc)
            )
            await self._write_status(app, status)
            _post(app, "Warning", "InvalidSpec", str(exc))
            raise

        passwords = None
        if spec.external_db is None:
            secret = await self.kube.get("v1", "Secret", ns, names.db_secret_name(name))
            passwords = reconcile.passwords_from(secret)  # never logged

        errors: list[tuple[str, str]] = []
        statuses: list[int] = []
        for obj in reconcile.desired_objects(app, spec, passwords=passwords):
            what = f"{obj['kind']}/{obj['metadata']['name']}"
            try:
                action = await self.kube.ensure(obj)
            except ApiException as exc:
                metrics.ERRORS.labels(obj["kind"]).inc()
                errors.append((what, f"{exc.status} {exc.reason}"))
                statuses.append(exc.status)
                logger.warning("applying %s failed: %s %s", what, exc.status, exc.reason)
                continue
            if action != "unchanged":
                metrics.WRITES.labels(obj["kind"], action).inc()
                logger.info("%s %s", action, what)
                _post(app, "Normal", action.capitalize(), f"{action} {what}")

        observed = reconcile.Observed(
            deployment=await self.kube.get("apps/v1", "Deployment", ns, names.web_name(name)),
            statefulset=None
            if spec.external_db
            else await self.kube.get("apps/v1", "StatefulSet", ns, names.db_name(name)),
            pods=await self.kube.list("v1", "Pod", ns, lb.selector_labels(name, names.WEB)),
            errors=errors,
        )
        status = reconcile.compute_status(app, spec, observed, now=_now())
        await self._write_status(app, status)
        if errors:
            permanent = all(s in REFUSED for s in statuses)
            raise ReconcileFailed("; ".join(f"{w}: {m}" for w, m in errors), permanent=permanent)
        return status

    async def _write_status(self, app: Mapping[str, Any], status: Obj) -> None:
        old = app.get("status")
        if not reconcile.status_changed(old, status):
            return
        meta = app["metadata"]
        await self.kube.patch_app_status(meta["namespace"], meta["name"], status)
        was_ready = _ready(old)
        if _ready(status) != was_ready:
            cond = next(c for c in status["conditions"] if c["type"] == "Ready")
            _post(app, "Normal", cond["reason"], cond["message"])

    def kick(self, namespace: str, name: str) -> None:
        """Ask the app's loop for a reconcile soon (a child changed or vanished)."""
        event = self._kicks.get((namespace, name))
        if event is not None:
            event.set()

    async def watch_over(
        self, namespace: str, name: str, stopped: Any, logger: logging.Logger | Any
    ) -> None:
        """Reconcile one app whenever kicked, and every ``resync_seconds`` regardless, until
        ``stopped`` (kopf's daemon flag). Failures are logged and retried on the next round:
        the status already says what failed."""
        key = (namespace, name)
        kick = self._kicks.setdefault(key, asyncio.Event())
        metrics.APPS.set(len(self._kicks))
        try:
            while not stopped:
                try:
                    await asyncio.wait_for(kick.wait(), timeout=self.settings.resync_seconds)
                    # Collapse a burst (five pods becoming ready) into one reconcile.
                    await asyncio.sleep(self.settings.debounce_seconds)
                except TimeoutError:
                    pass
                kick.clear()
                if stopped:
                    break
                try:
                    app = await self.kube.get_app(namespace, name)
                    if app is None or app["metadata"].get("deletionTimestamp"):
                        break
                    await self.reconcile(app, logger)
                except (reconcile.InvalidSpec, ReconcileFailed) as exc:
                    logger.warning("resync: %s", exc)
                except (ApiException, aiohttp.ClientError, OSError) as exc:
                    logger.warning("resync: the API failed: %s", exc)
        finally:
            self._kicks.pop(key, None)
            metrics.APPS.set(len(self._kicks))


def _ready(status: Mapping[str, Any] | None) -> bool:
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False
