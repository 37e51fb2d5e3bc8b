"""The Helm chart under real Helm: lint, render, schema, validation messages, NOTES, hooks."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from manifests import helpers as h

VALUES = [None, *h.helm_values_files()]


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v or "default")
def test_lint_strict(kube_tools: None, values: str | None) -> None:
    args = [h.tool("helm"), "lint", "--strict", str(h.CHART)]
    if values:
        args += ["--values", str(h.CHART / "ci" / values)]
    h.run(args)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["replicaCount=two"], "replicaCount"),  # wrong type
        (["bogus=1"], "bogus"),  # unknown key at the top
        (["service.bogus=1"], "bogus"),  # unknown key nested
        (["service.type=Ingress"], "service/type"),
        (["image.tag=latest"], "image/tag"),
        (["flavor=v3"], "flavor"),
        (["resources.limits.cpu=lots"], "resources/limits/cpu"),
    ],
)
def test_schema_rejects_bad_values(kube_tools: None, sets: list[str], message: str) -> None:
    result = h.run(h.helm_template_args(sets=sets), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["terminationGracePeriodSeconds=20"], "terminationGracePeriodSeconds"),
        (["database.external.enabled=true"], "database.external.host"),
        (["service.nodePort=30089"], "service.nodePort"),
        (["autoscaling.minReplicas=4", "autoscaling.maxReplicas=2"], "maxReplicas"),
    ],
)
def test_validate_values_fails_early(kube_tools: None, sets: list[str], message: str) -> None:
    result = h.run(h.helm_template_args(sets=sets), check=False)
    assert result.returncode != 0
    assert "VALUES VALIDATION" in result.stderr and message in result.stderr, result.stderr


def test_every_values_key_is_in_the_schema() -> None:
    """(Every key's `## @param` comment is checked by readme-generator-for-helm, which refuses
    undocumented keys: tests/manifests/test_helm_readme.py.)"""
    text = (h.CHART / "values.yaml").read_text()
    schema = json.loads((h.CHART / "values.schema.json").read_text())

    def leaves(values: Any, schema: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for key, value in values.items():
            path = f"{prefix}{key}"
            sub = schema["properties"].get(key)
            assert sub is not None, f"{path} missing from values.schema.json"
            if isinstance(value, dict) and value and sub.get("additionalProperties") is False:
                out += leaves(value, sub, path + ".")
            else:
                out.append(path)
        return out

    def closed(schema: dict[str, Any], path: str = "") -> None:
        if schema.get("type") == "object" and "properties" in schema:
            assert schema.get("additionalProperties") is False, f"{path or 'root'} is open"
            for key, sub in schema["properties"].items():
                closed(sub, f"{path}.{key}")

    values = yaml.safe_load(text)
    assert leaves(values, schema)
    closed(schema)


def _notes(values: str | None = None, sets: list[str] | None = None) -> str:
    args = [h.tool("helm"), "install", h.RELEASE, str(h.CHART), "-n", h.NAMESPACE]
    args += ["--dry-run=client"]
    if values:
        args += ["--values", str(h.CHART / "ci" / values)]
    for item in sets or []:
        args += ["--set", item]
    out = h.run(args).stdout
    return out.split("NOTES:", 1)[1]


@pytest.mark.parametrize(
    ("values", "sets", "expected"),
    [
        (None, [], "port-forward service/rel-roar-web 8089:8089"),
        ("workshop-nodeport-values.yaml", [], "jsonpath='{.spec.ports[0].nodePort}'"),
        ("ingress-values.yaml", [], "https://roar.example.com/roar/"),
        (None, ["service.type=LoadBalancer"], ".status.loadBalancer.ingress[0]"),
        ("external-db-values.yaml", [], "external, mariadb.databases.svc.cluster.local:3306"),
    ],
)
def test_notes_print_how_to_reach_the_page(
    kube_tools: None, values: str | None, sets: list[str], expected: str
) -> None:
    assert expected in _notes(values, sets)


def test_pod_templates_carry_config_and_secret_checksums(renders: dict[str, h.Render]) -> None:
    render = renders["helm/default"]
    for kind in ("Deployment", "StatefulSet"):
        (obj,) = render.of_kind(kind)
        annotations = obj["spec"]["template"]["metadata"]["annotations"]
        assert len(annotations["checksum/config"]) == 64
        assert len(annotations["checksum/secret"]) == 64


def test_config_change_changes_the_checksum(kube_tools: None) -> None:
    def checksum(sets: list[str]) -> str:
        (dep,) = [o for o in h.render_helm(sets=sets) if o["kind"] == "Deployment"]
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum([]) != checksum(["database.user=someone"])


def _secret_refs(objs: list[h.Obj]) -> dict[tuple[str, str], tuple[str, str]]:
    """(workload, container/variable) -> (Secret, key) for every variable read from a Secret."""
    refs = {}
    for owner, pod in h.pod_templates(objs):
        for container in h.containers(pod):
            for env in container.get("env", []):
                if ref := env.get("valueFrom", {}).get("secretKeyRef"):
                    where = (owner["metadata"]["name"], f"{container['name']}/{env['name']}")
                    refs[where] = (ref["name"], ref["key"])
    return refs


def _passwords(secret: h.Obj) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_generated_secret_is_what_every_pod_reads(kube_tools: None) -> None:
    objs = h.render_helm()
    (secret,) = [o for o in objs if o["kind"] == "Secret"]
    passwords = _passwords(secret)
    assert set(passwords) == {"MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD"}
    assert all(len(p) >= 16 for p in passwords.values()), passwords
    assert passwords["MYSQL_PASSWORD"] != passwords["MYSQL_ROOT_PASSWORD"]
    # The web (and its migrate step) and the db all read that Secret, and only keys it has.
    refs = _secret_refs(objs)
    assert ("rel-roar-web", "web/MYSQL_PASSWORD") in refs
    assert ("rel-roar-db", "db/MYSQL_ROOT_PASSWORD") in refs
    assert {name for name, _ in refs.values()} == {secret["metadata"]["name"]}
    assert {key for _, key in refs.values()} <= passwords.keys()
    # One choice per render: both pod templates hash the same Secret, so they roll together.
    checksums = {
        o["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet")
    }
    assert len(checksums) == 1
    # Not a constant of the chart: without a cluster to look up, each render draws anew.
    (again,) = [o for o in h.render_helm() if o["kind"] == "Secret"]
    assert _passwords(again)["MYSQL_PASSWORD"] != passwords["MYSQL_PASSWORD"]


def test_given_passwords_are_stored_as_given(kube_tools: None) -> None:
    objs = h.render_helm(sets=["database.password=pw", "database.rootPassword=root"])
    (secret,) = [o for o in objs if o["kind"] == "Secret"]
    assert _passwords(secret) == {"MYSQL_PASSWORD": "pw", "MYSQL_ROOT_PASSWORD": "root"}


def test_existing_secret_is_read_and_none_is_generated(kube_tools: None) -> None:
    objs = h.render_helm(sets=["database.existingSecret=mine"])
    assert not [o for o in objs if o["kind"] == "Secret"]
    refs = _secret_refs(objs)
    assert ("rel-roar-web", "web/MYSQL_PASSWORD") in refs
    assert ("rel-roar-db", "db/MYSQL_ROOT_PASSWORD") in refs
    assert {name for name, _ in refs.values()} == {"mine"}


def test_helm_test_pods_call_the_api(renders: dict[str, h.Render]) -> None:
    tests = [o for o in renders["helm/default"].objects if h.is_helm_test(o)]
    paths = sorted(o["spec"]["containers"][0]["command"][3].split(":8089", 1)[1] for o in tests)
    assert paths == ["/readyz", "/roar/api/v1/registry"]
    for pod in tests:
        assert pod["spec"]["restartPolicy"] == "Never"


def test_external_db_renders_no_db_tier(renders: dict[str, h.Render]) -> None:
    render = renders["helm/external-db-values.yaml"]
    assert not render.of_kind("StatefulSet")
    (dep,) = render.of_kind("Deployment")
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MYSQL_HOST"]["value"] == "mariadb.databases.svc.cluster.local"


def test_optional_features_are_off_by_default(renders: dict[str, h.Render]) -> None:
    kinds = {o["kind"] for o in renders["helm/default"].objects}
    assert "Ingress" not in kinds and "ServiceMonitor" not in kinds
    prod = {o["kind"] for o in renders["helm/prod-values.yaml"].objects}
    assert {"Ingress", "ServiceMonitor", "HorizontalPodAutoscaler"} <= prod


def test_chart_pins_kube_version_and_matches_the_app() -> None:
    chart = yaml.safe_load((h.CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"].startswith(">=")
    from roar.kube import names

    assert chart["appVersion"] == names.DEFAULT_TAG
