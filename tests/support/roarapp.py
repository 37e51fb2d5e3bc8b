"""A RoarApp body as the API server hands it to the operator, for the operator's unit tests."""

from __future__ import annotations

from typing import Any

UID = "u-1"


def roarapp(name: str = "shop", generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "app.example.com/v1alpha1", "kind": "RoarApp",
        "metadata": {"name": name, "namespace": "lab9", "uid": UID, "generation": generation},
        "spec": spec,
    }  # fmt: skip
