"""Flux's source-controller and kustomize-controller, built from their Go modules (the versions
gitopskit installs the CRDs of) and run as processes out of cluster against the test API server.

Each module says `replace github.com/fluxcd/<name>/api => ./api`, and a module zip leaves nested
modules out, so the build copies the module out of the (read-only) module cache, unpacks the
matching `/api` module into it, and builds there. The binary is cached per version under
gitopskit.GITOPS_CACHE and built once under a lock (parallel sessions); the copy is removed.

One substitution: the module proxy here does not serve github.com/fluxcd/pkg/artifact v0.18.3
(403, "not available"), which source-controller v1.9.6 requires; v0.18.0 is served, and its
go.mod differs from v0.18.3's only in dependency versions (which the controller's own go.mod
raises anyway), so the build replaces it (SUBSTITUTES; part of the cache key).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gitopskit import FLUX_RELEASED, GITOPS_CACHE, run_go
from kubekit import KubeCluster
from monitoringkit import GO, module_dir

from support.net import free_port, http_get
from support.procs import stop_process
from support.wait import eventually

FLUX = "github.com/fluxcd"
SOURCE = "source-controller"
KUSTOMIZE = "kustomize-controller"
RUNTIME_NAMESPACE = "flux-system"
#: Dependencies the proxy does not serve at the version a controller requires -> a served one.
SUBSTITUTES: dict[str, dict[str, str]] = {
    SOURCE: {"github.com/fluxcd/pkg/artifact": "v0.18.0"},
}


def _writable(tree: Path) -> None:
    """The module cache's files and directories are read-only; the build's copy must not be."""
    for path in (tree, *tree.rglob("*")):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def controller_binary(name: str) -> Path:
    """``name`` (source-controller or kustomize-controller) built once per version."""
    module = f"{FLUX}/{name}"
    version = FLUX_RELEASED[module]
    substitutes = SUBSTITUTES.get(name, {})
    key = "".join(f"_{m.rsplit('/', 1)[-1]}@{v}" for m, v in sorted(substitutes.items()))
    target = GITOPS_CACHE / f"{name}-{version}{key}"
    binary = target / name
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            src = target / "src"
            shutil.rmtree(src, ignore_errors=True)
            shutil.copytree(module_dir(module, version), src, symlinks=True)
            _writable(src)
            shutil.copytree(module_dir(f"{module}/api", version), src / "api", symlinks=True)
            _writable(src / "api")
            for dependency, served in substitutes.items():
                run_go([GO, "mod", "edit", f"-replace={dependency}={dependency}@{served}"], cwd=src,
                       what=f"replacing {dependency}")  # fmt: skip
                # Records the replacement's checksum in go.sum (the build itself is -mod=readonly).
                run_go([GO, "mod", "download", dependency], cwd=src, what=f"fetching {dependency}")
            partial = target / f".{name}.partial"
            run_go([GO, "build", "-o", str(partial), "."], cwd=src,
                   what=f"building {name}@{version}")  # fmt: skip
            partial.rename(binary)  # atomic: a binary that exists is whole
            shutil.rmtree(src)
    return binary


@dataclass
class Controller:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    health: int

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} log ({self.log}), last {lines} lines:\n" + "\n".join(text)


@dataclass
class Flux:
    source: Controller
    kustomize: Controller

    def logs(self) -> str:
        return f"{self.source.tail()}\n{self.kustomize.tail()}"


def _start(name: str, args: list[str], cluster: KubeCluster, work: Path) -> Controller:
    health, metrics = free_port(), free_port()
    log = work / f"{name}.log"
    argv = [str(controller_binary(name)), f"--health-addr=127.0.0.1:{health}",
            f"--metrics-addr=127.0.0.1:{metrics}", "--enable-leader-election=false",
            "--log-level=debug", "--log-encoding=console", *args]  # fmt: skip
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), RUNTIME_NAMESPACE=RUNTIME_NAMESPACE)
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work)
    return Controller(name, proc, log, health)


def _healthy(controller: Controller) -> bool:
    if controller.proc.poll() is not None:
        raise AssertionError(f"{controller.name} exited {controller.proc.returncode}\n"
                             f"{controller.tail()}")  # fmt: skip
    return http_get(f"http://127.0.0.1:{controller.health}/readyz")[0] == 200


def install_crds(cluster: KubeCluster) -> None:
    """The two controllers' CRDs (as released in their modules), as gitopskit applies them."""
    files: list[Path] = []
    for name in (SOURCE, KUSTOMIZE):
        module = f"{FLUX}/{name}"
        files += sorted((module_dir(module, FLUX_RELEASED[module]) / "config/crd/bases").glob("*"))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=roar-tests",
                    *(a for f in files for a in ("-f", str(f))), timeout=300)  # fmt: skip
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=120s",
                    *(f"-f={f}" for f in files), timeout=180)  # fmt: skip


@contextmanager
def running_flux(
    cluster: KubeCluster, work: Path, *, requeue_dependency: str = "30s"
) -> Iterator[Flux]:
    """Both controllers, started out of cluster (leader election off, every listener on a free
    127.0.0.1 port, artifacts under ``work``), ready; stopped on exit. ``requeue_dependency``:
    how soon kustomize-controller looks again at a Kustomization whose dependency (or source)
    was not ready (Flux's default 30 s)."""
    storage = free_port()
    (work / "artifacts").mkdir(parents=True, exist_ok=True)
    source_args = [f"--storage-path={work / 'artifacts'}", f"--storage-addr=127.0.0.1:{storage}",
                   f"--storage-adv-addr=127.0.0.1:{storage}"]  # fmt: skip
    install_crds(cluster)
    started: list[Controller] = []
    try:
        started.append(_start(SOURCE, source_args, cluster, work))
        started.append(_start(KUSTOMIZE, [f"--requeue-dependency={requeue_dependency}"],
                              cluster, work))  # fmt: skip
        for controller in started:
            eventually(lambda c=controller: _healthy(c), what=f"{controller.name} ready",
                       within=60)  # fmt: skip
        yield Flux(*started)
    finally:
        for controller in started:
            stop_process(controller.proc)
