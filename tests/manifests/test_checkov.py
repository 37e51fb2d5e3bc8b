"""checkov over every render and every Dockerfile; each failure must be a listed, reasoned skip."""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from manifests import helpers as h

IMAGES = h.REPO / "images"


def _skips() -> list[dict[str, Any]]:
    return yaml.safe_load(h.SKIPS_FILE.read_text())["skips"]


def _checkov(directory: Path, framework: str) -> list[dict[str, Any]]:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    args = [h.tool("checkov"), "-d", str(directory), "--framework", framework]
    args += ["--skip-download", "--output", "json", "--quiet", "--compact"]
    result = h.subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode in (0, 1), f"checkov failed to run:\n{result.stderr[-3000:]}"
    if not result.stdout.strip():
        return []
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    for report in reports:
        if "results" not in report:  # an empty directory answers with a bare summary
            continue
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
    return [f for r in reports if "results" in r for f in r["results"]["failed_checks"]]


def _skipped(failure: dict[str, Any], render: str) -> bool:
    for skip in _skips():
        if skip["id"] != failure["check_id"]:
            continue
        if "renders" in skip and not any(fnmatch.fnmatch(render, g) for g in skip["renders"]):
            continue
        resources = skip.get("resources")
        if resources and not any(fnmatch.fnmatch(failure["resource"], g) for g in resources):
            continue
        return True
    return False


def _render_of(failure: dict[str, Any]) -> str:
    return Path(failure["file_path"]).stem.replace("__", "/")


def test_skips_file_gives_every_skip_a_reason() -> None:
    for skip in _skips():
        assert skip["id"].startswith("CKV"), skip
        assert len(skip.get("reason", "")) > 40, f"{skip['id']} needs a real reason"


@pytest.fixture(scope="module")
def k8s_failures(rendered_dir: Path) -> list[dict[str, Any]]:
    return _checkov(rendered_dir, "kubernetes")


def test_rendered_manifests_pass_checkov(k8s_failures: list[dict[str, Any]]) -> None:
    failures = k8s_failures
    unlisted = sorted(
        {
            f"{_render_of(f)}: {f['check_id']} {f['check_name']} ({f['resource']})"
            for f in failures
            if not _skipped(f, _render_of(f))
        }
    )
    assert not unlisted, "failed checks not in deploy/checkov-skips.yaml:\n" + "\n".join(unlisted)


def test_dockerfiles_pass_checkov(kube_tools: None) -> None:
    dockerfiles = sorted(IMAGES.glob("*/Dockerfile"))
    if not dockerfiles:
        pytest.skip("images/ has no Dockerfile yet")
    failures = _checkov(IMAGES, "dockerfile")
    unlisted = sorted(
        {
            f"images/{Path(f['file_path']).parent.name}: {f['check_id']} {f['check_name']}"
            for f in failures
            if not _skipped(f, f"images/{Path(f['file_path']).parent.name}")
        }
    )
    assert not unlisted, "failed checks not in deploy/checkov-skips.yaml:\n" + "\n".join(unlisted)


def test_every_manifest_skip_is_still_needed(k8s_failures: list[dict[str, Any]]) -> None:
    """A skip nothing fails any more is stale: remove it rather than keep a blind spot.

    Dockerfile skips are left out: images/ changes on its own schedule.
    """
    used = {f["check_id"] for f in k8s_failures}
    stale = [s["id"] for s in _skips() if s["id"].startswith("CKV_K8S") and s["id"] not in used]
    assert not stale, f"skips no check needs: {stale}"
