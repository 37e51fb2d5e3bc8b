"""The Helm chart's default render and the kustomize base describe the same application.

The base is rendered from src/roar/kube's builders, so this holds the chart to the same facts:
names, labels, ports, probes, env, security, resources, policies. Normalized differences:
- Helm prefixes names with the release (`rel-roar-`) and labels the instance `rel`;
- the chart names the db Service `<fullname>-mysql` (several releases per namespace), the base
  keeps the workshop's `mysql`;
- kustomize hashes the generated Secret's name; Secret values differ (placeholders vs random);
- Helm-only metadata: helm.sh/chart and managed-by labels, checksum/* annotations, test hooks;
- the Namespace object is the base's only (Helm installs into --namespace);
- the chart's images name the workshop registry (`localhost:5000/roar-web`), the base's are the
  bare template names every overlay rewrites (test_image_names holds both to that).
"""

from __future__ import annotations

import copy
import difflib
import re
from typing import Any

import yaml

from manifests import helpers as h
from roar.kube import names

HELM_ONLY_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by"}
_SECRET_HASH = re.compile(r"^(roar-db-credentials)-[a-z0-9]{10}$")


def _walk(value: Any, fix: Any) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, fix) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, fix) for v in value]
    return fix(value) if isinstance(value, str) else value


def _helm_string(s: str) -> str:
    if s == h.RELEASE:
        return "roar"
    prefix = f"{h.RELEASE}-roar-"
    return "roar-" + s[len(prefix) :] if s.startswith(prefix) else s


def _base_string(s: str) -> str:
    return _SECRET_HASH.sub(r"\1", s)


def _strip_meta(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    metas = [obj["metadata"]]
    template = obj.get("spec", {}).get("template") if isinstance(obj.get("spec"), dict) else None
    if template:
        metas.append(template["metadata"])
    for meta in metas:
        for key in HELM_ONLY_LABELS:
            meta.get("labels", {}).pop(key, None)
        annotations = meta.get("annotations", {})
        for key in [k for k in annotations if k.startswith("checksum/")]:
            del annotations[key]
        if "annotations" in meta and not annotations:
            del meta["annotations"]
    if obj["kind"] == "Secret":
        # Values differ by design; the keys and the name must not.
        obj = {
            "kind": "Secret",
            "metadata": {"name": obj["metadata"]["name"]},
            "keys": sorted(obj.get("data", {})),
        }
    return obj


def _rename_workshop_db_service(obj: dict[str, Any]) -> dict[str, Any]:
    """Base -> chart naming of the db Service (and the MYSQL_HOST values naming it)."""
    if obj["kind"] == "Service" and obj["metadata"]["name"] == "mysql":
        obj["metadata"]["name"] = "roar-mysql"
    for _, pod in h.pod_templates([obj]):
        for c in h.containers(pod):
            for env in c.get("env", []):
                if env["name"] == "MYSQL_HOST" and env.get("value") == "mysql":
                    env["value"] = "roar-mysql"
    return obj


def _bare_images(obj: dict[str, Any]) -> dict[str, Any]:
    """Chart -> base naming of images: the registry prefix goes."""
    prefix = f"{names.WORKSHOP_REGISTRY}/"
    for _, pod in h.pod_templates([obj]):
        for c in h.containers(pod):
            c["image"] = c["image"].removeprefix(prefix)
    return obj


def _index(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def _normalized(renders: dict[str, h.Render]) -> tuple[dict[Any, Any], dict[Any, Any]]:
    base = [
        _rename_workshop_db_service(_strip_meta(_walk(o, _base_string)))
        for o in renders["kustomize/base"].objects
        if o["kind"] != "Namespace"
    ]
    helm = [
        _bare_images(_strip_meta(_walk(o, _helm_string)))
        for o in renders["helm/default"].objects
        if not h.is_helm_test(o)
    ]
    return _index(base), _index(helm)


def test_same_objects(renders: dict[str, h.Render]) -> None:
    base, helm = _normalized(renders)
    assert sorted(base) == sorted(helm)


def test_same_content(renders: dict[str, h.Render]) -> None:
    base, helm = _normalized(renders)
    diffs = []
    for key in sorted(set(base) & set(helm)):
        a = yaml.safe_dump(base[key], sort_keys=True).splitlines()
        b = yaml.safe_dump(helm[key], sort_keys=True).splitlines()
        if a != b:
            diffs.append(
                "\n".join(difflib.unified_diff(a, b, "kustomize/base", "helm", lineterm=""))
            )
    assert not diffs, "\n\n".join(diffs)
