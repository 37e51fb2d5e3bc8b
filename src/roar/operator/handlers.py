"""Every kopf decorator of the operator, and nothing else: each handler hands over to
:class:`~roar.operator.controller.Controller` (kept in kopf's ``memo`` by :func:`runner.operate`).

How drift is repaired: a per-app daemon re-applies the desired state every
``resync_seconds``, and watches on the children that carry the managed-by label (Deployments,
StatefulSets, Services, NetworkPolicies, Pods) kick that daemon at once, so a deleted Service or
NetworkPolicy or a hand-scaled Deployment is back within about a second and status.podNames
follows pods as they come and go. The same events keep the resourceVersion each child's next
apply is conditioned on current. ConfigMaps, Secrets, ServiceAccounts and PDBs are not watched
(watching Secrets would need list/watch on every Secret of the namespace); the periodic resync
restores them.
"""

from __future__ import annotations

from typing import Any

import kopf

from roar.kube import labels as lb
from roar.operator import reconcile
from roar.operator import settings as st
from roar.operator.controller import Controller, ReconcileFailed

CHILD_LABELS = {lb.MANAGED_BY: st.MANAGED_BY}
#: Seconds before kopf retries a reconcile that failed for a reason that may pass.
RETRY_DELAY = 10


def _controller(memo: Any) -> Controller:
    controller: Controller = memo.roar_controller
    return controller


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # kopf's bookkeeping under our own group instead of kopf.zalando.org, and never in status
    # (the structural schema would prune it anyway).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=st.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=st.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{st.GROUP}/roar-operator"
    settings.peering.standalone = True
    # The namespaces are given and the CRD is installed before the operator: no need to list or
    # watch namespaces and CRDs, so RBAC need not grant it.
    settings.scanning.disabled = True


@kopf.on.login()
async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    info: kopf.ConnectionInfo = await memo.roar_login()
    return info


@kopf.on.probe(id="apps")
def probe(memo: kopf.Memo, **_: Any) -> int:
    return _controller(memo).watched


@kopf.on.resume(st.GROUP, st.VERSION, st.PLURAL)
@kopf.on.create(st.GROUP, st.VERSION, st.PLURAL)
@kopf.on.update(st.GROUP, st.VERSION, st.PLURAL)
async def reconcile_app(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    try:
        await _controller(memo).reconcile({k: body[k] for k in body}, logger)
    except reconcile.InvalidSpec as exc:
        # The same spec fails the same way; kopf calls us again when the spec changes.
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    except ReconcileFailed as exc:
        if exc.permanent:
            raise kopf.PermanentError(str(exc)) from exc
        raise kopf.TemporaryError(str(exc), delay=RETRY_DELAY) from exc


# kopf's handler protocols say `namespace: str | None` for every resource; a RoarApp and the
# children watched here are namespaced, so kopf always passes a str.
@kopf.daemon(st.GROUP, st.VERSION, st.PLURAL, cancellation_timeout=2.0)  # type: ignore[arg-type]
async def resync(
    stopped: kopf.DaemonStopped, name: str, namespace: str, memo: kopf.Memo, logger: Any,
    **_: Any,
) -> None:  # fmt: skip
    await _controller(memo).watch_over(namespace, name, stopped, logger)


# Namespaced children, so a str namespace again (the ignore sits on the innermost decorator).
@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("apps", "v1", "statefulsets", labels=CHILD_LABELS)
@kopf.on.event("v1", "services", labels=CHILD_LABELS)
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=CHILD_LABELS)  # type: ignore[arg-type]
def child_changed(
    namespace: str, labels: kopf.Labels, body: kopf.Body, resource: kopf.Resource,
    memo: kopf.Memo, **_: Any,
) -> None:  # fmt: skip
    if instance := labels.get(lb.INSTANCE):
        controller = _controller(memo)
        controller.saw(namespace, instance, resource.kind or body.get("kind", ""), body)
        controller.kick(namespace, instance)


@kopf.on.event("v1", "pods", labels=CHILD_LABELS)  # type: ignore[arg-type]  # namespaced, as above
def pod_changed(namespace: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    if instance := labels.get(lb.INSTANCE):
        _controller(memo).kick(namespace, instance)
