"""Helpers for the cluster tier: the handle that the `kube_cluster` fixture yields, and waits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CACHE = Path(os.environ.get("ROAR_CACHE_DIR") or "/var/cache/roar")


@dataclass
class KubeCluster:
    kubeconfig: Path
    bin_dir: Path
    state_dir: Path
    helm_home: Path = field(init=False)

    def __post_init__(self) -> None:
        self.helm_home = self.state_dir / "helm"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        # The built kubectl first on PATH, so helm plugins and scripts see the same version.
        env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '')}"
        for kind in ("CACHE", "CONFIG", "DATA"):  # keep helm off the user's own repos/config
            env[f"HELM_{kind}_HOME"] = str(self.helm_home / kind.lower())
        return env

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return _run(
            [str(self.bin_dir / "kubectl"), *args], self.env, check=check, input=input,
            timeout=timeout,
        )  # fmt: skip

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def helm(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return _run([str(helm_binary()), *args], self.env, check=check, timeout=timeout)


def _run(
    argv: list[str], env: dict[str, str], *, check: bool, input: str | None = None, timeout: float
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        argv, env=env, input=input, capture_output=True, text=True, timeout=timeout
    )
    if check and res.returncode != 0:
        # CalledProcessError hides stderr in pytest's report; this shows what the tool said.
        raise AssertionError(
            f"{' '.join(argv)} exited {res.returncode}\n"
            f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
        )
    return res


def helm_binary() -> Path:
    """Helm from scripts/setup/kube-tools.sh (its cache bin dir), else from PATH."""
    for candidate in (CACHE / "bin" / "helm", shutil.which("helm")):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    pytest.fail("helm not found: run scripts/setup/kube-tools.sh (installs it into "
                f"{CACHE / 'bin'})")  # fmt: skip


def wait_for(
    probe: Callable[[], bool], *, what: str, timeout: float = 60, interval: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def is_ready(obj: dict[str, Any]) -> bool:
    conds = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def apply(cluster: KubeCluster, namespace: str, *objects: dict[str, Any]) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))
