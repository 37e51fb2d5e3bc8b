"""Thin async calls to the Kubernetes API, one per verb, and server-side apply of a child.

``kubernetes_asyncio`` is used for what is hard to get right (kubeconfig parsing, exec plugins,
in-cluster token rotation, TLS); requests go through its generic ``ApiClient.call_api`` with
plain dicts, because the builders produce dicts and typed models would only be converted back.

Every child is written with server-side apply (SSA): the API server merges the operator's fields
into the object, keeps what others own (defaults, annotations, `kubectl rollout restart`),
canonicalises quantities before comparing, refuses what cannot change (selectors), and does not
write at all when nothing would change. The operator therefore keeps no diff logic of its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from roar.config import ConfigError
from roar.operator import metrics
from roar.operator import settings as st

if TYPE_CHECKING:  # only the operator process imports kopf (see connection_info)
    import kopf

__all__ = ["ApiException", "Applied", "Kube", "Seen", "connect", "upgraded_managed_fields"]

Obj = dict[str, Any]
Action = Literal["created", "updated", "unchanged"]

#: kind -> plural, for every kind the operator reads or writes.
PLURALS = {
    "ConfigMap": "configmaps",
    "CronJob": "cronjobs",
    "Deployment": "deployments",
    "NetworkPolicy": "networkpolicies",
    "PersistentVolumeClaim": "persistentvolumeclaims",
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
APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON
#: Server-side apply with force: the RoarApp is the one source of truth for every field the
#: operator sets. A conflict means another manager changed one of them (`kubectl scale`,
#: `kubectl edit`), which is the drift the operator exists to repair; without force the apply
#: would fail with 409 and the drift would stay. Fields the operator does not set are never
#: taken over, so other managers keep theirs.
APPLY_QUERY = [("fieldManager", st.FIELD_MANAGER), ("force", "true")]
#: Applies sent with the last-seen resourceVersion as a precondition before giving up on
#: telling a no-op from a change (each conflict means someone else wrote in between).
CONDITIONAL_TRIES = 2


def _path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{PLURALS[kind]}"
    return f"{path}/{name}" if name else path


def _obj_path(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return _path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])


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


@dataclass(frozen=True)
class Seen:
    """A child as the operator last saw it: enough to tell whether a later apply changed it."""

    uid: str
    resource_version: str

    @classmethod
    def of(cls, obj: Mapping[str, Any] | None) -> Seen | None:
        if obj is None:
            return None
        meta = obj.get("metadata") or {}
        return cls(str(meta.get("uid", "")), str(meta.get("resourceVersion", "")))


@dataclass(frozen=True)
class Applied:
    """What one apply did, and the child as the API server stored it (status included)."""

    action: Action
    live: Obj


def _action(before: Seen | None, live: Mapping[str, Any]) -> Action:
    # The API server skips the write of a no-op apply, so an unchanged resourceVersion is an
    # exact "nothing changed"; a new uid means the child was gone and the apply created it.
    after = Seen.of(live)
    if before is None or after is None or after.uid != before.uid:
        return "created"
    return "unchanged" if after.resource_version == before.resource_version else "updated"


def upgraded_managed_fields(entries: list[Obj], manager: str) -> list[Obj] | None:
    """``metadata.managedFields`` with ``manager``'s Update entry folded into its Apply entry,
    or None when there is nothing to fold.

    Operator versions before server-side apply created and merge-patched children, which
    recorded their fields under an ``Update`` entry. Left alone, that entry keeps owning those
    fields, so a field the operator stops setting (an env var, a port) would never be removed.
    This is the migration Kubernetes documents for client-side to server-side apply (client-go's
    ``csaupgrade``): the fields move to the Apply entry, which the next apply then prunes.
    """

    def main(entry: Mapping[str, Any], operation: str) -> bool:
        return (
            entry.get("manager") == manager
            and entry.get("operation") == operation
            and not entry.get("subresource")
        )

    update = next((e for e in entries if main(e, "Update")), None)
    applied = next((e for e in entries if main(e, "Apply")), None)
    if update is None or applied is None:
        return None
    merged = {**applied, "fieldsV1": _union(applied.get("fieldsV1"), update.get("fieldsV1"))}
    return [merged if e is applied else e for e in entries if e is not update]


def _union(a: Any, b: Any) -> Any:
    """The union of two FieldsV1 sets (nested maps whose leaves are empty maps)."""
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return copy.deepcopy(a if isinstance(a, Mapping) else b) or {}
    out = {k: copy.deepcopy(v) for k, v in a.items()}
    for key, value in b.items():
        out[key] = _union(out[key], value) if key in out else copy.deepcopy(value)
    return out


class Kube:
    """The handful of calls the operator makes; every write names the field manager."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    async def _call(
        self, verb: str, method: str, path: str, *, body: Any = None,
        query: Sequence[tuple[str, str]] = (), content_type: str = "application/json",
    ) -> Obj:  # fmt: skip
        code = "error"  # neither an answer nor an HTTP error: the connection failed
        try:
            result: Obj = await self.api.call_api(
                path, method, query_params=list(query),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body, auth_settings=["BearerToken"],
                response_types_map={200: "object", 201: "object"},
                _return_http_data_only=True,
            )  # fmt: skip
            code = "2xx"
            return result
        except ApiException as exc:
            code = str(exc.status)
            raise
        finally:
            metrics.record_request(verb, code)

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self._call("get", "GET", _path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[Obj]:
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in selector.items()))]
        found = await self._call("list", "GET", _path(api_version, kind, namespace), query=query)
        items: list[Obj] = found.get("items") or []
        # Filtered here too: an API that ignores labelSelector must not widen the result.
        return [
            i for i in items
            if all((i["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
        ]  # fmt: skip

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, uid: str
    ) -> None:
        """Delete one object, only if it is still the one with ``uid`` (a precondition)."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            await self._call("delete", "DELETE", _path(api_version, kind, namespace, name),
                             body=body)  # fmt: skip
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or replaced by someone else's
                raise

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Obj,
        *, subresource: str | None = None,
    ) -> Obj:  # fmt: skip
        path = _path(api_version, kind, namespace, name)
        if subresource:
            path += f"/{subresource}"
        return await self._call(
            "patch", "PATCH", path, body=patch, content_type=MERGE_PATCH,
            query=[("fieldManager", st.FIELD_MANAGER)],
        )  # fmt: skip

    async def server_side_apply(self, desired: Obj, *, precondition: str | None = None) -> Obj:
        """One apply of ``desired``; with ``precondition`` (a resourceVersion) the API server
        refuses it with 409 if the object has been written since. A missing object is created
        whatever the precondition."""
        body = desired
        if precondition is not None:
            body = {**desired, "metadata": {**desired["metadata"], "resourceVersion": precondition}}
        return await self._call(
            "apply", "PATCH", _obj_path(desired), body=body, content_type=APPLY_PATCH,
            query=APPLY_QUERY,
        )  # fmt: skip

    async def apply(self, desired: Obj, seen: Seen | None) -> Applied:
        """Server-side apply ``desired`` and say whether that created, changed or left it.

        "Before" is ``seen`` (what the caller saw last, e.g. the previous apply's answer), sent
        as the apply's precondition so the comparison is exact: if anyone wrote in between (a
        controller updating status does), the API answers 409 and the child is read afresh.
        Without ``seen`` the child is read first. The API server does not write a no-op apply,
        so steady state costs one request per child and writes nothing.
        """
        before = seen
        for _ in range(CONDITIONAL_TRIES):
            if before is None:
                before = Seen.of(await self.get(*_key(desired)))
            try:
                live = await self.server_side_apply(
                    desired, precondition=before.resource_version if before else None
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
                before = None  # written meanwhile: read it again
                continue
            action = _action(before, live)
            return Applied(action, await self._upgrade_managed_fields(desired, live))
        # Still racing another writer: apply unconditionally and count it as a change.
        live = await self.server_side_apply(desired)
        return Applied("updated", await self._upgrade_managed_fields(desired, live))

    async def _upgrade_managed_fields(self, desired: Obj, live: Obj) -> Obj:
        """Fold an older operator's Update entry into the Apply entry (once per child); returns
        the child as stored afterwards."""
        meta = live.get("metadata") or {}
        upgraded = upgraded_managed_fields(meta.get("managedFields") or [], st.FIELD_MANAGER)
        if upgraded is None:
            return live
        # resourceVersion makes it conditional: a concurrent write wins, the next apply retries.
        patch = {"metadata": {"managedFields": upgraded,
                              "resourceVersion": meta.get("resourceVersion")}}  # fmt: skip
        try:
            patched = await self._call("patch", "PATCH", _obj_path(desired), body=patch,
                                       content_type=MERGE_PATCH)  # fmt: skip
        except ApiException as exc:
            if exc.status != 409:
                raise
            return live
        metrics.WRITES.labels(desired["kind"], "upgraded").inc()
        return patched

    async def get_app(self, namespace: str, name: str) -> Obj | None:
        return await self.get(st.API_VERSION, st.KIND, namespace, name)

    async def patch_app_status(self, namespace: str, name: str, status: Obj) -> None:
        await self.merge_patch(
            st.API_VERSION, st.KIND, namespace, name, {"status": status}, subresource="status"
        )


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"]


async def connection_info(api: client.ApiClient, namespace: str | None) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration (read anew: in-cluster tokens rotate)."""
    import kopf  # only the operator process needs kopf; the helpers above do not

    cfg = api.configuration
    auth = await cfg.get_api_key_with_prefix("BearerToken") if cfg.api_key else None
    scheme, _, token = (auth or "").partition(" ")
    if not cfg.host:  # the client's default is http://localhost; a loaded config sets its own
        raise ConfigError("the Kubernetes configuration names no API server (server: is empty)")
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
