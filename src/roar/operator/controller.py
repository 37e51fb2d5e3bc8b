"""One reconcile of one RoarApp, and the per-app loop that repeats it.

The order of a reconcile: map the spec (refuse a bad one), read the stable db passwords,
server-side apply every child (the API server writes only what differs), delete the
NetworkPolicies turned off, observe the workloads, write the status if it changed. kopf's
change handlers and the per-app resync daemon both call :meth:`Controller.reconcile`; a lock
per app keeps them from interleaving.
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

from roar.kube import builders, names
from roar.kube import labels as lb
from roar.kube.spec import RoarSpec
from roar.operator import metrics, reconcile
from roar.operator import settings as st
from roar.operator.apply import ApiException, Kube, Seen
from roar.operator.settings import OperatorSettings

__all__ = ["Controller", "ReconcileFailed"]

Obj = dict[str, Any]
#: (namespace, name) of a RoarApp; (kind, name) of one of its children.
Key = tuple[str, str]
ChildKey = tuple[str, str]

NETPOL_API = "networking.k8s.io/v1"
BATCH_API = "batch/v1"

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
        # kopf only reads the mapping; its annotation names its own read-only view, kopf.Body.
        post = kopf.info if kind == "Normal" else kopf.warn
        post(dict(app), reason=reason, message=message)  # type: ignore[arg-type]


class Controller:
    """Holds the API client and the per-app locks and kicks; one per operator process."""

    def __init__(self, settings: OperatorSettings, api: client.ApiClient) -> None:
        self.settings = settings
        self.api = api
        self.kube = Kube(api)
        self._locks: weakref.WeakValueDictionary[Key, asyncio.Lock] = weakref.WeakValueDictionary()
        self._kicks: dict[Key, asyncio.Event] = {}
        #: Per app, each child as last seen: the "before" of its next apply.
        self._seen: dict[Key, dict[ChildKey, Seen | None]] = {}
        #: Per app, the generation whose unwanted NetworkPolicies are known to be gone.
        self._pruned: dict[Key, int | None] = {}

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
            await self._write_status(app, status)  # posts the Warning when it is news
            raise

        seen = self._seen.setdefault((ns, name), {})
        passwords = None
        if spec.external_db is None:
            secret = await self.kube.get("v1", "Secret", ns, names.db_secret_name(name))
            passwords = reconcile.passwords_from(secret)  # never logged
            # This read doubles as the Secret's "before" for its apply.
            seen[("Secret", names.db_secret_name(name))] = Seen.of(secret)

        desired = reconcile.desired_objects(app, spec, passwords=passwords)
        live, errors, statuses = await self._apply_all(app, desired, seen, logger)
        try:
            await self._prune(app, spec, desired, logger)
        except ApiException as exc:
            errors.append(("pruning", f"deleting: {exc.status} {exc.reason}"))
            statuses.append(exc.status)

        observed = reconcile.Observed(
            deployment=await self._observe(ns, "Deployment", names.web_name(name), live),
            statefulset=None
            if spec.external_db
            else await self._observe(ns, "StatefulSet", names.db_name(name), live),
            cronjob=live.get(("CronJob", builders.backup_name(name))),
            pods=await self.kube.list("v1", "Pod", ns, lb.selector_labels(name, names.WEB)),
            errors=errors,
        )
        status = reconcile.compute_status(app, spec, observed, now=_now())
        await self._write_status(app, status)
        if errors:
            permanent = all(s in REFUSED for s in statuses)
            raise ReconcileFailed("; ".join(f"{w}: {m}" for w, m in errors), permanent=permanent)
        return status

    async def _apply_all(
        self, app: Mapping[str, Any], desired: list[Obj], seen: dict[ChildKey, Seen | None],
        logger: Any,
    ) -> tuple[dict[ChildKey, Obj], list[tuple[str, str]], list[int]]:  # fmt: skip
        """Apply every child in order; returns what the API stored, and the failures."""
        live: dict[ChildKey, Obj] = {}
        errors: list[tuple[str, str]] = []
        statuses: list[int] = []
        for obj in desired:
            key: ChildKey = (obj["kind"], obj["metadata"]["name"])
            try:
                applied = await self.kube.apply(obj, seen.get(key))
            except ApiException as exc:
                what = f"{key[0]}/{key[1]}"
                metrics.ERRORS.labels(obj["kind"]).inc()
                errors.append((what, f"{exc.status} {exc.reason}"))
                statuses.append(exc.status)
                logger.warning("applying %s failed: %s %s", what, exc.status, exc.reason)
                seen.pop(key, None)
                continue
            live[key] = applied.live
            seen[key] = Seen.of(applied.live)
            if applied.action != "unchanged":
                self._changed(app, key, applied.action, logger)
        return live, errors, statuses

    async def _observe(
        self, namespace: str, kind: str, name: str, live: Mapping[ChildKey, Obj]
    ) -> Obj | None:
        # The apply's answer is the child as stored, status included: no second read.
        return live.get((kind, name)) or await self.kube.get("apps/v1", kind, namespace, name)

    async def _prune(
        self, app: Mapping[str, Any], spec: RoarSpec, desired: list[Obj], logger: Any
    ) -> None:
        """Delete the children the app no longer wants: NetworkPolicies (turned off, or the
        db's after a switch to an external database) and the backup CronJob (spec.backup
        removed; its PVC stays, with the dumps). Skipped when it wants all of them, and after
        one pass per generation: only the operator creates them, so none reappears between."""
        meta = app["metadata"]
        key = (meta["namespace"], meta["name"])
        keep = {o["metadata"]["name"] for o in desired if o["kind"] == "NetworkPolicy"}
        every = {p["metadata"]["name"] for p in builders.build_network_policies(spec)}
        backup = any(o["kind"] == "CronJob" for o in desired)
        if (keep == every and backup) or self._pruned.get(key) == meta.get("generation"):
            return
        if not backup:
            await self._delete_backup(app, logger)
        if keep != every:
            await self._prune_network_policies(app, keep, logger)
        self._pruned[key] = meta.get("generation")

    async def _delete_backup(self, app: Mapping[str, Any], logger: Any) -> None:
        meta = app["metadata"]
        ns, name = meta["namespace"], builders.backup_name(meta["name"])
        cronjob = await self.kube.get(BATCH_API, "CronJob", ns, name)
        if cronjob is None or not _controlled_by(cronjob, meta["uid"]):
            return
        await self.kube.delete(BATCH_API, "CronJob", ns, name, cronjob["metadata"]["uid"])
        self._seen.get((ns, meta["name"]), {}).pop(("CronJob", name), None)
        self._changed(app, ("CronJob", name), "deleted", logger)

    async def _prune_network_policies(
        self, app: Mapping[str, Any], keep: set[str], logger: Any
    ) -> None:
        meta = app["metadata"]
        key = (meta["namespace"], meta["name"])
        selector = {lb.INSTANCE: key[1], lb.MANAGED_BY: st.MANAGED_BY}
        for policy in await self.kube.list(NETPOL_API, "NetworkPolicy", key[0], selector):
            pmeta = policy["metadata"]
            if pmeta["name"] in keep or not _controlled_by(policy, meta["uid"]):
                continue
            await self.kube.delete(NETPOL_API, "NetworkPolicy", key[0], pmeta["name"], pmeta["uid"])
            self._seen.get(key, {}).pop(("NetworkPolicy", pmeta["name"]), None)
            self._changed(app, ("NetworkPolicy", pmeta["name"]), "deleted", logger)

    def _changed(self, app: Mapping[str, Any], key: ChildKey, action: str, logger: Any) -> None:
        """A write that changed a child: counted, logged and posted (never for a no-op)."""
        what = f"{key[0]}/{key[1]}"
        metrics.WRITES.labels(key[0], action).inc()
        logger.info("%s %s", action, what)
        _post(app, "Normal", action.capitalize(), f"{action} {what}")

    async def _write_status(self, app: Mapping[str, Any], status: Obj) -> None:
        old = app.get("status")
        if not reconcile.status_changed(old, status):
            return
        meta = app["metadata"]
        await self.kube.patch_app_status(meta["namespace"], meta["name"], status)
        for kind, reason, message in reconcile.status_events(old, status):
            _post(app, kind, reason, message)

    def saw(self, namespace: str, instance: str, kind: str, body: Mapping[str, Any]) -> None:
        """Note a child's latest state from a watch event, so the next apply's precondition is
        current and needs no conflict round trip (a stale one costs only that round trip)."""
        seen = self._seen.get((namespace, instance))
        if seen is not None:
            seen[(kind, body["metadata"]["name"])] = Seen.of(body)

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
            self._seen.pop(key, None)
            self._pruned.pop(key, None)
            metrics.APPS.set(len(self._kicks))


def _controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return any(r.get("controller") and r.get("uid") == uid for r in refs)
