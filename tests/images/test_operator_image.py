"""roar-operator: builds from images/operator/Dockerfile, runs as a numeric non-root user with a
read-only root, carries the operator's dependencies, and starts `roar operator run`."""

from __future__ import annotations

import json

from .conftest import Containers, Images, inspect
from .helpers import run


def test_operator_image_config(images: Images) -> None:
    image = json.loads(run(["podman", "image", "inspect", images.operator]).stdout)[0]
    config = image["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["roar"]
    assert config["Cmd"] == ["operator", "run", "--all-namespaces"]
    assert "8091/healthz" in " ".join(image["Healthcheck"]["Test"])  # podman keeps it here
    assert config["Labels"]["org.opencontainers.image.revision"] == images.revision


def test_operator_runs_read_only_as_non_root(images: Images) -> None:
    out = run(["podman", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
               "--entrypoint", "python3", images.operator, "-c",
               "import os, kopf, kubernetes_asyncio, roar.operator.handlers; print(os.getuid())"],
              timeout=120).stdout  # fmt: skip
    assert out.strip() == "10001"


def test_operator_without_a_cluster_fails_with_a_clear_message(
    images: Images, containers: Containers
) -> None:
    # No kubeconfig and no in-cluster service account: the operator must say so and stop,
    # not hang or crash with a traceback the user has to read.
    name = containers.run(images.operator, "--read-only", "--tmpfs", "/tmp")
    code = run(["podman", "wait", name], timeout=120).stdout.strip()
    logs = run(["podman", "logs", name]).stdout + run(["podman", "logs", name]).stderr
    assert code != "0", logs
    assert "roar: error: no Kubernetes API to talk to" in logs, logs
    assert "Traceback" not in logs
    assert inspect(name, "{{.State.Status}}") == "exited"
