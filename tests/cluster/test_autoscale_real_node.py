"""Resource metrics on the real node: metrics-server reads the kubelet, `kubectl top` answers,
and the HPA controller scales ROAR's web pods out under load.

First of the cluster tier's files on purpose: on a node that has already run and deleted many
pods, the kubelet's summary once returned no stats for a new pod for minutes (metrics-server
scraped 1 pod of several; the HPA saw "no metrics returned"), so the HPA check runs while the
node is fresh. The cause is not found yet (docs/cluster.md, Limits)."""

from __future__ import annotations

import pytest
from kubekit import KubeCluster, wait_for
from nodekit import WEB, answers, live_pods, real_namespace, request_loop

# First real-node test: its set-up starts the cluster and loads the images (minutes on a busy
# machine, where the other tiers run beside this one), which pytest-timeout counts too.
pytestmark = [pytest.mark.cluster, pytest.mark.real_node, pytest.mark.timeout(900)]


def test_hpa_scales_a_busy_web_deployment(kube_cluster: KubeCluster, node_images: None) -> None:
    """metrics-server reads the kubelet's resource metrics, so `kubectl top` answers and the HPA
    controller scales ROAR's web pods out under a bounded request loop."""
    ns = "roar-hpa"
    k = kube_cluster.kubectl
    real_namespace(kube_cluster, ns)
    try:
        # ROAR on its embedded database: one container, nothing else to wait for.
        k("create", "deployment", "web", f"--image={WEB}", "--port=8080", "-n", ns)
        k("set", "resources", "deployment/web", "--requests=cpu=20m,memory=64Mi", "-n", ns)
        k("expose", "deployment/web", "--type=NodePort", "--port=8080", "-n", ns)
        k("autoscale", "deployment/web", "--cpu=50", "--min=1", "--max=3", "-n", ns)
        k("rollout", "status", "deployment/web", "-n", ns, "--timeout=120s")
        top = ("top", "pod", "-n", ns, "--no-headers")
        wait_for(lambda: k(*top, check=False).stdout.strip() != "",
                 what="pod metrics from metrics-server", timeout=120, interval=2)  # fmt: skip
        port = kube_cluster.kubectl_json("get", "service", "web", "-n", ns)["spec"]["ports"][0]
        # A query the app itself answers (FastAPI and the database): about 4 ms of CPU each,
        # some 170m at the loop's rate. The fast path's legacy list costs about 0.5 ms (20m at
        # this rate, twice the HPA's target of 50% of 20m), yet on CI the HPA kept 1 replica for
        # 3 minutes with `kubectl top` at 54m (cause not found): the margin is now wide.
        url = f"http://127.0.0.1:{port['nodePort']}/api/v1/agents?species=Dog&sort=-name"
        # kube-proxy opens a new NodePort a moment after the Service is made.
        wait_for(lambda: answers(url), what="the NodePort answering", timeout=60)

        def scaled_out() -> bool:
            hpa = kube_cluster.kubectl_json("get", "hpa", "web", "-n", ns)
            return hpa["status"].get("desiredReplicas", 1) > 1

        load = request_loop(url, until=scaled_out, max_requests=20000, max_seconds=180)
        hpa = kube_cluster.kubectl_json("get", "hpa", "web", "-n", ns)
        assert scaled_out(), (
            f"no scale-out after {load.total} requests ({dict(load.statuses)}, "
            f"{len(load.errors)} errors); top: {k(*top, check=False).stdout!r}; "
            f"HPA metrics: {hpa['status'].get('currentMetrics')}; "
            f"conditions: {hpa['status'].get('conditions')}"
        )
        assert set(load.statuses) == {200} and not load.errors
        hpa = kube_cluster.kubectl_json("get", "hpa", "web", "-n", ns)
        active = {c["type"]: c for c in hpa["status"]["conditions"]}["ScalingActive"]
        assert active["status"] == "True" and active["reason"] == "ValidMetricFound", active
        k("rollout", "status", "deployment/web", "-n", ns, "--timeout=120s")
        assert len(live_pods(kube_cluster, ns, "app=web")) > 1
    finally:
        k("delete", "namespace", ns, "--wait=false", check=False)
