"""The operator against kmock: an in-memory Kubernetes API served over real HTTP on loopback.

kmock stands in for kube-apiserver where speed matters and no controllers are wanted (nothing
creates pods or collects garbage here); tests/cluster/test_operator.py runs the same operator
against a real control plane. kmock knows no server-side apply, so :class:`ApplyEmulator` adds
the part the operator relies on (create if missing, the resourceVersion precondition, no write
for a no-op); unlike the API server it merges lists whole and canonicalises no quantities, which
is why the no-op proof lives in the cluster tier. The operator runs in the test's event loop
(``runner.operate``) with its own kubeconfig pointing at kmock, exactly as it would at a cluster.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import pytest
from kmock._internal import rendering

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
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", set()),
}
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


APPLY_PATCH = "application/apply-patch+yaml"


def _merged(old: Any, patch: Any) -> Any:
    """Maps merge key by key; anything else (lists included) is replaced."""
    if not isinstance(old, Mapping) or not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(old)
    for key, value in patch.items():
        out[key] = _merged(old.get(key), value)
    return out


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    body = {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
            "reason": reason, "message": message}  # fmt: skip
    return aiohttp.web.json_response(body, status=code)


class ApplyEmulator(kmock.KubernetesEmulator):
    """kmock plus the server-side apply behaviour the operator depends on."""

    _versions = itertools.count(1000)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        content_type = request.headers.get("Content-Type", "")
        if request.method == "PATCH" and content_type.startswith(APPLY_PATCH) and request.name:
            return await self._apply(request)
        meta = request.data.get("metadata") if isinstance(request.data, dict) else None
        if request.method == "POST" and meta and "generateName" in meta and not meta.get("name"):
            # kopf names its Events this way; without it every Event would collide on one key.
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        return await super()._handle(request)

    async def _apply(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        body = copy.deepcopy(request.data)
        precondition = body["metadata"].pop("resourceVersion", None)
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            # kmock's ObjectsArray has no .get(); membership first.
            current = self._objects[key] if key in self._objects else None  # noqa: SIM401
            if current is None or current.deleted:
                body["metadata"].update(uid=str(uuid.uuid4()), resourceVersion=self._next())
                if current is None:
                    self._objects[key] = body
                else:
                    current.create(body)
                event = "ADDED"
            else:
                old = current.raw
                rv = old.get("metadata", {}).get("resourceVersion")
                if precondition is not None and precondition != rv:
                    return _status(409, "Conflict", "the object has been modified")
                if _merged(old, body) == old:  # the API server skips a no-op write
                    return aiohttp.web.json_response(old)
                body["metadata"]["resourceVersion"] = self._next()
                current.patch(body)
                event = "MODIFIED"
            raw = self._objects[key].raw
            await self._buses[request.resource].put({"type": event, "object": raw})
        return aiohttp.web.json_response(raw)

    def _next(self) -> str:
        return str(next(self._versions))


@pytest.fixture
async def api() -> AsyncIterator[ApplyEmulator]:
    """kmock's own fixture, with :class:`ApplyEmulator` as the server."""
    async with ApplyEmulator() as emulator, kmock.Server(emulator):
        yield _registered(emulator)


def _registered(emulator: ApplyEmulator) -> ApplyEmulator:
    for key, (kind, subresources) in RESOURCES.items():
        emulator.resources[key] = kmock.ResourceInfo(
            kind=kind, namespaced=True, verbs=VERBS, subresources=subresources
        )
    # kopf waits for these two to be discoverable even with scanning disabled.
    emulator.resources["v1/namespaces"] = kmock.ResourceInfo(
        kind="Namespace", namespaced=False, verbs=VERBS
    )
    emulator.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, verbs=VERBS
    )
    return emulator


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
