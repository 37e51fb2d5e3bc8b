"""The cluster tier: a real control plane (etcd, kube-apiserver, controller-manager, scheduler)
started once per session by tools/cluster/up, with kwok-simulated nodes for the scale tests and
one real node (containerd, kubelet, kube-proxy, CoreDNS) on which ROAR's images run.

Never skipped for a missing binary: if the build or the start-up fails, every test here fails
with the reason (a silent skip would let CI go green without the tier)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubekit import TOOLS, HostState, KubeCluster, wait_for
from nodekit import DB, OPERATOR, WEB

from images.conftest import Images, images, podman  # noqa: F401 - the images tier's session fixtures
from manifests.helpers import prepare_kustomize_tree


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
    before = HostState.read(state)
    # One real node per machine: parallel development sessions set ROAR_TEST_REAL_NODES=0 and
    # deselect the real_node tests (CI always runs with the node).
    real_nodes = os.environ.get("ROAR_TEST_REAL_NODES", "1")
    up = subprocess.run(
        [str(TOOLS / "up"), "--dir", str(state), "--bin-dir", str(bin_dir),
         "--real-nodes", real_nodes],
        capture_output=True, text=True,
    )  # fmt: skip
    if up.returncode != 0:
        pytest.fail(f"tools/cluster/up failed:\n{up.stderr[-6000:]}", pytrace=False)
    try:
        yield KubeCluster(Path(up.stdout.strip().splitlines()[-1]), bin_dir, state)
    finally:
        down = subprocess.run([str(TOOLS / "down"), "--dir", str(state)], capture_output=True,
                              text=True)  # fmt: skip
        # The machine as the cluster found it: a failure here is reported as this fixture's error.
        assert down.returncode == 0, f"tools/cluster/down failed:\n{down.stderr[-4000:]}"
        after = HostState.read(state)
        assert after == before, HostState.diff(before, after)


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    """A fresh namespace per test (pods on kwok nodes), with its default ServiceAccount."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    wait_for(lambda: kube_cluster.kubectl(
        "get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        what=f"default ServiceAccount in {name}")  # fmt: skip
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def node_images(kube_cluster: KubeCluster, images: Images) -> None:  # noqa: F811
    """ROAR's images, built by the images tier's recipe, in the real node's containerd under the
    names the manifests use."""
    for source, target in ((images.web_v1, WEB), (images.db, DB), (images.operator, OPERATOR)):
        subprocess.run(["podman", "tag", source, target], check=True, capture_output=True)
    load = subprocess.run(
        [str(TOOLS / "cluster.py"), "load", "--dir", str(kube_cluster.state_dir),
         WEB, DB, OPERATOR],
        capture_output=True, text=True,
    )  # fmt: skip
    assert load.returncode == 0, f"loading the images failed:\n{load.stderr[-4000:]}"


@pytest.fixture(scope="session")
def kustomize_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/kustomize copied, with credential files made from their .example files."""
    return prepare_kustomize_tree(tmp_path_factory.mktemp("kustomize"))
