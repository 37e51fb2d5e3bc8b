"""How the operator tells a real change from a no-op apply, and upgrades an older operator's
field ownership; the API calls are replaced by a scripted stand-in (the cluster tier runs them
against a real API server)."""

from __future__ import annotations

from typing import Any

import pytest

from roar.operator import apply
from roar.operator.apply import ApiException, Kube, Seen

Obj = dict[str, Any]
CM: Obj = {
    "apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "c", "namespace": "lab9", "labels": {"a": "b"}}, "data": {"k": "v"},
}  # fmt: skip


def stored(uid: str, rv: str, managed: list[Obj] | None = None) -> Obj:
    meta = {**CM["metadata"], "uid": uid, "resourceVersion": rv}
    if managed is not None:
        meta["managedFields"] = managed
    return {**CM, "metadata": meta}


class Scripted(Kube):
    """Answers each call from a script and records what was asked."""

    def __init__(self, *, current: Obj | None, applies: list[Obj | int]) -> None:
        super().__init__(api=None)  # type: ignore[arg-type]
        self.current, self.applies = current, list(applies)
        self.calls: list[tuple[str, str | None]] = []

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        self.calls.append(("get", None))
        return self.current

    async def server_side_apply(self, desired: Obj, *, precondition: str | None = None) -> Obj:
        self.calls.append(("apply", precondition))
        answer = self.applies.pop(0)
        if isinstance(answer, int):
            raise ApiException(status=answer, reason="Conflict")
        return answer

    async def _call(self, verb: str, method: str, path: str, **kwargs: Any) -> Obj:
        self.calls.append((verb, None))
        return {**kwargs["body"], "patched": True}


@pytest.mark.parametrize(
    ("seen", "live", "action"),
    [
        (Seen("u1", "5"), stored("u1", "5"), "unchanged"),  # the API server skipped the write
        (Seen("u1", "5"), stored("u1", "6"), "updated"),
        (Seen("u1", "5"), stored("u2", "9"), "created"),  # deleted since: the apply made it anew
    ],
)
async def test_the_resource_version_before_and_after_tells_the_action(
    seen: Seen, live: Obj, action: str
) -> None:
    kube = Scripted(current=None, applies=[live])
    applied = await kube.apply(CM, seen)
    assert applied.action == action
    # One request: the last-seen version is the precondition, so no read is needed.
    assert kube.calls == [("apply", "5")]


async def test_an_unseen_child_is_read_first_and_a_missing_one_is_created() -> None:
    kube = Scripted(current=None, applies=[stored("u1", "1")])
    assert (await kube.apply(CM, None)).action == "created"
    assert kube.calls == [("get", None), ("apply", None)]

    kube = Scripted(current=stored("u1", "4"), applies=[stored("u1", "4")])
    assert (await kube.apply(CM, None)).action == "unchanged"
    assert kube.calls == [("get", None), ("apply", "4")]


async def test_a_conflict_means_someone_wrote_meanwhile_so_the_child_is_read_again() -> None:
    # A controller updated the child's status since the operator saw it (version 5 -> 7).
    kube = Scripted(current=stored("u1", "7"), applies=[409, stored("u1", "7")])
    applied = await kube.apply(CM, Seen("u1", "5"))
    assert applied.action == "unchanged"
    assert kube.calls == [("apply", "5"), ("get", None), ("apply", "7")]


async def test_endless_conflicts_end_in_an_unconditional_apply() -> None:
    kube = Scripted(current=stored("u1", "7"), applies=[409, 409, stored("u1", "8")])
    applied = await kube.apply(CM, Seen("u1", "5"))
    assert applied.action == "updated"
    assert kube.calls[-1] == ("apply", None)


async def test_other_errors_are_not_retried() -> None:
    kube = Scripted(current=None, applies=[422])
    with pytest.raises(ApiException):
        await kube.apply(CM, Seen("u1", "5"))
    assert kube.calls == [("apply", "5")]


def _entry(operation: str, fields: Obj, **extra: Any) -> Obj:
    return {"manager": "roar-operator", "operation": operation, "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": fields, **extra}  # fmt: skip


def test_an_older_operators_update_entry_is_folded_into_its_apply_entry() -> None:
    kubectl = {**_entry("Update", {"f:data": {"f:x": {}}}), "manager": "kubectl-edit"}
    status = _entry("Update", {"f:status": {}}, subresource="status")
    entries = [
        _entry("Update", {"f:data": {".": {}, "f:k": {}, "f:old": {}}}),
        _entry("Apply", {"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:a": {}}}}),
        kubectl,
        status,
    ]
    upgraded = apply.upgraded_managed_fields(entries, "roar-operator")
    assert upgraded is not None
    ours = [e for e in upgraded if e["manager"] == "roar-operator" and not e.get("subresource")]
    (applied,) = ours
    assert applied["operation"] == "Apply"
    # f:old moves to the Apply entry, so the next apply (which no longer sends it) removes it.
    assert applied["fieldsV1"] == {
        "f:data": {".": {}, "f:k": {}, "f:old": {}},
        "f:metadata": {"f:labels": {"f:a": {}}},
    }
    assert kubectl in upgraded and status in upgraded  # others' entries are not ours to touch


def test_nothing_to_fold_without_both_entries() -> None:
    assert apply.upgraded_managed_fields([_entry("Apply", {})], "roar-operator") is None
    assert apply.upgraded_managed_fields([_entry("Update", {})], "roar-operator") is None


async def test_the_upgrade_is_written_once_after_the_apply() -> None:
    managed = [_entry("Update", {"f:data": {"f:old": {}}}), _entry("Apply", {"f:data": {}})]
    kube = Scripted(current=None, applies=[stored("u1", "6", managed)])
    applied = await kube.apply(CM, Seen("u1", "5"))
    assert applied.action == "updated"
    assert kube.calls == [("apply", "5"), ("patch", None)]
    patch = applied.live  # the stand-in echoes the patch
    assert patch["metadata"]["resourceVersion"] == "6"  # conditional: a concurrent write wins
    assert [e["operation"] for e in patch["metadata"]["managedFields"]] == ["Apply"]
