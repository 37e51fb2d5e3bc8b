"""kubernetes-validate --strict on every rendered object, for a recent and an older Kubernetes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from manifests import helpers as h

#: Custom resources kubernetes-validate has no schema for (it warns and skips them); the cluster
#: tier applies them against the Prometheus Operator's CRDs (test_monitoring_objects.py).
KNOWN_CRDS = {"ServiceMonitor", "PrometheusRule"}


def _problems(version: str, files: list[Path]) -> list[str]:
    """Failures, plus "no schema" warnings for anything but a known CRD (a removed API only
    warns in kubernetes-validate, and must fail here)."""
    args = [h.tool("kubernetes-validate"), "--strict", "-k", version, "--quiet"]
    result = h.run([*args, *map(str, files)], check=False)
    lines = (result.stdout + result.stderr).splitlines()
    problems = [
        line
        for line in lines
        if line.strip()
        and not ("Couldn't find schema" in line and any(f"kind {k} " in line for k in KNOWN_CRDS))
    ]
    if result.returncode != 0 and not problems:
        problems.append(f"exit {result.returncode}")
    return problems


@pytest.mark.parametrize("version", h.KUBE_VERSIONS)
def test_every_render_is_valid(rendered_dir: Path, version: str) -> None:
    files = sorted(rendered_dir.glob("*.yaml"))
    assert len(files) == len(h.render_names())
    problems = _problems(version, files)
    assert not problems, "\n".join(problems)


BAD = {
    "unknown field": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 1}], "bogus": 1},
    },
    "removed API": {
        "apiVersion": "extensions/v1beta1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {},
    },
    "wrong type": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": "eighty"}]},
    },
}


@pytest.mark.parametrize("problem", list(BAD))
def test_the_validator_catches_mistakes(kube_tools: None, tmp_path: Path, problem: str) -> None:
    """Guards the test above: these mistakes are reported."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(BAD[problem]))
    assert _problems(h.KUBE_VERSIONS[0], [path]), problem
