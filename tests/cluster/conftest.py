"""The cluster tier: a real control plane (etcd, kube-apiserver, controller-manager, scheduler)
on loopback with kwok-simulated nodes, started once per session by tools/cluster/up.

Never skipped for a missing binary: if the build or the start-up fails, every test here fails
with the reason (a silent skip would let CI go green without the tier)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubekit import KubeCluster, wait_for

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "cluster"


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    build = subprocess.run([str(TOOLS / "build")], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(
            "building the cluster binaries failed (scripts/setup/cluster.sh builds them):\n"
            + build.stderr[-4000:],
            pytrace=False,
        )
    bin_dir = Path(build.stdout.strip().splitlines()[-1])
    state = tmp_path_factory.mktemp("kube-cluster")
    up = subprocess.run(
        [str(TOOLS / "up"), "--dir", str(state), "--bin-dir", str(bin_dir)],
        capture_output=True, text=True,
    )  # fmt: skip
    if up.returncode != 0:
        pytest.fail(f"tools/cluster/up failed:\n{up.stderr[-6000:]}", pytrace=False)
    try:
        yield KubeCluster(Path(up.stdout.strip().splitlines()[-1]), bin_dir, state)
    finally:
        subprocess.run([str(TOOLS / "down"), "--dir", str(state)], check=False)


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    """A fresh namespace per test, with its default ServiceAccount present (pods need it)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    wait_for(lambda: kube_cluster.kubectl(
        "get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        what=f"default ServiceAccount in {name}")  # fmt: skip
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
