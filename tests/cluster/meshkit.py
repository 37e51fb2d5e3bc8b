"""What the cluster tier's mesh tests fetch from the Go module proxy (never committed): Istio's
CRDs (Go module istio.io/api) and the Gateway API's standard-channel CRDs (Go module
sigs.k8s.io/gateway-api), cached beside the cluster's own Go modules (monitoringkit.module_dir).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from kubekit import KubeCluster
from monitoringkit import module_dir

ISTIO_API = "istio.io/api"
#: The Istio release whose CRDs the tests apply (networking.istio.io/v1, security.istio.io/v1).
ISTIO_API_VERSION = "v1.32.0"
GATEWAY_API = "sigs.k8s.io/gateway-api"
GATEWAY_API_VERSION = "v1.6.3"


def istio_crd_files() -> list[Path]:
    return [
        module_dir(ISTIO_API, ISTIO_API_VERSION)
        / "kubernetes"
        / "customresourcedefinitions.gen.yaml"
    ]


def gateway_api_crd_files() -> list[Path]:
    """The standard channel's CRDs, and its ValidatingAdmissionPolicy that keeps experimental
    CRDs from replacing them (as in the release's standard-install.yaml)."""
    directory = module_dir(GATEWAY_API, GATEWAY_API_VERSION) / "config" / "crd" / "standard"
    files = sorted(directory.glob("*.yaml"))
    assert files, f"no CRDs in {directory}"
    return files


def crd_names(files: Iterable[Path]) -> list[str]:
    return [
        doc["metadata"]["name"]
        for path in files
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]


def install_crds(cluster: KubeCluster, files: list[Path]) -> list[str]:
    """Apply ``files`` server-side (the CRDs are too large for client-side apply's annotation);
    returns the CRDs' names once every one is Established."""
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager=roar-tests"]
    for path in files:
        args += ["-f", str(path)]
    cluster.kubectl(*args, timeout=300)
    names = crd_names(files)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=120s",
                    *(f"crd/{n}" for n in names), timeout=180)  # fmt: skip
    return names


def install_istio_crds(cluster: KubeCluster) -> list[str]:
    return install_crds(cluster, istio_crd_files())


def install_gateway_api_crds(cluster: KubeCluster) -> list[str]:
    return install_crds(cluster, gateway_api_crd_files())
