"""Thin async calls to the Kubernetes API, one per verb.

``kubernetes_asyncio`` is used for what is hard to get right (kubeconfig parsing, exec plugins,
in-cluster token rotation, TLS); requests go through its generic ``ApiClient.call_api`` with
plain dicts, because the builders produce dicts and typed models would only be converted back.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from roar.config import ConfigError
from roar.operator import reconcile
from roar.operator import settings as st

__all__ = ["ApiException", "Kube", "connect"]

Obj = dict[str, Any]

#: kind -> plural, for every kind the operator reads or writes.
PLURALS = {
    "ConfigMap": "configmaps",
    "Deployment": "deployments",
    "Pod": "pods",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "RoarApp": st.PLURAL,
    "Secret": "secrets",
    "Service": "services",
    "ServiceAccount": "serviceaccounts",
    "ServiceMonitor": "servicemonitors",
    "StatefulSet": "statefulsets",
}
MERGE_PATCH = "application/merge-patch+json"


def _path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{PLURALS[kind]}"
    return f"{path}/{name}" if name else path


async def connect(kubeconfig: Path | None) -> tuple[client.ApiClient, str | None]:
    """An API client and the kubeconfig's namespace: the given file, else in-cluster, else the
    default kubeconfig location."""
    cfg = client.Configuration()
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(cfg), _incluster_namespace()
        except config.ConfigException:
            pass
    try:
        loader = await config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig else None, client_configuration=cfg
        )
    except config.ConfigException as exc:
        where = kubeconfig or "KUBECONFIG or ~/.kube/config"
        raise ConfigError(
            f"no Kubernetes API to talk to: not in a pod with a ServiceAccount, and no usable "
            f"kubeconfig at {where} ({exc})"
        ) from None
    namespace = (loader.current_context or {}).get("context", {}).get("namespace")
    return client.ApiClient(cfg), namespace


def _incluster_namespace() -> str:
    return Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip()


class Kube:
    """The handful of calls the operator makes; every write names the field manager."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    async def _call(
        self, method: str, path: str, *, body: Any = None, query: list[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> Obj:  # fmt: skip
        return await self.api.call_api(  # type: ignore[no-any-return]
            path, method, query_params=list(query),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"],
            response_types_map={200: "object", 201: "object"},
            _return_http_data_only=True,
        )  # fmt: skip

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self._call("GET", _path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[Obj]:
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in selector.items()))]
        found = await self._call("GET", _path(api_version, kind, namespace), query=query)
        items: list[Obj] = found.get("items") or []
        # Filtered here too: an API that ignores labelSelector must not widen the result.
        return [
            i for i in items
            if all((i["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
        ]  # fmt: skip

    async def create(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        return await self._call(
            "POST", _path(obj["apiVersion"], obj["kind"], meta["namespace"]), body=obj,
            query=[("fieldManager", st.FIELD_MANAGER)],
        )  # fmt: skip

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Obj,
        *, subresource: str | None = None,
    ) -> Obj:  # fmt: skip
        path = _path(api_version, kind, namespace, name)
        if subresource:
            path += f"/{subresource}"
        return await self._call(
            "PATCH", path, body=patch, content_type=MERGE_PATCH,
            query=[("fieldManager", st.FIELD_MANAGER)],
        )  # fmt: skip

    async def ensure(self, desired: Obj) -> Literal["created", "updated", "unchanged"]:
        """Create ``desired`` if absent, patch it if drifted, else leave it alone (no write, so a
        restarted operator changes nothing)."""
        meta = desired["metadata"]
        args = (desired["apiVersion"], desired["kind"], meta["namespace"], meta["name"])
        actual = await self.get(*args)
        if actual is None:
            try:
                await self.create(desired)
                return "created"
            except ApiException as exc:
                if exc.status != 409:  # created meanwhile (a watch event raced us): compare it
                    raise
                actual = await self.get(*args) or {}
        patch = reconcile.drift_patch(desired, actual)
        if patch is None:
            return "unchanged"
        await self.merge_patch(*args, patch)
        return "updated"

    async def get_app(self, namespace: str, name: str) -> Obj | None:
        return await self.get(st.API_VERSION, st.KIND, namespace, name)

    async def patch_app_status(self, namespace: str, name: str, status: Obj) -> None:
        await self.merge_patch(
            st.API_VERSION, st.KIND, namespace, name, {"status": status}, subresource="status"
        )


async def connection_info(api: client.ApiClient, namespace: str | None) -> Any:
    """kopf's credentials from the same configuration (read anew: in-cluster tokens rotate)."""
    import kopf  # only the operator process needs kopf; the helpers above do not

    cfg = api.configuration
    auth = await cfg.get_api_key_with_prefix("BearerToken") if cfg.api_key else None
    scheme, _, token = (auth or "").partition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        default_namespace=namespace,
    )
