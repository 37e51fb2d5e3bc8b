"""Render the kustomize base from the builders.

    python -m roar.kube.render base [DIR]     write DIR (default deploy/kustomize/base)
    python -m roar.kube.render all            print every object of the default spec as YAML

The committed base must equal what :func:`render_base` returns; a test fails on drift.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from roar.kube import builders, names
from roar.kube.spec import RoarSpec

__all__ = ["BASE_SPEC", "dump_yaml", "main", "render_base", "write_base"]

#: The spec the kustomize base is rendered from: the workshop's names (db Service `mysql`).
BASE_SPEC = RoarSpec()

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


def write_base(directory: Path, spec: RoarSpec = BASE_SPEC) -> list[Path]:
    """Write the rendered base into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_base(spec).items():
        path = directory / name
        path.write_text(content)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m roar.kube.render`` (and of a ``roar kube render`` command)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["all"]:
        sys.stdout.write(dump_yaml(builders.build_all(BASE_SPEC)))
        return 0
    if args[:1] != ["base"] or len(args) > 2:
        sys.stderr.write("usage: python -m roar.kube.render base [DIR] | all\n")
        return 2
    target = Path(args[1]) if len(args) == 2 else Path("deploy/kustomize/base")
    for path in write_base(target):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
