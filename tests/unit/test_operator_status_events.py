"""What status.version says, and which status changes are worth an Event (only real ones)."""

from __future__ import annotations

from typing import Any

from roar.kube import labels as lb
from roar.operator import reconcile


def pod(version: str, *, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"w-{version}", "labels": {lb.VERSION: version}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    cond = {"type": "Ready", "status": "True" if ready else "False"}
    return {"metadata": meta, "status": {"phase": "Running", "conditions": [cond]}}


def test_the_serving_version_is_the_ready_pods() -> None:
    assert reconcile.serving_version([pod("0.2.0"), pod("0.2.0")]) == "0.2.0"
    # A rollout in flight: both, and a pod not ready yet or going away does not count.
    assert reconcile.serving_version([pod("0.3.0"), pod("0.2.0")]) == "0.2.0, 0.3.0"
    assert reconcile.serving_version([pod("0.2.0"), pod("0.3.0", ready=False)]) == "0.2.0"
    assert reconcile.serving_version([pod("0.3.0", deleting=True)]) is None


def status(ready: str, reason: str, *, degraded: str = "AsExpected", version: str | None = None,
           message: str = "m") -> dict[str, Any]:  # fmt: skip
    return {
        "version": version,
        "conditions": [
            {"type": "Ready", "status": ready, "reason": reason, "message": message},
            {"type": "Degraded", "status": "False" if degraded == "AsExpected" else "True",
             "reason": degraded, "message": f"{degraded} happened"},
        ],
    }  # fmt: skip


def test_an_unchanged_status_posts_nothing() -> None:
    same = status("True", "AllReplicasReady", version="0.2.0")
    assert reconcile.status_events(same, same) == []
    # Nor does a message that changes while nothing flips (pods still coming).
    assert (
        reconcile.status_events(
            status("False", "WaitingForPods", message="1/3"),
            status("False", "WaitingForPods", message="2/3"),
        )
        == []
    )


def test_ready_flipping_is_an_event_and_a_first_not_ready_is_not() -> None:
    assert reconcile.status_events(None, status("False", "WaitingForDatabase")) == []
    assert reconcile.status_events(
        status("False", "WaitingForPods"), status("True", "AllReplicasReady", message="3/3")
    ) == [("Normal", "AllReplicasReady", "3/3")]


def test_degraded_warns_once_per_reason() -> None:
    bad = status("False", "InvalidSpec", degraded="InvalidSpec")
    assert reconcile.status_events(None, bad) == [
        ("Warning", "InvalidSpec", "InvalidSpec happened")
    ]
    assert reconcile.status_events(bad, bad) == []  # every resync of a bad spec: no new Event
    worse = status("False", "WaitingForPods", degraded="ApplyFailed")
    assert reconcile.status_events(bad, worse) == [
        ("Warning", "ApplyFailed", "ApplyFailed happened")
    ]


def test_a_new_version_serving_is_an_event_once_the_rollout_is_done() -> None:
    old = status("True", "AllReplicasReady", version="0.2.0")
    mixed = status("True", "AllReplicasReady", version="0.2.0, 0.3.0")
    new = status("True", "AllReplicasReady", version="0.3.0")
    assert reconcile.status_events(old, mixed) == []
    assert reconcile.status_events(mixed, new) == [("Normal", "VersionServing", "web serves 0.3.0")]
    assert reconcile.status_events(old, new) == [
        ("Normal", "VersionServing", "web serves 0.3.0 (was 0.2.0)")
    ]
    # A rollout that started while no pod was ready (the app just created, or its pods lost):
    # the version that comes is still told, with no "was" to name.
    none = status("False", "WaitingForPods")
    assert ("Normal", "VersionServing", "web serves 0.3.0") in reconcile.status_events(none, new)
    assert reconcile.status_events(new, none) == [("Normal", "WaitingForPods", "m")]
