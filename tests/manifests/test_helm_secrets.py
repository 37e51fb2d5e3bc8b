"""The chart's db passwords, as Helm and GitOps tools render them.

Helm re-renders secret.yaml for each pod template's checksum/secret; the passwords must be drawn
once per render, or the checksum the pods carry at install is not that of the Secret installed
and the first upgrade rolls the database. GitOps tools render with `helm template` (no lookup):
with an existing Secret named, every render must be the same, or every sync rotates the pods.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from manifests.helpers import helm_template_args, load_all, run

pytestmark = pytest.mark.usefixtures("kube_tools")

SECRET_SOURCE = "# Source: roar/templates/secret.yaml\n"


def render(*sets: str) -> str:
    return run(helm_template_args(sets=list(sets))).stdout


def test_pods_carry_the_checksum_of_the_secret_the_chart_renders() -> None:
    text = render()
    (secret,) = [doc for doc in text.split("\n---\n") if SECRET_SOURCE in doc]
    # What `include "secret.yaml"` hashes: the template's output, its newlines around it.
    rendered = "\n" + secret.split(SECRET_SOURCE, 1)[1] + "\n"
    sums = re.findall(r"checksum/secret: (\w+)", text)
    assert len(sums) == 2  # the web Deployment and the db StatefulSet
    assert set(sums) == {hashlib.sha256(rendered.encode()).hexdigest()}


def test_gitops_renders_with_an_existing_secret_are_identical() -> None:
    first = render("database.existingSecret=roar-db")
    assert first == render("database.existingSecret=roar-db")
    objects = load_all(first)
    assert not [o for o in objects if o["kind"] == "Secret"]
    (web,) = [o for o in objects if o["kind"] == "Deployment"]
    env = {e["name"]: e for c in web["spec"]["template"]["spec"]["containers"] for e in c["env"]}
    assert env["MYSQL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "roar-db"
