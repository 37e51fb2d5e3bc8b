"""kubectl kustomize over every overlay, and what each overlay and component promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from manifests import helpers as h


@pytest.mark.parametrize("overlay", h.overlays())
def test_overlay_builds(kustomize_tree: Path, overlay: str) -> None:
    assert h.render_kustomize(kustomize_tree / "overlays" / overlay)


def test_at_least_dev_and_prod() -> None:
    assert {"dev", "prod"} <= set(h.overlays())


@pytest.mark.parametrize("component", h.components())
def test_every_component_is_built_by_an_overlay(component: str) -> None:
    users = [
        overlay
        for overlay in h.overlays()
        if f"components/{component}"
        in str(
            yaml.safe_load((h.KUSTOMIZE / "overlays" / overlay / "kustomization.yaml").read_text())
        )
    ]
    assert users, f"component {component} is not used by any overlay, so it is never built"


def _dev(renders: dict[str, h.Render]) -> h.Render:
    return renders["kustomize/dev"]


def test_dev_publishes_8089_on_an_in_range_node_port(renders: dict[str, h.Render]) -> None:
    svc = _dev(renders).find("Service", "roar-web")
    assert svc is not None
    (port,) = svc["spec"]["ports"]
    assert svc["spec"]["type"] == "NodePort"
    assert (port["port"], port["nodePort"]) == (8089, 30089)
    assert 30000 <= port["nodePort"] <= 32767
    assert not _dev(renders).of_kind("HorizontalPodAutoscaler")
    assert _dev(renders).find("Deployment", "roar-web")["spec"]["replicas"] == 1


def test_workshop_names(renders: dict[str, h.Render]) -> None:
    """Lab 4: the db Service is named mysql and listens on 3306."""
    for name in ("kustomize/base", "kustomize/dev", "kustomize/prod"):
        svc = renders[name].find("Service", "mysql")
        assert svc is not None and svc["spec"]["ports"][0]["port"] == 3306


#: Kinds without a namespace that overlays render.
CLUSTER_SCOPED = {"Namespace", "PersistentVolume"}
#: The namespaces the docs' commands use (`kubectl -n roar-dev` in labs 4-6, ...).
DOCUMENTED_NAMESPACES = {
    "dev": "roar-dev", "lab6-hostpath": "roar-dev", "one-pod": "roar-one-pod", "prod": "roar",
}  # fmt: skip


@pytest.mark.parametrize("overlay", h.overlays())
def test_overlay_puts_everything_in_its_namespace(
    renders: dict[str, h.Render], overlay: str
) -> None:
    """Every namespaced object lands in the overlay's Namespace; none falls back to `default`
    (lab 6's claim once did, and roar-db-0 stayed Pending)."""
    render = renders[f"kustomize/{overlay}"]
    (ns,) = render.of_kind("Namespace")
    namespace = ns["metadata"]["name"]
    assert namespace != "default"
    assert namespace == DOCUMENTED_NAMESPACES.get(overlay, namespace)
    misplaced = [
        f"{obj['kind']}/{obj['metadata']['name']} in {obj['metadata'].get('namespace', 'default')}"
        for obj in render.objects
        if obj["kind"] not in CLUSTER_SCOPED and obj["metadata"].get("namespace") != namespace
    ]
    assert not misplaced, f"not in {namespace}: {misplaced}"


def test_prod_uses_its_own_credentials_and_ingress(renders: dict[str, h.Render]) -> None:
    prod, base = renders["kustomize/prod"], renders["kustomize/base"]
    assert prod.of_kind("Ingress")
    assert prod.of_kind("Secret")[0]["metadata"]["name"].startswith("roar-db-credentials-")
    hpa = prod.find("HorizontalPodAutoscaler", "roar-web")
    assert hpa["spec"]["minReplicas"] == 3
    assert base.of_kind("Secret")[0]["metadata"]["name"].startswith("roar-db-credentials-")


def test_hostpath_component(renders: dict[str, h.Render]) -> None:
    render = renders["kustomize/lab6-hostpath"]
    pv = render.find("PersistentVolume", "roar-db-data")
    pvc = render.find("PersistentVolumeClaim", "roar-db-data")
    assert pv["spec"]["hostPath"]["path"] == "/mnt/data/roar-mysql"
    assert pvc["spec"]["volumeName"] == "roar-db-data"
    sts = render.find("StatefulSet", "roar-db")
    assert "volumeClaimTemplates" not in sts["spec"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "roar-db-data"
    (init,) = sts["spec"]["template"]["spec"]["initContainers"]
    # It hands the claim's directory to the db (what the chown does is proven on the real node:
    # tests/cluster/test_labs_real_node.py restarts the db on it).
    assert {m["name"]: m["mountPath"] for m in init["volumeMounts"]} == {"data": "/var/lib/mysql"}


def _db_pod(render: h.Render) -> dict[str, Any]:
    return render.find("StatefulSet", "roar-db")["spec"]["template"]["spec"]


def test_hostpath_data_owner_runs_the_db_image(renders: dict[str, h.Render]) -> None:
    """Lab 6: the init container pulls what the db container pulls, registry included."""
    pod = _db_pod(renders["kustomize/lab6-hostpath"])
    (db,) = (c for c in pod["containers"] if c["name"] == "db")
    (init,) = pod["initContainers"]
    assert init["name"] == "data-owner"
    assert init["image"] == db["image"] == "localhost:5000/roar-db:0.2.0"


def test_hostpath_component_follows_any_overlay(kustomize_tree: Path) -> None:
    """The component names no namespace and no registry: on top of prod it takes prod's."""
    overlay = kustomize_tree / "hostpath-on-prod"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": ["../overlays/prod"], "components": ["../components/hostpath-storage"],
        })
    )  # fmt: skip
    render = h.Render("hostpath-on-prod", h.render_kustomize(overlay))
    pvc = render.find("PersistentVolumeClaim", "roar-db-data")
    assert pvc["metadata"]["namespace"] == "roar"
    pod = _db_pod(render)
    images = {c["name"]: c["image"] for c in h.containers({"spec": pod})}
    assert images == {"data-owner": "registry.example.com/roar/roar-db:0.2.0",
                      "db": "registry.example.com/roar/roar-db:0.2.0"}  # fmt: skip


def test_one_pod_component(renders: dict[str, h.Render]) -> None:
    render = renders["kustomize/one-pod"]
    assert not render.of_kind("StatefulSet")
    (dep,) = render.of_kind("Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["db", "migrate"]
    assert pod["initContainers"][0]["restartPolicy"] == "Always"  # a native sidecar
    for c in (pod["initContainers"][1], pod["containers"][0]):
        env = {e["name"]: e for e in c["env"]}
        assert env["MYSQL_HOST"]["value"] == "127.0.0.1"
