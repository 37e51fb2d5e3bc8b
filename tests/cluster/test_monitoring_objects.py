"""Every monitoring object ROAR ships, applied server-side to the test control plane with the
Prometheus Operator's own CRDs (v0.85.0, from its Go module): the kustomize component, the chart
with monitoring on, the operator's PodMonitor and the ServiceMonitor the operator builds for a
RoarApp, and the plain Prometheus's RBAC. The API server validates each against the CRD's
schema and stores it whole (a structural schema prunes what it does not know)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubekit import KubeCluster
from monitoringkit import install_prometheus_operator_crds

from manifests import helpers as h
from roar.monitoring import rules
from roar.operator import reconcile
from roar.operator.settings import OperatorSettings

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
MONITORING_ON = [
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.dashboard.enabled=true",
]
KINDS = ("PrometheusRule", "ServiceMonitor", "PodMonitor", "ConfigMap", "NetworkPolicy")


@pytest.fixture(scope="module")
def crds(kube_cluster: KubeCluster) -> list[str]:
    return install_prometheus_operator_crds(kube_cluster)


def _apply(cluster: KubeCluster, ns: str, objects: list[dict[str, Any]], *flags: str) -> str:
    doc = {"apiVersion": "v1", "kind": "List", "items": objects}
    return cluster.kubectl(
        "apply", "--server-side", "--field-manager=roar-tests", "-n", ns, *flags, "-f", "-",
        input=json.dumps(doc),
    ).stdout  # fmt: skip


def _in(ns: str, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The monitoring objects of a render, moved into the test's namespace."""
    out = []
    for obj in objects:
        if obj["kind"] in KINDS:
            obj["metadata"]["namespace"] = ns
            out.append(obj)
    return out


def _component(kustomize_tree: Path, ns: str) -> list[dict[str, Any]]:
    """The base with the monitoring component, in ``ns`` (as an overlay would put it)."""
    overlay = kustomize_tree / f"monitoring-{ns}"
    overlay.mkdir(exist_ok=True)
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": ns, "resources": ["../base"],
        "components": ["../components/monitoring"],
    }))  # fmt: skip
    return h.load_all(h.run([str(h.BIN / "kubectl"), "kustomize", str(overlay)]).stdout)


def test_the_crds_install(crds: list[str]) -> None:
    assert {"prometheusrules.monitoring.coreos.com", "servicemonitors.monitoring.coreos.com",
            "podmonitors.monitoring.coreos.com"} <= set(crds)  # fmt: skip


def test_the_component_applies_and_is_stored_whole(
    kube_cluster: KubeCluster, crds: list[str], kustomize_tree: Path, namespace: str
) -> None:
    objects = _in(namespace, _component(kustomize_tree, namespace))
    kinds = {o["kind"] for o in objects}
    assert kinds == {"PrometheusRule", "ServiceMonitor", "ConfigMap", "NetworkPolicy"}
    _apply(kube_cluster, namespace, objects)
    stored = kube_cluster.kubectl_json("get", "prometheusrule", "roar", "-n", namespace)
    assert stored["spec"] == rules.rule_file()  # nothing pruned, nothing rewritten
    monitor = kube_cluster.kubectl_json("get", "servicemonitor", "roar-web", "-n", namespace)
    sent = next(o for o in objects if o["kind"] == "ServiceMonitor")
    assert monitor["spec"] == sent["spec"]


def test_the_chart_with_monitoring_on_applies(
    kube_cluster: KubeCluster, crds: list[str], namespace: str
) -> None:
    args = h.helm_template_args(sets=MONITORING_ON)
    args[args.index("--namespace") + 1] = namespace
    objects = _in(namespace, h.load_all(h.run([*args, "--skip-tests"]).stdout))
    assert {"PrometheusRule", "ServiceMonitor", "ConfigMap"} <= {o["kind"] for o in objects}
    _apply(kube_cluster, namespace, objects)
    stored = kube_cluster.kubectl_json("get", "prometheusrule", "rel-roar", "-n", namespace)
    assert stored["spec"] == rules.rule_file()


def test_the_operator_objects_apply(
    kube_cluster: KubeCluster, crds: list[str], namespace: str
) -> None:
    """The operator's PodMonitor, and the ServiceMonitor the operator builds for a RoarApp that
    asks for one (sent as the operator would send it, checked by the server, not stored)."""
    podmonitor = yaml.safe_load(
        (MONITORING / "kubernetes" / "operator-podmonitor.yaml").read_text()
    )
    app = {
        "apiVersion": "app.example.com/v1alpha1", "kind": "RoarApp",
        "metadata": {"name": "shop", "namespace": namespace, "uid": "0000-1"},
        "spec": {"monitoring": {"serviceMonitor": {"enabled": True, "interval": "15s"}}},
    }  # fmt: skip
    spec = reconcile.to_roar_spec(app, OperatorSettings(liveness_endpoint=None))
    children = reconcile.desired_objects(app, spec, passwords=("pw", "root"))
    (monitor,) = [o for o in children if o["kind"] == "ServiceMonitor"]
    monitor["metadata"].pop("ownerReferences")  # its owner does not exist here
    _apply(kube_cluster, namespace, _in(namespace, [podmonitor]))
    out = _apply(kube_cluster, namespace, [monitor], "--dry-run=server")
    assert "servicemonitor.monitoring.coreos.com/shop-web serverside-applied" in out


def test_plain_prometheus_rbac_applies(kube_cluster: KubeCluster, namespace: str) -> None:
    rbac = h.load_all((MONITORING / "prometheus-k8s" / "rbac.yaml").read_text())
    _apply(kube_cluster, namespace, rbac)
    allowed = kube_cluster.kubectl(
        "auth", "can-i", "watch", "pods", "-n", namespace,
        f"--as=system:serviceaccount:{namespace}:roar-prometheus", check=False,
    )  # fmt: skip
    denied = kube_cluster.kubectl(
        "auth", "can-i", "get", "secrets", "-n", namespace,
        f"--as=system:serviceaccount:{namespace}:roar-prometheus", check=False,
    )  # fmt: skip
    assert (allowed.stdout.strip(), denied.stdout.strip()) == ("yes", "no")


def test_the_crd_schema_refuses_a_broken_object(
    kube_cluster: KubeCluster, crds: list[str], namespace: str
) -> None:
    """The check above can fail: a wrong field type is refused by the same server."""
    bad = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "interval": "soon"}]},
    }  # fmt: skip
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": [bad]})
    result = kube_cluster.kubectl("apply", "--server-side", "--dry-run=server", "-n", namespace,
                                  "-f", "-", input=doc, check=False)  # fmt: skip
    assert result.returncode != 0 and "interval" in result.stderr, result.stderr
