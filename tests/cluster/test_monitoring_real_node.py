"""A plain Prometheus (no operator) finds ROAR's pods on the real node through
``kubernetes_sd_configs`` against the test API server, as the roar-prometheus ServiceAccount
of deploy/monitoring/prometheus-k8s (a Role: list and watch pods in one namespace), and scrapes
them at their pod addresses with the shipped scrape config; ROAR's recording rules then have
data labelled with the pod's namespace. Debian's Prometheus has no Kubernetes discovery, so this
one is built from its Go module (tests/cluster/monitoringkit.py)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubekit import KubeCluster
from monitoringkit import prometheus_with_kubernetes_sd
from nodekit import assert_on_real_node_and_ready, get, live_pods, pod_url, real_namespace

from roar.monitoring import rules
from support.prometheus import Prometheus, eventually

# Generous: the first test pays for the install and, on a new machine, Prometheus' build.
pytestmark = [pytest.mark.cluster, pytest.mark.real_node, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "roar"
SCRAPE = REPO / "deploy" / "monitoring" / "prometheus-k8s"
NS = "roar-mon"
RELEASE = "roar"
WEB_PODS = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=web"


@pytest.fixture(scope="module")
def roar_pods(kube_cluster: KubeCluster, node_images: None) -> Iterator[list[dict[str, Any]]]:
    real_namespace(kube_cluster, NS)
    kube_cluster.helm("install", RELEASE, str(CHART), "-n", NS,
                      "--set", "autoscaling.enabled=false", "--set", "replicaCount=1",
                      "--wait", "--timeout=6m", timeout=420)  # fmt: skip
    kube_cluster.kubectl("apply", "-n", NS, "-f", str(SCRAPE / "rbac.yaml"))
    yield live_pods(kube_cluster, NS, WEB_PODS)
    # Not waited for (time budget): nothing later uses this namespace, and the session's
    # teardown drains the node.
    kube_cluster.helm("uninstall", RELEASE, "-n", NS, check=False)
    kube_cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def _config(cluster: KubeCluster, work: Path) -> dict[str, Any]:
    """The shipped prometheus-k8s config, pointed at the test API server with the
    ServiceAccount's token, at a 1 s interval."""
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    server = kubeconfig["clusters"][0]["cluster"]
    ca = work / "ca.crt"
    if "certificate-authority-data" in server:
        ca.write_bytes(base64.b64decode(server["certificate-authority-data"]))
    else:
        ca.write_text(Path(server["certificate-authority"]).read_text())
    token = work / "token"
    token.write_text(cluster.kubectl("create", "token", "roar-prometheus", "-n", NS).stdout.strip())
    config = yaml.safe_load((SCRAPE / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str((SCRAPE / rule).resolve()) for rule in config["rule_files"]]
    (job,) = config["scrape_configs"]
    (sd,) = job["kubernetes_sd_configs"]
    sd["api_server"] = server["server"]
    sd["namespaces"] = {"names": [NS]}
    sd["authorization"] = {"credentials_file": str(token)}
    sd["tls_config"] = {"ca_file": str(ca)}
    return config  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def prometheus(
    kube_cluster: KubeCluster,
    roar_pods: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Prometheus]:
    work = tmp_path_factory.mktemp("prometheus-k8s")
    prom = Prometheus(work, executable=str(prometheus_with_kubernetes_sd()))
    prom.start(_config(kube_cluster, work))
    yield prom
    prom.stop()


def test_prometheus_discovers_and_scrapes_the_web_pods(
    roar_pods: list[dict[str, Any]], prometheus: Prometheus
) -> None:
    for pod in roar_pods:
        assert_on_real_node_and_ready(pod)
    names = sorted(p["metadata"]["name"] for p in roar_pods)

    def scraped() -> list[str]:
        return sorted(t["labels"]["pod"] for t in prometheus.targets_up())

    assert eventually(scraped, what="every web pod scraped", within=60) == names
    (target,) = [t for t in prometheus.targets_up() if t["labels"]["pod"] == names[0]]
    assert target["scrapeUrl"] == pod_url(roar_pods[0]) + "/metrics"
    assert target["labels"]["namespace"] == NS


def test_recording_rules_have_the_pods_data(
    roar_pods: list[dict[str, Any]], prometheus: Prometheus
) -> None:
    for _ in range(20):  # a little traffic straight to the pod
        assert get(pod_url(roar_pods[0]) + "/api/v1/agents").status_code == 200

    def routes() -> set[str]:
        rate = prometheus.query(f'{rules.ROUTE_REQUESTS_RATE}{{namespace="{NS}"}}')
        return {r["metric"]["route"] for r in rate}

    # Probes' routes show first; the API route once a scrape after the traffic is evaluated.
    eventually(lambda: "/api/v1/agents" in routes(), what="the API route's request rate",
               within=30)  # fmt: skip


def test_the_service_account_sees_only_its_namespace(kube_cluster: KubeCluster) -> None:
    who = f"--as=system:serviceaccount:{NS}:roar-prometheus"
    allowed = kube_cluster.kubectl("auth", "can-i", "list", "pods", "-n", NS, who, check=False)
    elsewhere = kube_cluster.kubectl("auth", "can-i", "list", "pods", "-n", "kube-system", who,
                                     check=False)  # fmt: skip
    secrets = kube_cluster.kubectl("auth", "can-i", "get", "secrets", "-n", NS, who, check=False)
    assert [r.stdout.strip() for r in (allowed, elsewhere, secrets)] == ["yes", "no", "no"]
