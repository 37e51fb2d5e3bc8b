"""What the cluster tier's monitoring tests fetch from the Go module proxy (never committed):
the Prometheus Operator's CRDs, and a Prometheus with Kubernetes service discovery (Debian's
package is built without it), both cached beside the cluster's own Go modules."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path

from kubekit import CACHE, KubeCluster

PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
PROMETHEUS = "github.com/prometheus/prometheus"
#: Prometheus 3.x (its Go module's versions are v0.3xx.y for Prometheus 3.xx.y).
PROMETHEUS_VERSION = "v0.316.0"
GO_CACHE = CACHE / "cluster" / "go"  # tools/cluster/build's module and build caches
GO = next((p for p in ("/usr/local/go/bin/go", "/usr/bin/go") if os.access(p, os.X_OK)), "go")


def _go_env() -> dict[str, str]:
    return dict(
        os.environ,
        GOMODCACHE=str(GO_CACHE / "mod"),
        GOCACHE=str(GO_CACHE / "build"),
        GOFLAGS="-mod=mod -trimpath -buildvcs=false",
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
    )


def module_dir(module: str, version: str) -> Path:
    """The unpacked module (``go mod download -json``; a cache hit after the first time)."""
    result = subprocess.run(
        [GO, "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True, text=True, timeout=600, env=_go_env(), cwd="/",
    )  # fmt: skip
    info = json.loads(result.stdout or "{}")
    assert result.returncode == 0 and "Dir" in info, result.stderr + result.stdout
    return Path(info["Dir"])


def install_prometheus_operator_crds(cluster: KubeCluster) -> list[str]:
    """The monitoring.coreos.com CRDs of the example directory, applied server-side (they are
    too large for client-side apply's annotation); returns their names once Established."""
    crds = module_dir(PROMETHEUS_OPERATOR, PROMETHEUS_OPERATOR_VERSION)
    crds = crds / "example" / "prometheus-operator-crd"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    names = [
        f"{p.name.split('_', 1)[1].removesuffix('.yaml')}.monitoring.coreos.com"
        for p in sorted(crds.glob("monitoring.coreos.com_*.yaml"))
    ]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    *(f"crd/{n}" for n in names))  # fmt: skip
    return names


def prometheus_with_kubernetes_sd() -> Path:
    """Prometheus built from its Go module with only the Kubernetes (and file, HTTP) service
    discovery compiled in; built once per version, under a lock (parallel sessions)."""
    target = CACHE / "monitoring" / f"prometheus-{PROMETHEUS_VERSION}-k8s-sd"
    binary = target / "prometheus"
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            result = subprocess.run(
                [GO, "install", "-tags", "remove_all_sd,enable_kubernetes_sd",
                 f"{PROMETHEUS}/cmd/prometheus@{PROMETHEUS_VERSION}"],
                capture_output=True, text=True, timeout=3600, cwd="/",
                env=_go_env() | {"GOBIN": str(target)},
            )  # fmt: skip
            assert result.returncode == 0, f"building Prometheus failed:\n{result.stderr[-4000:]}"
    return binary
