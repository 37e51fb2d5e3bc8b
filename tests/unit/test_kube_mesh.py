"""Lab 8's two web versions from the builders: tracks, the mesh overlay's generated files."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from roar.kube import builders, names
from roar.kube import labels as lb
from roar.kube.render import (
    BASE_SPEC,
    MESH_NAMESPACE,
    json_patch,
    main,
    mesh_specs,
    render_mesh,
)
from roar.kube.spec import RoarSpec, Track

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
MESH = REPO / "deploy" / "kustomize" / "overlays" / "mesh"


def _apply(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """A minimal RFC 6902 applier for mappings (what json_patch emits), for the round trip."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]
        ]
        target = doc
        for part in parents:
            target = target[part]
        if op["op"] == "remove":
            del target[last]
        else:
            if op["op"] == "replace":
                assert last in target, op
            target[last] = copy.deepcopy(op["value"])
    return doc


def test_committed_mesh_files_match_the_builders() -> None:
    for name, content in render_mesh().items():
        path = MESH / name
        assert path.exists(), f"{path} missing: run `python -m roar.kube.render mesh`"
        assert path.read_text() == content, (
            f"{path} drifted from src/roar/kube: run `python -m roar.kube.render mesh`"
        )


def test_the_patch_turns_the_base_deployment_into_v1() -> None:
    v1, _ = mesh_specs()
    base = builders.build_web_deployment(replace(BASE_SPEC, namespace=MESH_NAMESPACE))
    ops = json_patch(base, builders.build_web_deployment(v1))
    assert _apply(base, ops) == builders.build_web_deployment(v1)
    # Only additions: the base's object stays what it was, plus the version and a replica count.
    assert {op["op"] for op in ops} == {"add"}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3, "d/e~": 4}}),
        ({"a": [1, 2], "x": 1}, {"a": [2]}),
        ({"a": {"b": 1}}, {"a": "flat"}),
        ({"same": 1}, {"same": 1}),
    ],
)
def test_json_patch_round_trips(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert _apply(before, json_patch(before, after)) == after


def test_versions_run_side_by_side() -> None:
    v1, v2 = mesh_specs()
    deps = [builders.build_web_deployment(s) for s in (v1, v2)]
    assert [d["metadata"]["name"] for d in deps] == ["roar-web", "roar-web-v2"]
    for dep, label in zip(deps, ("current", "new"), strict=True):
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"][lb.TRACK] == label
        assert pod_labels[lb.TRACK] == label
        assert dep["spec"]["replicas"] == 1
    env = [
        {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        for d in deps
    ]
    assert [e["ROAR_FLAVOR"] for e in env] == ["v1", "v2"]
    # Neither Deployment selects the other's pods.
    sel = [d["spec"]["selector"]["matchLabels"] for d in deps]
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in deps]
    assert not sel[0].items() <= pods[1].items()
    assert not sel[1].items() <= pods[0].items()
    # The shared Service selects both; each version's own Service only its pods.
    shared = builders.build_web_service(v1)["spec"]["selector"]
    assert all(shared.items() <= p.items() for p in pods)
    own = [builders.build_track_service(s) for s in (v1, v2)]
    assert [s["metadata"]["name"] for s in own] == ["roar-web-v1", "roar-web-v2"]
    for service, mine, other in zip(own, pods, reversed(pods), strict=True):
        assert service["spec"]["selector"].items() <= mine.items()
        assert not service["spec"]["selector"].items() <= other.items()
        (port,) = service["spec"]["ports"]
        assert (port["name"], port["port"]) == (names.WEB_PORT_NAME, names.WEB_SERVICE_PORT)


def test_a_track_changes_nothing_else() -> None:
    """Without a track every builder gives what it gave before (the base drift test holds the
    committed files to it); with one, only the web objects that select pods change."""
    tracked = replace(BASE_SPEC, track=Track("current", "v1", primary=True))
    for build in (builders.build_web_service, builders.build_pdb, builders.build_hpa,
                  builders.build_db_statefulset, builders.build_network_policies):  # fmt: skip
        assert build(tracked) == build(BASE_SPEC), build.__name__
    with pytest.raises(ValueError, match="track"):
        builders.build_track_service(BASE_SPEC)
    assert "roar-web-v1" in {o["metadata"]["name"] for o in builders.build_all(tracked)}


@pytest.mark.parametrize(("label", "name"), [("Current", "v1"), ("new", "v_2"), ("", "v1")])
def test_track_names_are_dns_labels(label: str, name: str) -> None:
    with pytest.raises(ValueError, match="track"):
        Track(label, name)


def test_render_cli_writes_the_mesh_files(tmp_path: Path) -> None:
    assert main(["mesh", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == set(render_mesh())
    assert RoarSpec().track is None
