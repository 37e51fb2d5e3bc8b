"""The pure Kubernetes builders: shape, security and wiring, without a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roar.kube import builders, names
from roar.kube import labels as lb
from roar.kube.render import BASE_SPEC, render_base
from roar.kube.spec import Resources, RoarSpec, SecretKeyRef

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SPECS = {
    "default": RoarSpec(),
    "v2-nodeport": RoarSpec(
        instance="blue", namespace="shop", flavor="v2", service_type="NodePort", node_port=30089
    ),
    "fixed-replicas": RoarSpec(replicas=1, autoscaling=False, db_storage_class="standard"),
    "token": RoarSpec(api_token_secret=SecretKeyRef("roar-token", "token"), db_service_name=None),
}


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    pod = obj["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container["env"]}


@pytest.fixture(params=list(SPECS), ids=list(SPECS))
def spec(request: pytest.FixtureRequest) -> RoarSpec:
    return SPECS[request.param]


def test_every_object_is_namespaced_and_labelled(spec: RoarSpec) -> None:
    for obj in builders.build_all(spec):
        meta = obj["metadata"]
        assert meta["labels"][lb.INSTANCE] == spec.instance
        assert meta["labels"][lb.NAME] == names.APP
        if obj["kind"] != "Namespace":
            assert meta["namespace"] == spec.namespace
            assert meta["name"].startswith(spec.instance) or meta["name"] == "mysql"


def test_names_are_unique_per_kind(spec: RoarSpec) -> None:
    keys = [(o["kind"], o["metadata"]["name"]) for o in builders.build_all(spec)]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("build", [builders.build_web_deployment, builders.build_db_statefulset])
def test_pods_meet_the_restricted_profile(spec: RoarSpec, build: Any) -> None:
    obj = build(spec)
    pod = obj["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for c in _containers(obj):
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and isinstance(sc["runAsUser"], int)
        assert sc["runAsUser"] > 0
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
        assert set(c["resources"]) == {"requests", "limits"}
        assert ":" in c["image"] and not c["image"].endswith(":latest")
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts


def test_selectors_match_pod_templates(spec: RoarSpec) -> None:
    for obj in (builders.build_web_deployment(spec), builders.build_db_statefulset(spec)):
        pod_labels = obj["spec"]["template"]["metadata"]["labels"]
        assert obj["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    web_pod = builders.build_web_deployment(spec)["spec"]["template"]["metadata"]["labels"]
    db_pod = builders.build_db_statefulset(spec)["spec"]["template"]["metadata"]["labels"]
    assert builders.build_web_service(spec)["spec"]["selector"].items() <= web_pod.items()
    for svc in builders.build_db_services(spec):
        assert svc["spec"]["selector"].items() <= db_pod.items()


def test_web_probes_ports_and_shutdown(spec: RoarSpec) -> None:
    dep = builders.build_web_deployment(spec)
    web = dep["spec"]["template"]["spec"]["containers"][0]
    assert web["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = _env(web)
    drain = int(env["ROAR_SHUTDOWN_DRAIN"]["value"])
    grace = int(env["ROAR_SHUTDOWN_GRACE"]["value"])
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain + grace
    probe = web["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] < drain
    assert "lifecycle" not in web  # ROAR drains itself; no preStop sleep


def test_web_finds_the_db_by_explicit_env(spec: RoarSpec) -> None:
    dep = builders.build_web_deployment(spec)
    services = {s["metadata"]["name"] for s in builders.build_db_services(spec)}
    for c in _containers(dep):
        env = _env(c)
        assert env["MYSQL_HOST"]["value"] in services
        assert env["MYSQL_TCP_PORT"]["value"] == "3306"
        assert env["MYSQL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "MYSQL_PASSWORD"
        assert env["MYSQL_USER"]["valueFrom"]["configMapKeyRef"]["key"] == "MYSQL_USER"
        assert env["MYSQL_DATABASE"]["valueFrom"]["configMapKeyRef"]["key"] == "MYSQL_DATABASE"


def test_migrations_run_in_an_init_container(spec: RoarSpec) -> None:
    pod = builders.build_web_deployment(spec)["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"] == ["roar", "db", "upgrade", "--seed"]
    assert init["image"] == pod["containers"][0]["image"]


def test_api_token_is_wired_only_when_given(spec: RoarSpec) -> None:
    web = builders.build_web_deployment(spec)["spec"]["template"]["spec"]["containers"][0]
    env = _env(web)
    if spec.api_token_secret is None:
        assert "ROAR_API_TOKEN" not in env
    else:
        ref = env["ROAR_API_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": spec.api_token_secret.name, "key": spec.api_token_secret.key}


def test_replicas_belong_to_the_hpa_when_autoscaling(spec: RoarSpec) -> None:
    dep = builders.build_web_deployment(spec)
    kinds = {o["kind"] for o in builders.build_all(spec)}
    if spec.autoscaling:
        assert "replicas" not in dep["spec"]
        assert "HorizontalPodAutoscaler" in kinds
        hpa = builders.build_hpa(spec)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    else:
        assert dep["spec"]["replicas"] == spec.replicas
        assert "HorizontalPodAutoscaler" not in kinds


def test_web_service_maps_8089_to_http(spec: RoarSpec) -> None:
    svc = builders.build_web_service(spec)
    (port,) = svc["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (8089, "http")
    assert svc["spec"]["type"] == spec.service_type
    assert port.get("nodePort") == spec.node_port


def test_db_statefulset_storage_and_services(spec: RoarSpec) -> None:
    sts = builders.build_db_statefulset(spec)
    headless, cluster_ip = builders.build_db_services(spec)
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["clusterIP"] == "None"
    assert cluster_ip["metadata"]["name"] == spec.db_service
    assert cluster_ip["spec"]["ports"][0]["port"] == 3306
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == spec.db_storage_size
    assert claim["spec"].get("storageClassName") == spec.db_storage_class
    db = sts["spec"]["template"]["spec"]["containers"][0]
    assert {m["name"] for m in db["volumeMounts"]} >= {"data"}
    assert set(_env(db)) == {
        "MYSQL_DATABASE",
        "MYSQL_USER",
        "MYSQL_PASSWORD",
        "MYSQL_ROOT_PASSWORD",
    }


def test_network_policies_only_let_web_reach_the_db(spec: RoarSpec) -> None:
    deny, web, db = builders.build_network_policies(spec)
    assert "ingress" not in deny["spec"]
    (rule,) = db["spec"]["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": lb.selector_labels(spec.instance, names.WEB)}}
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 3306}]
    (web_rule,) = web["spec"]["ingress"]
    assert web_rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    namespaces = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in web_rule["from"]
        if "namespaceSelector" in peer
    ]
    assert namespaces == [spec.ingress_namespace]


def test_db_secret_carries_both_passwords() -> None:
    secret = builders.build_db_secret(RoarSpec(), password="p", root_password="r")
    assert secret["metadata"]["name"] == "roar-db-credentials"
    assert secret["stringData"] == {"MYSQL_PASSWORD": "p", "MYSQL_ROOT_PASSWORD": "r"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"instance": "Roar"}, "instance"),
        ({"namespace": "a_b"}, "namespace"),
        ({"tag": "latest"}, "tag"),
        ({"db_tag": ""}, "db_tag"),
        ({"replicas": -1}, "replicas"),
        ({"node_port": 30089}, "node_port"),
        ({"max_replicas": 1, "replicas": 3}, "max_replicas"),
    ],
)
def test_bad_specs_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        RoarSpec(**kwargs)


@pytest.mark.parametrize(
    ("db_image", "expected"),
    [
        ("roar-db", "roar-db:0.2.0"),
        ("mariadb:11.4", "mariadb:11.4"),
        ("localhost:5000/roar-db", "localhost:5000/roar-db:0.2.0"),
    ],
)
def test_db_image_ref(db_image: str, expected: str) -> None:
    assert RoarSpec(db_image=db_image).db_image_ref == expected


def test_resources_to_dict() -> None:
    assert Resources("1", "2Mi", "3", "4Mi").to_dict() == {
        "requests": {"cpu": "1", "memory": "2Mi"},
        "limits": {"cpu": "3", "memory": "4Mi"},
    }


def test_committed_kustomize_base_matches_the_builders() -> None:
    base = REPO / "deploy" / "kustomize" / "base"
    for name, content in render_base(BASE_SPEC).items():
        path = base / name
        assert path.exists(), f"{path} missing: run `python -m roar.kube.render base`"
        assert path.read_text() == content, (
            f"{path} drifted from src/roar/kube: run `python -m roar.kube.render base`"
        )


def test_default_tag_matches_the_package_version() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["version"] == names.DEFAULT_TAG


def test_render_cli_writes_the_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from roar.kube.render import main

    assert main(["base", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == set(render_base(BASE_SPEC))
    assert main(["bogus"]) == 2
    assert "usage" in capsys.readouterr().err
    assert main(["all"]) == 0
    assert "kind: StatefulSet" in capsys.readouterr().out
