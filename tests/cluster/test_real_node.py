"""The real node beside the kwok nodes: Ready, labelled and tainted so each workload lands where
it belongs, one per machine, and a clear error where the machine lacks what it needs. (Resource
metrics and the HPA: test_autoscale_real_node.py. What it runs is shown by the labs' tests; that
`down` puts the machine back is checked by the `kube_cluster` fixture itself.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from kubekit import TOOLS, KubeCluster, is_ready, network, realnode, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.real_node]


def test_real_node_is_ready_labelled_and_tainted(kube_cluster: KubeCluster) -> None:
    node = kube_cluster.kubectl_json("get", "node", realnode.NODE)
    assert is_ready(node)
    key, value = realnode.NODE_LABEL
    assert node["metadata"]["labels"][key] == value
    assert {"key": realnode.TAINT, "value": "true", "effect": "NoSchedule"} in node["spec"][
        "taints"
    ]
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == network.NODE_IP
    runtime = node["status"]["nodeInfo"]["containerRuntimeVersion"]
    assert runtime.startswith("containerd://"), runtime


def test_pods_of_other_namespaces_stay_on_kwok_nodes(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    k = kube_cluster.kubectl
    k("create", "deployment", "elsewhere", "--image=registry.invalid/x:1", "--replicas=4",
      "-n", namespace)  # fmt: skip
    k("rollout", "status", "deployment/elsewhere", "-n", namespace, "--timeout=90s")
    placed = {p["spec"]["nodeName"] for p in kube_cluster.kubectl_json(
        "get", "pods", "-n", namespace)["items"]}  # fmt: skip
    assert placed and realnode.NODE not in placed, placed


def test_a_second_real_node_on_the_machine_is_refused(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    res = subprocess.run(
        [str(TOOLS / "up"), "--dir", str(tmp_path / "second"), "--bin-dir",
         str(kube_cluster.bin_dir), "--real-nodes", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 1
    assert "a real node already runs on this machine" in res.stderr
    assert str(kube_cluster.state_dir) in res.stderr  # names the running one
    # The first node did not notice.
    assert is_ready(kube_cluster.kubectl_json("get", "node", realnode.NODE))


def test_missing_packages_are_named(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    """Where the machine lacks the node's tools, `up` says which package to install and changes
    nothing (the running node keeps its lock and bridge)."""
    env = dict(os.environ, PATH=str(tmp_path))  # no containerd, runc, iptables, ip on PATH
    res = subprocess.run(
        ["/usr/bin/python3", str(TOOLS / "cluster.py"), "up", "--dir",
         str(tmp_path / "state"), "--bin-dir", str(kube_cluster.bin_dir), "--real-nodes", "1"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert res.returncode == 1
    for tool, package in (("containerd", "containerd"), ("runc", "runc"),
                          ("iptables", "iptables"), ("ip", "iproute2")):  # fmt: skip
        assert f"`{tool}` not found: install the Debian package {package}" in res.stderr
    wait_for(lambda: is_ready(kube_cluster.kubectl_json("get", "node", realnode.NODE)),
             what="the real node still Ready")  # fmt: skip
