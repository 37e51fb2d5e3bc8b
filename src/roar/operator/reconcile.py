"""Pure functions: a RoarApp in, desired children and status out.

Nothing here talks to the API. The children come from the same builders the kustomize base is
rendered from (:mod:`roar.kube.builders`); this module only maps the RoarApp spec onto
:class:`~roar.kube.spec.RoarSpec` and adds what belongs to the operator (owner references, the
managed-by label, the generated Secret, NetworkPolicies fitted to the app's Service and database).
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from roar.kube import builders, names
from roar.kube import labels as lb
from roar.kube.spec import ExternalDatabase, Resources, RoarSpec, SecretKeyRef, ServiceMonitor
from roar.operator import settings as st

__all__ = [
    "Backup",
    "InvalidSpec",
    "Observed",
    "backup_of",
    "compute_status",
    "desired_objects",
    "generate_password",
    "network_policies",
    "network_policies_enabled",
    "owner_reference",
    "passwords_from",
    "serving_version",
    "status_events",
    "to_roar_spec",
]

Obj = dict[str, Any]


class InvalidSpec(ValueError):
    """The RoarApp asks for something the builders refuse; the message names the field."""


@dataclass(frozen=True)
class Observed:
    """What the operator saw of an app's children after applying them."""

    deployment: Mapping[str, Any] | None = None
    statefulset: Mapping[str, Any] | None = None
    #: The backup CronJob as stored (its status has the last backup times); None without one.
    cronjob: Mapping[str, Any] | None = None
    pods: Sequence[Mapping[str, Any]] = ()
    #: Failures while applying, as (object, message); they make the app Degraded.
    errors: Sequence[tuple[str, str]] = field(default_factory=tuple)


