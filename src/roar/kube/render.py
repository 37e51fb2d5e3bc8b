"""Render the kustomize base from the builders.

    python -m roar.kube.render base [DIR]     write DIR (default deploy/kustomize/base)
    python -m roar.kube.render mesh [DIR]     write the generated files of the mesh overlay (lab 8;
                                              default deploy/kustomize/overlays/mesh)
    python -m roar.kube.render all            print every object of the default spec as YAML

The committed base must equal what :func:`render_base` returns, and the mesh overlay's generated
files what :func:`render_mesh` returns; tests fail on drift.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from roar.kube import builders, names
from roar.kube.spec import RoarSpec, Track

__all__ = [
    "BASE_SPEC",
    "MESH_NAMESPACE",
    "MESH_TRACKS",
    "dump_yaml",
    "json_patch",
    "main",
    "mesh_specs",
    "render_base",
    "render_mesh",
    "write_base",
    "write_mesh",
]

#: The spec the kustomize base is rendered from: the workshop's names (db Service `mysql`).
BASE_SPEC = RoarSpec()

#: Lab 8's namespace and its two web versions side by side: v1 keeps the base's `roar-web`
#: Deployment (pods `version: current`), v2 is `roar-web-v2` (pods `version: new`, flavor v2).
MESH_NAMESPACE = "roar-mesh"
MESH_TRACKS = (Track("current", "v1", primary=True), Track("new", "v2"))

HEADER = (
    "# Rendered from src/roar/kube by `python -m roar.kube.render base`; do not edit by hand.\n"
)

#: Placeholders only; the real file (same name without .example) is gitignored.
SECRET_EXAMPLE = f"""\
# Copy to db-credentials.env (gitignored) and replace both values, e.g.:
#   sed "s/change-me.*/$(openssl rand -hex 16)/" db-credentials.env.example > db-credentials.env
{names.MYSQL_PASSWORD}=change-me-password
{names.MYSQL_ROOT_PASSWORD}=change-me-root-password
"""


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key (as kubectl and kustomize print them)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(objects: Iterable[Any]) -> str:
    """Objects as one multi-document YAML stream, keys in builder order."""
    return "---\n".join(
        yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
        for obj in objects
    )


def render_base(spec: RoarSpec = BASE_SPEC) -> dict[str, str]:
    """File name -> content of the kustomize base directory."""
    web = [
        builders.build_service_account(spec),
        builders.build_web_deployment(spec),
        builders.build_web_service(spec),
        builders.build_pdb(spec),
    ]
    if spec.autoscaling:
        web.append(builders.build_hpa(spec))
    db = [
        builders.build_configmap(spec),
        builders.build_db_statefulset(spec),
        *builders.build_db_services(spec),
    ]
    files = {
        "namespace.yaml": [builders.build_namespace(spec)],
        "web.yaml": web,
        "db.yaml": db,
        "network-policies.yaml": builders.build_network_policies(spec),
    }
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": spec.namespace,
        "resources": list(files),
        # The Secret comes from a gitignored env file (see db-credentials.env.example);
        # kustomize appends a content hash to its name, so a new password rolls the pods.
        "secretGenerator": [
            {
                "name": names.db_secret_name(spec.instance),
                "envs": ["db-credentials.env"],
                "options": {"labels": {"app.kubernetes.io/name": names.APP}},
            }
        ],
    }
    out = {name: HEADER + dump_yaml(objs) for name, objs in files.items()}
    out["kustomization.yaml"] = HEADER + dump_yaml([kustomization])
    out["db-credentials.env.example"] = SECRET_EXAMPLE
    return out


def mesh_specs() -> tuple[RoarSpec, RoarSpec]:
    """The two versions of the mesh overlay: the base's shape, one replica each, no HPA."""
    current, new = MESH_TRACKS
    common = replace(BASE_SPEC, namespace=MESH_NAMESPACE, replicas=1, autoscaling=False)
    return replace(common, track=current), replace(common, flavor="v2", track=new)


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def json_patch(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """RFC 6902 operations that turn ``before`` into ``after``: mappings key by key, anything
    else (lists included) replaced whole where it differs."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return [] if before == after else [{"op": "replace", "path": path, "value": after}]
    ops: list[dict[str, Any]] = [
        {"op": "remove", "path": f"{path}/{_pointer(key)}"} for key in before if key not in after
    ]
    for key, value in after.items():
        where = f"{path}/{_pointer(key)}"
        if key in before:
            ops.extend(json_patch(before[key], value, where))
        else:
            ops.append({"op": "add", "path": where, "value": value})
    return ops


MESH_HEADER = (
    "# Rendered from src/roar/kube by `python -m roar.kube.render mesh`; do not edit by hand.\n"
)


def render_mesh() -> dict[str, str]:
    """File name -> content of the mesh overlay's generated files (its kustomization.yaml is
    written by hand and names them).

    - ``web-versions.yaml``: v2's Deployment and each version's own Service;
    - ``web-v1-patch.yaml``: what turns the base's web Deployment into v1's, as a JSON patch
      computed from the builders (so the overlay keeps the base's object and adds only this).
    """
    v1, v2 = mesh_specs()
    base_web = builders.build_web_deployment(replace(BASE_SPEC, namespace=MESH_NAMESPACE))
    patch = json_patch(base_web, builders.build_web_deployment(v1))
    versions = [
        builders.build_web_deployment(v2),
        builders.build_track_service(v1),
        builders.build_track_service(v2),
    ]
    return {
        "web-versions.yaml": MESH_HEADER + dump_yaml(versions),
        "web-v1-patch.yaml": MESH_HEADER
        + "# A JSON patch (RFC 6902) of the base's roar-web Deployment: v1 of two versions.\n"
        + dump_yaml([patch]),
    }


def _write(directory: Path, files: dict[str, str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in files.items():
        path = directory / name
        path.write_text(content)
        written.append(path)
    return written


def write_mesh(directory: Path) -> list[Path]:
    """Write the mesh overlay's generated files into ``directory``; returns the paths written."""
    return _write(directory, render_mesh())


def write_base(directory: Path, spec: RoarSpec = BASE_SPEC) -> list[Path]:
    """Write the rendered base into ``directory``; returns the paths written."""
    return _write(directory, render_base(spec))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m roar.kube.render`` (and of a ``roar kube render`` command)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["all"]:
        sys.stdout.write(dump_yaml(builders.build_all(BASE_SPEC)))
        return 0
    if args[:1] not in (["base"], ["mesh"]) or len(args) > 2:
        sys.stderr.write("usage: python -m roar.kube.render base [DIR] | mesh [DIR] | all\n")
        return 2
    write, default = {
        "base": (write_base, "deploy/kustomize/base"),
        "mesh": (write_mesh, "deploy/kustomize/overlays/mesh"),
    }[args[0]]
    for path in write(Path(args[1] if len(args) == 2 else default)):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
