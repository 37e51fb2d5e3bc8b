"""The control plane itself: versions, RBAC, workloads under kwok, volume binding, dry-run."""

from __future__ import annotations

import ipaddress
import json

import pytest
from kubekit import KubeCluster, apply, is_ready, network, wait_for

pytestmark = pytest.mark.cluster

K8S_VERSION = "v1.37.2"  # tools/cluster/build pins it
IMAGE = "registry.invalid/roar-test:1"  # kwok never pulls, so no image needs to exist


def kwok_nodes(cluster: KubeCluster) -> set[str]:
    nodes = cluster.kubectl_json("get", "nodes")["items"]
    return {
        n["metadata"]["name"]
        for n in nodes
        if n["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake"
    }


def test_server_version_and_nodes(kube_cluster: KubeCluster) -> None:
    version = json.loads(kube_cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == K8S_VERSION
    assert version["clientVersion"]["gitVersion"] == K8S_VERSION
    nodes = kube_cluster.kubectl_json("get", "nodes")["items"]
    assert len(kwok_nodes(kube_cluster)) >= 2
    assert all(is_ready(n) for n in nodes)


def test_rbac_is_enforced_for_a_service_account_token(
    kube_cluster: KubeCluster, namespace: str, tmp_path
) -> None:
    k = kube_cluster.kubectl
    k("create", "serviceaccount", "reader", "-n", namespace)
    k("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", namespace)
    k("create", "rolebinding", "reader", "--role=pod-reader",
      f"--serviceaccount={namespace}:reader", "-n", namespace)  # fmt: skip
    token = k("create", "token", "reader", "-n", namespace, "--duration=10m").stdout.strip()

    # A kubeconfig with only the token: the admin one carries a client certificate, which the
    # apiserver would authenticate first.
    admin = json.loads(k("config", "view", "--raw", "-o", "json").stdout)
    cluster = admin["clusters"][0]["cluster"]
    kubeconfig = tmp_path / "reader.kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "reader",
                                               "namespace": namespace}}],
        "current-context": "c",
    }))  # fmt: skip

    def as_reader(*args: str):
        return k("--kubeconfig", str(kubeconfig), *args, check=False)

    who = as_reader("auth", "whoami", "-o", "json")
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{namespace}:reader"
    )
    can_create = as_reader("auth", "can-i", "create", "deployments")
    assert (can_create.returncode, can_create.stdout.strip()) == (1, "no")
    can_list = as_reader("auth", "can-i", "list", "pods")
    assert (can_list.returncode, can_list.stdout.strip()) == (0, "yes")
    # The Role is namespaced: nothing outside it.
    assert as_reader("auth", "can-i", "list", "pods", "-n", "kube-system").stdout.strip() == "no"

    created = as_reader("create", "deployment", "nope", f"--image={IMAGE}")
    assert created.returncode != 0
    assert "forbidden" in created.stderr.lower(), created.stderr
    assert k("get", "deployments", "-n", namespace, "-o", "name").stdout.strip() == ""

    listed = as_reader("get", "pods")
    assert listed.returncode == 0, listed.stderr


def test_deployment_becomes_available_on_kwok_nodes(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    k = kube_cluster.kubectl
    k("create", "deployment", "web", f"--image={IMAGE}", "--replicas=2", "-n", namespace)
    k("wait", "--for=condition=Available", "deployment/web", "-n", namespace, "--timeout=90s")
    k("rollout", "status", "deployment/web", "-n", namespace, "--timeout=90s")

    pods = kube_cluster.kubectl_json("get", "pods", "-l", "app=web", "-n", namespace)["items"]
    assert len(pods) == 2
    nodes = kwok_nodes(kube_cluster)
    for pod in pods:
        assert pod["spec"]["nodeName"] in nodes
        assert pod["status"]["phase"] == "Running"
        assert is_ready(pod)
        assert pod["status"]["podIP"]  # kwok hands out addresses from its --cidr
    dep = kube_cluster.kubectl_json("get", "deployment", "web", "-n", namespace)
    assert dep["status"]["availableReplicas"] == 2


def test_statefulset_with_volume_claims_becomes_ready(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    labels = {"app": "db"}
    apply(kube_cluster, namespace, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": labels, "ports": [{"port": 3306}]},
    }, {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db", "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "db", "image": IMAGE,
                    "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}],
                }]},
            },
            # No storageClassName: the cluster's default class must pick the claims up.
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    })  # fmt: skip
    kube_cluster.kubectl("rollout", "status", "statefulset/db", "-n", namespace, "--timeout=120s")
    sts = kube_cluster.kubectl_json("get", "statefulset", "db", "-n", namespace)
    assert sts["status"]["readyReplicas"] == 2
    pvcs = kube_cluster.kubectl_json("get", "pvc", "-n", namespace)["items"]
    assert sorted(p["metadata"]["name"] for p in pvcs) == ["data-db-0", "data-db-1"]
    for pvc in pvcs:
        assert pvc["status"]["phase"] == "Bound"
        assert pvc["spec"]["storageClassName"] == "standard"


def test_job_pods_complete(kube_cluster: KubeCluster, namespace: str) -> None:
    """kwok ends Job pods as Succeeded, so Jobs (e.g. Helm hooks) complete."""
    k = kube_cluster.kubectl
    k("create", "job", "once", f"--image={IMAGE}", "-n", namespace)
    k("wait", "--for=condition=Complete", "job/once", "-n", namespace, "--timeout=90s")


def test_server_side_dry_run(kube_cluster: KubeCluster, namespace: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"},
          "data": {"a": "1"}}  # fmt: skip
    res = kube_cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(cm)
    )
    assert "server dry run" in res.stdout
    missing = kube_cluster.kubectl("get", "configmap", "dry", "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr  # nothing was persisted

    # The server validates what the client cannot: an unknown field is rejected.
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": IMAGE,
                                                          "nope": True}]}}}}  # fmt: skip
    res = kube_cluster.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-",
        input=json.dumps(bad), check=False,
    )  # fmt: skip
    assert res.returncode != 0
    assert "nope" in res.stderr


def test_service_gets_a_cluster_ip(kube_cluster: KubeCluster, namespace: str) -> None:
    kube_cluster.kubectl("create", "service", "clusterip", "web", "--tcp=80:8080", "-n", namespace)
    svc = kube_cluster.kubectl_json("get", "service", "web", "-n", namespace)
    assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in ipaddress.ip_network(
        network.SERVICE_CIDR
    )
    wait_for(
        lambda: kube_cluster.kubectl(
            "get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-n", namespace,
            "-o", "name").stdout.strip() != "",
        what="the Service's EndpointSlice (made by the controller-manager)",
    )  # fmt: skip


def test_hpa_controller_enforces_min_replicas(kube_cluster: KubeCluster, namespace: str) -> None:
    """The HPA controller runs with its own credentials and may scale (there are no metrics
    here, so only its min/max bounds can act)."""
    k = kube_cluster.kubectl
    k("create", "deployment", "scaled", f"--image={IMAGE}", "--replicas=1", "-n", namespace)
    k("autoscale", "deployment", "scaled", "--min=3", "--max=4", "--cpu=80", "-n", namespace)
    k("wait", "--for=jsonpath={.spec.replicas}=3", "deployment/scaled", "-n", namespace,
      "--timeout=90s")  # fmt: skip
    k("rollout", "status", "deployment/scaled", "-n", namespace, "--timeout=90s")
    hpa = kube_cluster.kubectl_json("get", "hpa", "scaled", "-n", namespace)
    assert {c["type"] for c in hpa["status"].get("conditions", [])} >= {"AbleToScale"}