def _get(obj: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return default
        obj = obj[key]
    return obj


def _resources(raw: Mapping[str, Any] | None, default: Resources) -> Resources:
    if not raw:
        return default
    return Resources(
        cpu_request=str(_get(raw, "requests", "cpu", default=default.cpu_request)),
        memory_request=str(_get(raw, "requests", "memory", default=default.memory_request)),
        cpu_limit=str(_get(raw, "limits", "cpu", default=default.cpu_limit)),
        memory_limit=str(_get(raw, "limits", "memory", default=default.memory_limit)),
    )


@dataclass(frozen=True)
class Backup:
    """``spec.backup``: a CronJob that dumps the managed database to its own PVC."""

    schedule: str
    retention: int = 7
    size: str = "1Gi"
    storage_class: str | None = None


#: A cron schedule as the CronJob controller takes it: five fields, or a macro. The CRD's
#: CEL rule checks the same shape (``crd.SCHEDULE``).
SCHEDULE = re.compile(r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$")


def backup_of(app: Mapping[str, Any]) -> Backup | None:
    """``spec.backup`` checked (the CRD's schema checks the same; this covers objects that
    skipped it), or None when backups are off."""
    raw = _get(app, "spec", "backup")
    if raw is None:
        return None
    if _get(app, "spec", "database", "external"):
        raise InvalidSpec(
            "spec.backup: needs the managed database (back up an external one with its own tools)"
        )
    schedule = str(raw.get("schedule", "")).strip()
    if not SCHEDULE.match(schedule):
        raise InvalidSpec(
            f"spec.backup.schedule: {schedule!r} is not a cron schedule "
            "(five fields such as '0 3 * * *', or @daily, @hourly, ...)"
        )
    retention = raw.get("retention", Backup.retention)
    if not isinstance(retention, int) or isinstance(retention, bool) or retention < 1:
        raise InvalidSpec(f"spec.backup.retention: must be an integer >= 1, got {retention!r}")
    storage = raw.get("storage") or {}
    return Backup(
        schedule=schedule,
        retention=retention,
        size=str(storage.get("size") or Backup.size),
        storage_class=storage.get("storageClassName"),
    )


def to_roar_spec(app: Mapping[str, Any], defaults: st.OperatorSettings) -> RoarSpec:
    """Map a RoarApp onto the builders' spec. The CRD's schema defaults are repeated here as
    fallbacks so a RoarApp that skipped defaulting (an older CRD, a test double) still works."""
    meta, spec = app.get("metadata", {}), app.get("spec") or {}
    db = spec.get("database") or {}
    managed, external = db.get("managed") or {}, db.get("external")
    if managed and external:
        raise InvalidSpec("spec.database: set managed or external, not both")
    backup_of(app)  # refused here, before anything is applied
    token = spec.get("apiToken")
    ext = None
    if external:
        ext = ExternalDatabase(
            secret=external["secretName"],
            url_key=external.get("urlKey"),
            host_key=external.get("hostKey", "host"),
            user_key=external.get("userKey", "user"),
            password_key=external.get("passwordKey", "password"),
            port=int(external.get("port", names.DB_PORT)),
        )
    monitor = _get(spec, "monitoring", "serviceMonitor") or {}
    tag = _get(spec, "image", "tag") or defaults.default_tag
    kwargs: dict[str, Any] = {
        "instance": meta["name"],
        "namespace": meta["namespace"],
        "replicas": int(spec.get("replicas", 2)),
        "image": _get(spec, "image", "repository") or defaults.web_image,
        "tag": tag,
        "image_pull_policy": _get(spec, "image", "pullPolicy") or "IfNotPresent",
        "flavor": spec.get("flavor", "v1"),
        "service_type": _get(spec, "service", "type") or "ClusterIP",
        "node_port": _get(spec, "service", "nodePort"),
        # The operator keeps exactly spec.replicas pods (lab 9); no HPA competes with it.
        "autoscaling": False,
        "web_resources": _resources(spec.get("resources"), Resources()),
        "db_image": _get(managed, "image", "repository") or defaults.db_image,
        "db_tag": _get(managed, "image", "tag"),
        "db_storage_size": _get(managed, "storage", "size") or "1Gi",
        "db_storage_class": _get(managed, "storage", "storageClassName"),
        "db_resources": _resources(
            managed.get("resources"), Resources("100m", "256Mi", "1", "512Mi")
        ),
        # Per-app name: several RoarApps may share a namespace, so no bare `mysql`.
        "db_service_name": None,
        "database": db.get("name", names.DEFAULT_DATABASE),
        "db_user": managed.get("user", names.DEFAULT_USER),
        "api_token_secret": SecretKeyRef(token["secretName"], token.get("key", "token"))
        if token
        else None,
        "log_format": spec.get("logFormat", "json"),
        "service_monitor": _service_monitor(monitor) if monitor.get("enabled") else None,
        "ingress_namespace": _get(spec, "networkPolicies", "ingressNamespace")
        or names.DEFAULT_INGRESS_NAMESPACE,
        "external_db": ext,
        "db_claim_retention": None
        if ext
        else ("Delete" if managed.get("deleteClaimOnDelete", False) else "Retain"),
    }
    try:
        return RoarSpec(**kwargs)
    except (ValueError, TypeError) as exc:
        raise InvalidSpec(str(exc)) from exc


def network_policies_enabled(app: Mapping[str, Any]) -> bool:
    """``spec.networkPolicies.enabled``, on unless turned off (the kustomize base has them)."""
    return bool(_get(app, "spec", "networkPolicies", "enabled", default=True))


def _service_monitor(raw: Mapping[str, Any]) -> ServiceMonitor:
    try:
        return ServiceMonitor(
            interval=raw.get("interval", ServiceMonitor.interval),
            labels=tuple(sorted((raw.get("labels") or {}).items())),
        )
    except ValueError as exc:
        raise InvalidSpec(f"spec.monitoring.serviceMonitor.{exc}") from exc


def owner_reference(app: Mapping[str, Any]) -> Obj:
    """The controller reference that lets garbage collection remove a child with its app."""
    meta = app["metadata"]
    return {
        "apiVersion": st.API_VERSION,
        "kind": st.KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def generate_password() -> str:
    return secrets.token_urlsafe(24)


def passwords_from(secret: Mapping[str, Any] | None) -> tuple[str, str]:
    """The db passwords an existing Secret holds; any missing one is generated (once: the Secret
    is then written with it, so later reconciles read it back)."""
    data = (secret or {}).get("data") or {}

    def read(key: str) -> str:
        value = data.get(key)
        return base64.b64decode(value).decode() if value else generate_password()

    return read(names.MYSQL_PASSWORD), read(names.MYSQL_ROOT_PASSWORD)


def _to_data(secret: Obj) -> Obj:
    # `data`, not `stringData`: the API stores only `data`, so comparing with it is exact.
    secret = dict(secret)
    string_data = secret.pop("stringData")
    secret["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}
    return secret


def _own(obj: Obj, app: Mapping[str, Any]) -> Obj:
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    meta["labels"][lb.MANAGED_BY] = st.MANAGED_BY
    meta["ownerReferences"] = [owner_reference(app)]
    template = _get(obj, "spec", "template", "metadata")
    if template is not None:
        # Pods carry it too, so one label selects everything the operator watches.
        template["labels"][lb.MANAGED_BY] = st.MANAGED_BY
    return obj


def desired_objects(
    app: Mapping[str, Any], spec: RoarSpec, *, passwords: tuple[str, str] | None
) -> list[Obj]:
    """Every child of one app, in creation order (config and credentials before workloads).

    ``passwords`` is needed for a managed database and ignored for an external one.
    """
    objects: list[Obj] = [builders.build_service_account(spec), builders.build_configmap(spec)]
    if spec.external_db is None:
        if passwords is None:
            raise ValueError("passwords: required for a managed database")
        password, root = passwords
        objects.append(
            _to_data(builders.build_db_secret(spec, password=password, root_password=root))
        )
        objects.extend(builders.build_db_services(spec))
        objects.append(builders.build_db_statefulset(spec))
    objects += [
        builders.build_web_service(spec),
        builders.build_web_deployment(spec),
        builders.build_pdb(spec),
    ]
    backup = backup_of(app) if spec.external_db is None else None
    if backup is not None:
        objects += builders.build_backup(
            spec, schedule=backup.schedule, retention=backup.retention, size=backup.size,
            storage_class=backup.storage_class,
        )  # fmt: skip
    if network_policies_enabled(app):
        objects.extend(network_policies(spec, backup=backup is not None))
    if spec.service_monitor is not None:
        # Last: without the Prometheus Operator's CRD only this child fails (Degraded says so).
        objects.append(builders.build_service_monitor(spec))
    owned = [_own(obj, app) for obj in objects]
    if spec.db_claim_retention != "Delete":
        # The backup PVC follows the data PVC's policy (deleteClaimOnDelete): kept when the
        # RoarApp goes, so no owner reference for garbage collection to follow.
        for obj in owned:
            if obj["kind"] == "PersistentVolumeClaim":
                del obj["metadata"]["ownerReferences"]
    return owned


def network_policies(spec: RoarSpec, *, backup: bool = False) -> list[Obj]:
    """The kustomize base's NetworkPolicies, less the db's when there is no MariaDB, and with
    web's port open to every source when the Service is reachable from outside the cluster.

    NodePort and LoadBalancer traffic reaches the pods from node addresses, which the base's
    "ingress controller or same namespace" rule does not match (the dev overlay and the chart's
    ``networkPolicy.allowExternal`` open it the same way); the db stays reachable from web only.
    """
    policies = builders.build_network_policies(spec)
    if backup:
        # The backup (and a restore) pods reach the db's port too.
        backup_pods = {"matchLabels": lb.selector_labels(spec.instance, builders.BACKUP)}
        for policy in policies:
            if _get(policy, "metadata", "labels", lb.COMPONENT) == names.DB:
                policy["spec"]["ingress"][0]["from"].append({"podSelector": backup_pods})
    if spec.external_db is not None:
        policies = [p for p in policies if _get(p, "metadata", "labels", lb.COMPONENT) != names.DB]
    if spec.service_type != "ClusterIP":
        for policy in policies:
            if _get(policy, "metadata", "labels", lb.COMPONENT) == names.WEB:
                for rule in policy["spec"]["ingress"]:
                    rule.pop("from", None)
    return policies


def _condition(
    kind: str, status: bool, reason: str, message: str, previous: Sequence[Mapping[str, Any]],
    now: str, generation: int | None,
) -> Obj:  # fmt: skip
    value = "True" if status else "False"
    old = next((c for c in previous if c.get("type") == kind), None)
    # lastTransitionTime moves only when the status flips, as the API conventions ask.
    since = old["lastTransitionTime"] if old and old.get("status") == value else now
    cond: Obj = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def _pod_is_live(pod: Mapping[str, Any]) -> bool:
    return not _get(pod, "metadata", "deletionTimestamp") and _get(
        pod, "status", "phase", default="Pending"
    ) in ("Pending", "Running")


def _pod_is_ready(pod: Mapping[str, Any]) -> bool:
    conditions = _get(pod, "status", "conditions", default=[]) or []
    return _pod_is_live(pod) and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )


def serving_version(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The version (app.kubernetes.io/version, the image tag) the ready web pods serve; during a
    rollout that mixes them, every one, sorted and comma-separated. None when no pod is ready."""
    versions = {
        str(_get(p, "metadata", "labels", lb.VERSION, default="unknown"))
        for p in pods
        if _pod_is_ready(p)
    }
    return ", ".join(sorted(versions)) or None


def compute_status(
    app: Mapping[str, Any], spec: RoarSpec | None, observed: Observed, *, now: str,
    invalid: str | None = None,
) -> Obj:  # fmt: skip
    """The whole status subresource from what was observed; pure, so a test can pin it."""
    generation = _get(app, "metadata", "generation")
    previous = _get(app, "status", "conditions", default=[]) or []
    status: Obj = {}
    if generation is not None:
        status["observedGeneration"] = generation

    def conditions(ready: tuple[bool, str, str], progressing: tuple[bool, str, str],
                   degraded: tuple[bool, str, str]) -> list[Obj]:  # fmt: skip
        return [
            _condition(st.READY, *ready, previous, now, generation),
            _condition(st.PROGRESSING, *progressing, previous, now, generation),
            _condition(st.DEGRADED, *degraded, previous, now, generation),
        ]

    if invalid is not None or spec is None:
        status["conditions"] = conditions(
            (False, "InvalidSpec", invalid or "invalid spec"),
            (False, "InvalidSpec", "fix the spec; nothing was changed"),
            (True, "InvalidSpec", invalid or "invalid spec"),
        )
        return status

    dep = observed.deployment or {}
    want = spec.replicas
    ready = int(_get(dep, "status", "readyReplicas", default=0) or 0)
    updated = int(_get(dep, "status", "updatedReplicas", default=0) or 0)
    total = int(_get(dep, "status", "replicas", default=0) or 0)
    dep_gen_seen = _get(dep, "status", "observedGeneration", default=0) >= _get(
        dep, "metadata", "generation", default=0
    )
    pods = sorted(_get(p, "metadata", "name") for p in observed.pods if _pod_is_live(p))
    status["replicas"] = want
    status["readyReplicas"] = ready
    status["podNames"] = pods
    # None removes it (a merge patch), so a stale version never outlives the last ready pod.
    status["version"] = serving_version(observed.pods)
    status["url"] = (
        f"http://{names.web_name(spec.instance)}.{spec.namespace}.svc:"
        f"{names.WEB_SERVICE_PORT}{names.PAGE_PATH}"
    )
    # None removes it (a merge patch) once backups are turned off.
    status["backup"] = backup_status(observed.cronjob)

    db_ready = spec.external_db is not None or (
        int(_get(observed.statefulset, "status", "readyReplicas", default=0) or 0) >= 1
    )
    rollout_done = bool(dep) and dep_gen_seen and updated == want and total == want
    web_ready = rollout_done and ready == want
    dep_conds = {c.get("type"): c for c in _get(dep, "status", "conditions", default=[]) or []}
    stuck = dep_conds.get("Progressing", {}).get("reason") == "ProgressDeadlineExceeded"
    failure = dep_conds.get("ReplicaFailure", {}).get("status") == "True"

    if observed.errors:
        what, msg = observed.errors[0]
        degraded = (True, "ApplyFailed", f"{what}: {msg}")
    elif stuck:
        degraded = (True, "ProgressDeadlineExceeded", dep_conds["Progressing"].get("message", ""))
    elif failure:
        degraded = (True, "ReplicaFailure", dep_conds["ReplicaFailure"].get("message", ""))
    else:
        degraded = (False, "AsExpected", "all children applied")

    if web_ready and db_ready:
        ready_c = (True, "AllReplicasReady", f"{ready}/{want} web pods ready, database ready")
        progressing = (False, "Complete", "nothing to do")
    else:
        if not db_ready:
            reason, msg = "WaitingForDatabase", "the database is not ready yet"
        elif not rollout_done:
            reason = "RollingOut"
            msg = rollout_message(want, updated, total, exists=bool(dep), seen=dep_gen_seen)
        else:
            reason, msg = "WaitingForPods", f"{ready}/{want} web pods ready"
        ready_c = (False, reason, msg)
        progressing = (not degraded[0], reason, msg)
    status["conditions"] = conditions(ready_c, progressing, degraded)
    return status


def backup_status(cronjob: Mapping[str, Any] | None) -> Obj | None:
    """``status.backup``: when the CronJob last started a backup and last finished one, from
    the CronJob's own status (both absent until its first run)."""
    if cronjob is None:
        return None
    found = _get(cronjob, "status", default={}) or {}
    return {k: found[k] for k in ("lastScheduleTime", "lastSuccessfulTime") if found.get(k)}


def rollout_message(want: int, updated: int, total: int, *, exists: bool, seen: bool) -> str:
    """What the web Deployment is still doing, in words (the RollingOut condition's message).

    ``updated`` pods run the current pod template, ``total`` pods exist, ``want`` are wanted.
    """
    if not exists:
        return "web: waiting for the Deployment to be created"
    if not seen:
        return "web: waiting for the Deployment controller to see the latest change"
    if updated < total:
        old = total - updated
        return (
            f"web: {updated} of {want} pods updated, {old} old {_pods(old)} still running; "
            "rolling out"
        )
    if total > want:
        return (
            f"web: {_exist(total)}, {want} wanted; "
            f"waiting for the Deployment to remove {total - want}"
        )
    if total < want:
        return (
            f"web: {_exist(total)}, {want} wanted; "
            f"waiting for the Deployment to start {want - total} more"
        )
    return f"web: {updated} of {want} pods updated"


def _pods(n: int) -> str:
    return "pod" if n == 1 else "pods"


def _exist(n: int) -> str:
    return f"{n} pod exists" if n == 1 else f"{n} pods exist"


def _conditions(status: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in _get(status, "conditions", default=[]) or []}


def status_events(
    old: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """The Events (type, reason, message) a status change is worth: Ready flipping, Degraded
    turning True or changing its reason, and web serving a version it did not serve just before
    (a rollout's end, or pods ready after none was). Nothing else, so a resync that finds
    everything as it was posts nothing."""
    events: list[tuple[str, str, str]] = []
    before, after = _conditions(old), _conditions(new)
    ready, was = after.get(st.READY), before.get(st.READY) or {"status": "False"}
    if ready and was.get("status") != ready.get("status"):
        events.append(("Normal", ready.get("reason", ""), ready.get("message", "")))
    bad, was_bad = after.get(st.DEGRADED), before.get(st.DEGRADED)
    if (
        bad
        and bad.get("status") == "True"
        and (
            was_bad is None
            or was_bad.get("status") != "True"
            or was_bad.get("reason") != bad.get("reason")
        )
    ):
        events.append(("Warning", bad.get("reason", ""), bad.get("message", "")))
    version, old_version = new.get("version"), (old or {}).get("version")
    if version and version != old_version and "," not in version:
        # From a mixed rollout ("0.2.0, 0.3.0") the old version is not known for sure; from
        # none (first pods, or back after no pod was ready) there was none to name.
        was_note = f" (was {old_version})" if old_version and "," not in old_version else ""
        events.append(("Normal", "VersionServing", f"web serves {version}{was_note}"))
    return events


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` would change anything (skipping writes keeps restarts silent)."""
    old = old or {}
    return any(old.get(k) != v for k, v in new.items())
