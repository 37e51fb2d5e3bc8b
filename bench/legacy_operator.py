"""The operator as it was before server-side apply (0.2.0): GET each child, compare it with what
it should be, create or merge-patch it. Kept runnable here, and only here, so that
bench/operator_scale.py can measure both in the same run; the product uses apply.py.

    python bench/legacy_operator.py [roar operator run OPTIONS]

It is today's operator with one method swapped: :meth:`Kube.apply` does what ``Kube.ensure``
did, with the hand-written diff (``drift_patch``, ``IMMUTABLE``) copied from 0.2.0.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from typing import Any

from roar.operator import apply
from roar.operator import settings as st
from roar.operator.apply import ApiException, Applied, Kube, Seen

Obj = dict[str, Any]

#: Fields Kubernetes refuses to change after creation; drift there is not ours to repair.
IMMUTABLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "Deployment": (("spec", "selector"),),
    "StatefulSet": (
        ("spec", "selector"),
        ("spec", "serviceName"),
        ("spec", "volumeClaimTemplates"),
    ),
    "Service": (("spec", "clusterIP"),),
    "PodDisruptionBudget": (),
}


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _is_subset(desired: Any, actual: Any) -> bool:
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and _is_subset(v, actual[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(_is_subset(d, a) for d, a in zip(desired, actual, strict=True))
        )
    return bool(desired == actual)


def _mutable(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    for path in IMMUTABLE.get(obj["kind"], ()):
        parent = _get(out, *path[:-1])
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    meta = out["metadata"]
    out["metadata"] = {"labels": meta["labels"], "ownerReferences": meta["ownerReferences"]}
    out.pop("apiVersion"), out.pop("kind")
    return out


def drift_patch(desired: Obj, actual: Mapping[str, Any]) -> Obj | None:
    wanted = _mutable(desired)
    return None if _is_subset(wanted, actual) else wanted


async def _create(kube: Kube, obj: Obj) -> Obj:
    meta = obj["metadata"]
    return await kube._call(
        "create", "POST", apply._path(obj["apiVersion"], obj["kind"], meta["namespace"]),
        body=obj, query=[("fieldManager", st.FIELD_MANAGER)],
    )  # fmt: skip


async def compare_then_patch(self: Kube, desired: Obj, seen: Seen | None) -> Applied:
    """0.2.0's ``Kube.ensure``. It returns no object, so the controller reads the Deployment
    and StatefulSet again to observe them, as 0.2.0 did."""
    del seen  # 0.2.0 kept no memory between reconciles
    meta = desired["metadata"]
    args = (desired["apiVersion"], desired["kind"], meta["namespace"], meta["name"])
    actual = await self.get(*args)
    if actual is None:
        try:
            await _create(self, desired)
            return Applied("created", {})
        except ApiException as exc:
            if exc.status != 409:
                raise
            actual = await self.get(*args) or {}
    patch = drift_patch(desired, actual)
    if patch is None:
        return Applied("unchanged", {})
    await self.merge_patch(*args, patch)
    return Applied("updated", {})


def install() -> None:
    Kube.apply = compare_then_patch  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from roar.cli import main

    main(["operator", "run", *sys.argv[1:]])
