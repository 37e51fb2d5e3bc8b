"""The chart README's parameter tables are generated from values.yaml's `## @param` comments
(readme-generator-for-helm, via tools/helm/readme); a changed value or description without a
regenerated README fails here, and so does a key without a comment (the generator refuses it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from manifests.helpers import CHART

pytestmark = pytest.mark.usefixtures("kube_tools")

ROOT = Path(__file__).resolve().parents[2]


def test_the_chart_readme_matches_values_yaml(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(CHART / "README.md", readme)
    subprocess.run([ROOT / "tools" / "helm" / "readme", readme], check=True, timeout=120)
    assert readme.read_text() == (CHART / "README.md").read_text(), (
        "deploy/helm/roar/README.md is out of date with values.yaml: run tools/helm/readme"
    )
