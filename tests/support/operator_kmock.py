"""The operator against kmock: an in-memory Kubernetes API served over real HTTP on loopback.

kmock stands in for kube-apiserver where speed matters and no controllers are wanted (nothing
creates pods or collects garbage here); tests/cluster/test_operator.py runs the same operator
against a real control plane. The operator runs in the test's event loop (``runner.operate``)
with its own kubeconfig pointing at kmock, exactly as it would at a cluster.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kmock
import pytest

from roar.operator import runner
from roar.operator import settings as st
from roar.operator.settings import OperatorSettings

NS = "lab9"
ROARAPPS = f"{st.GROUP}/{st.VERSION}/{st.PLURAL}"
RESOURCES = {
    ROARAPPS: ("RoarApp", {"status"}),
    "v1/services": ("Service", set()),
    "v1/pods": ("Pod", set()),
    "v1/configmaps": ("ConfigMap", set()),
    "v1/secrets": ("Secret", set()),
    "v1/serviceaccounts": ("ServiceAccount", set()),
    "v1/events": ("Event", set()),
    "apps/v1/deployments": ("Deployment", {"status"}),
    "apps/v1/statefulsets": ("StatefulSet", {"status"}),
    "policy/v1/poddisruptionbudgets": ("PodDisruptionBudget", {"status"}),
}
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


@pytest.fixture
def api(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    for key, (kind, subresources) in RESOURCES.items():
        kmock.resources[key] = kmock.ResourceInfo(
            kind=kind, namespaced=True, verbs=VERBS, subresources=subresources
        )
    # kopf waits for these two to be discoverable even with scanning disabled.
    kmock.resources["v1/namespaces"] = kmock.ResourceInfo(
        kind="Namespace", namespaced=False, verbs=VERBS
    )
    kmock.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, verbs=VERBS
    )
    return kmock


def roarapp(name: str = "roarapp-sample", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": st.API_VERSION,
        "kind": st.KIND,
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": str(uuid.uuid4()),
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": spec,
    }


async def eventually(
    probe: Callable[[], Any], *, what: str, within: float = 15, interval: float = 0.1
) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            result = probe()
            if result:
                return result
        except (KeyError, TypeError, AssertionError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(interval)


class Operator:
    """Start/stop the real operator against kmock, as often as a test needs.

    It runs in a thread with its own event loop, as ``roar operator run`` would in its own
    process: kopf cancels every task of its loop that it did not start when it stops, which
    would include the test's own tasks if it shared the loop.
    """

    def __init__(self, kubeconfig: Path) -> None:
        self.settings = OperatorSettings(
            kubeconfig=kubeconfig, namespaces=[NS], liveness_endpoint=None, metrics_port=0,
            resync_seconds=1.0, debounce_seconds=0.05,
        )  # fmt: skip
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    async def start(self) -> None:
        self._stop, ready = threading.Event(), threading.Event()
        coro = runner.operate(self.settings, stop_flag=self._stop, ready_flag=ready)
        self._thread = threading.Thread(target=asyncio.run, args=(coro,), daemon=True)
        self._thread.start()
        assert await asyncio.to_thread(ready.wait, 20), "the operator did not get ready"

    async def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            await asyncio.to_thread(self._thread.join, 30)
            assert not self._thread.is_alive(), "the operator did not stop"
            self._thread = None


def kmock_kubeconfig(api: kmock.KubernetesEmulator, path: Path) -> Path:
    """A kubeconfig that points a client (the operator) at the kmock API server."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": str(api.url).rstrip("/")}}],
        "users": [{"name": "kmock", "user": {"token": "kmock-token"}}],
        "contexts": [{"name": "kmock",
                      "context": {"cluster": "kmock", "user": "kmock", "namespace": NS}}],
    }))  # fmt: skip
    return path


@pytest.fixture
async def operator(api: kmock.KubernetesEmulator, tmp_path: Path) -> AsyncIterator[Operator]:
    op = Operator(kmock_kubeconfig(api, tmp_path / "kmock.kubeconfig"))
    yield op
    await op.stop()
