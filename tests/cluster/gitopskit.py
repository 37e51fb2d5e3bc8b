"""What the cluster tier's GitOps tests fetch from the Go module proxy (never committed): Argo CD's
CRDs and Flux's, cached beside the cluster's own Go modules (monitoringkit.module_dir).

Argo CD ships its CRDs in its module (manifests/crds). Of Flux's controllers, the proxy serves
source-controller's and kustomize-controller's modules (config/crd/bases, as released) but not
helm-controller's, image-reflector-controller's or image-automation-controller's; their API
modules are served, so those CRDs are generated from the API types with controller-gen, the
version and options Flux's own Makefiles use (`crd:crdVersions=v1 paths=./...`). The versions
are Flux 2.9's set and the newest Argo CD whose modules this machine's Go (1.26) accepts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import yaml
from kubekit import CACHE, KubeCluster
from monitoringkit import GO, GO_CACHE, module_dir

ARGO_CD = "github.com/argoproj/argo-cd/v3"
ARGO_CD_VERSION = "v3.5.7"
#: Flux modules whose zips carry their CRDs.
FLUX_RELEASED = {
    "github.com/fluxcd/source-controller": "v1.9.6",
    "github.com/fluxcd/kustomize-controller": "v1.9.6",
}
#: Flux API modules whose CRDs are generated (their controllers' modules are not served).
FLUX_GENERATED = {
    "github.com/fluxcd/helm-controller/api": "v1.6.5",
    "github.com/fluxcd/image-reflector-controller/api": "v1.2.5",
    "github.com/fluxcd/image-automation-controller/api": "v1.2.5",
}
CONTROLLER_TOOLS = "sigs.k8s.io/controller-tools"
CONTROLLER_GEN_VERSION = "v0.21.0"  # source-controller v1.9.6's Makefile
GITOPS_CACHE = CACHE / "gitops"


def _go_env(**extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        PATH=f"{Path(GO).parent}:{os.environ.get('PATH', '')}",  # controller-gen runs `go list`
        GOMODCACHE=str(GO_CACHE / "mod"),
        GOCACHE=str(GO_CACHE / "build"),
        GOFLAGS="-mod=readonly -trimpath -buildvcs=false",
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
        **extra,
    )


def run_go(argv: list[str], *, cwd: Path | str, what: str, **env: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=1800, cwd=cwd,
                            env=_go_env(**env))  # fmt: skip
    assert result.returncode == 0, f"{what} failed:\n{result.stderr[-4000:]}"


def argocd_crd_files() -> list[Path]:
    directory = module_dir(ARGO_CD, ARGO_CD_VERSION) / "manifests" / "crds"
    return sorted(directory.glob("*-crd.yaml"))


def controller_gen() -> Path:
    """controller-gen, built once per version under a lock (parallel sessions)."""
    target = GITOPS_CACHE / f"controller-gen-{CONTROLLER_GEN_VERSION}"
    binary = target / "controller-gen"
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            tool = f"{CONTROLLER_TOOLS}/cmd/controller-gen@{CONTROLLER_GEN_VERSION}"
            run_go([GO, "install", tool], cwd="/", what="building controller-gen",
                   GOBIN=str(target))  # fmt: skip
    return binary


def _generated_crds(module: str, version: str) -> list[Path]:
    """The CRDs of one API module, generated once per version (and controller-gen version)."""
    key = f"{module.replace('/', '_')}@{version}-cg{CONTROLLER_GEN_VERSION}"
    target = GITOPS_CACHE / "crds" / key
    done = target / ".complete"
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            # Run in the module's own directory, as Flux's Makefiles do (`cd api; controller-gen`):
            # its go.mod and go.sum resolve the types' dependencies.
            argv = [str(controller_gen()), "crd:crdVersions=v1", "paths=./...",
                    f"output:crd:dir={target}"]  # fmt: skip
            run_go(argv, cwd=module_dir(module, version), what=f"generating the CRDs of {module}")
            done.touch()
    files = sorted(target.glob("*.yaml"))
    assert files, f"controller-gen wrote no CRD for {module}@{version}"
    return files


def flux_crd_files() -> list[Path]:
    files = []
    for module, version in FLUX_RELEASED.items():
        files += sorted((module_dir(module, version) / "config" / "crd" / "bases").glob("*.yaml"))
    for module, version in FLUX_GENERATED.items():
        files += _generated_crds(module, version)
    return files


def _crd_name(path: Path) -> str:
    # libyaml's loader: the Python one takes seconds over Argo CD's 1.8 MB of CRDs.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    (doc,) = [d for d in yaml.load_all(path.read_text(), Loader=loader) if d]
    assert doc["kind"] == "CustomResourceDefinition", path
    return str(doc["metadata"]["name"])


def install_gitops_crds(cluster: KubeCluster) -> list[str]:
    """Argo CD's and Flux's CRDs, applied server-side (too large for client-side apply's
    annotation); their names once every one is Established."""
    files = argocd_crd_files() + flux_crd_files()
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager=roar-tests"]
    for path in files:
        args += ["-f", str(path)]
    cluster.kubectl(*args, timeout=300)
    names = [_crd_name(path) for path in files]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=120s",
                    *(f"crd/{n}" for n in names), timeout=180)  # fmt: skip
    return names


def lua() -> Path:
    """Debian's Lua 5.1 (scripts/setup/kube-tools.sh installs it): the language level of the
    interpreter Argo CD embeds (gopher-lua)."""
    found = shutil.which("lua5.1")
    assert found, "lua5.1 not found: run scripts/setup/kube-tools.sh (apt package lua5.1)"
    return Path(found)
