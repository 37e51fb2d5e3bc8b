"""The RollingOut message a learner reads in `kubectl describe roarapp` (lab 9)."""

from __future__ import annotations

from typing import Any

import pytest

from roar.operator import reconcile
from roar.operator.settings import OperatorSettings

DEFAULTS = OperatorSettings(liveness_endpoint=None)
DB_READY = {"status": {"readyReplicas": 1}}


def _ready_condition(want: int, *, replicas: int, updated: int, ready: int) -> dict[str, Any]:
    app = {
        "apiVersion": "app.example.com/v1alpha1", "kind": "RoarApp",
        "metadata": {"name": "roarapp-sample", "namespace": "lab9", "uid": "u-1", "generation": 2},
        "spec": {"replicas": want},
    }  # fmt: skip
    deployment = {
        "metadata": {"generation": 4},
        "status": {"observedGeneration": 4, "replicas": replicas, "updatedReplicas": updated,
                   "readyReplicas": ready},
    }  # fmt: skip
    spec = reconcile.to_roar_spec(app, DEFAULTS)
    observed = reconcile.Observed(deployment=deployment, statefulset=DB_READY)
    status = reconcile.compute_status(app, spec, observed, now="t")
    return next(c for c in status["conditions"] if c["type"] == "Ready")


@pytest.mark.parametrize(
    ("want", "replicas", "updated", "ready", "message"),
    [
        # `kubectl scale deploy/roarapp-sample-web --replicas=9`, repaired back to 3.
        (3, 9, 9, 9, "web: 9 pods exist, 3 wanted; waiting for the Deployment to remove 6"),
        (5, 3, 3, 3, "web: 3 pods exist, 5 wanted; waiting for the Deployment to start 2 more"),
        (1, 0, 0, 0, "web: 0 pods exist, 1 wanted; waiting for the Deployment to start 1 more"),
        # A new pod template (e.g. flavor v1 -> v2): one new pod surged beside the three old ones.
        (3, 4, 1, 3, "web: 1 of 3 pods updated, 3 old pods still running; rolling out"),
        (3, 3, 2, 3, "web: 2 of 3 pods updated, 1 old pod still running; rolling out"),
    ],
    ids=["scale-down", "scale-up", "first-pod", "rollout", "rollout-last-pod"],
)
def test_rolling_out_says_what_the_deployment_is_doing(
    want: int, replicas: int, updated: int, ready: int, message: str
) -> None:
    cond = _ready_condition(want, replicas=replicas, updated=updated, ready=ready)
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "RollingOut", message)


def test_done_rollout_waits_for_readiness_not_for_the_deployment() -> None:
    cond = _ready_condition(3, replicas=3, updated=3, ready=2)
    assert (cond["reason"], cond["message"]) == ("WaitingForPods", "2/3 web pods ready")


def test_a_deployment_not_yet_seen_or_created_says_so() -> None:
    assert reconcile.rollout_message(3, 3, 3, exists=True, seen=False) == (
        "web: waiting for the Deployment controller to see the latest change"
    )
    assert reconcile.rollout_message(3, 0, 0, exists=False, seen=False) == (
        "web: waiting for the Deployment to be created"
    )
