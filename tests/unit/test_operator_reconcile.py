"""The operator's pure logic: spec mapping, children, drift, passwords, status, the CRD."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from roar.kube import builders, names
from roar.kube import labels as lb
from roar.operator import crd, reconcile
from roar.operator.settings import OperatorSettings
from support.roarapp import roarapp

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = OperatorSettings(liveness_endpoint=None)


def app(**spec: Any) -> dict[str, Any]:
    return roarapp("roarapp-sample", generation=3, **spec)


def by_kind(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def test_the_workshop_sample_maps_with_defaults() -> None:
    spec = reconcile.to_roar_spec(app(replicas=5), DEFAULTS)
    assert (spec.instance, spec.namespace, spec.replicas) == ("roarapp-sample", "lab9", 5)
    # A RoarApp without an image gets what lab 1 builds and pushes.
    assert spec.web_image_ref == "localhost:5000/roar-web:0.2.0"
    assert spec.db_image_ref == "localhost:5000/roar-db:0.2.0"
    assert not spec.autoscaling and spec.external_db is None
    assert spec.db_claim_retention == "Retain"
    assert spec.db_service == "roarapp-sample-mysql"


def test_children_are_the_builders_output_plus_ownership() -> None:
    a = app(replicas=5)
    spec = reconcile.to_roar_spec(a, DEFAULTS)
    objs = by_kind(reconcile.desired_objects(a, spec, passwords=("p", "r")))
    dep = objs["Deployment", "roarapp-sample-web"]
    built = builders.build_web_deployment(spec)
    assert dep["spec"]["template"]["spec"] == built["spec"]["template"]["spec"]
    assert dep["spec"]["replicas"] == 5
    for obj in objs.values():
        ref = obj["metadata"]["ownerReferences"]
        assert ref == [reconcile.owner_reference(a)] and ref[0]["controller"] is True
        assert obj["metadata"]["labels"][lb.MANAGED_BY] == "roar-operator"
    assert {k for k, _ in objs} == {
        "ServiceAccount", "ConfigMap", "Secret", "Service", "StatefulSet", "Deployment",
        "PodDisruptionBudget", "NetworkPolicy",
    }  # fmt: skip


def test_secret_is_stored_as_data_and_passwords_are_stable() -> None:
    a = app()
    spec = reconcile.to_roar_spec(a, DEFAULTS)
    first = reconcile.passwords_from(None)
    assert first[0] != first[1] and len(first[0]) >= 24
    objs = by_kind(reconcile.desired_objects(a, spec, passwords=first))
    secret = objs["Secret", names.db_secret_name("roarapp-sample")]
    assert "stringData" not in secret
    assert base64.b64decode(secret["data"][names.MYSQL_PASSWORD]).decode() == first[0]
    assert reconcile.passwords_from(secret) == first  # read back, never regenerated


@pytest.mark.parametrize("keep", [True, False])
def test_claim_retention_follows_delete_claim_on_delete(keep: bool) -> None:
    a = app(database={"managed": {"deleteClaimOnDelete": not keep}})
    spec = reconcile.to_roar_spec(a, DEFAULTS)
    sts = by_kind(reconcile.desired_objects(a, spec, passwords=("p", "r")))[
        "StatefulSet", "roarapp-sample-db"
    ]
    policy = sts["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy["whenDeleted"] == ("Retain" if keep else "Delete")


def test_external_database_skips_mariadb_and_reads_the_secret() -> None:
    a = app(database={"external": {"secretName": "ext"}})
    spec = reconcile.to_roar_spec(a, DEFAULTS)
    objs = by_kind(reconcile.desired_objects(a, spec, passwords=None))
    assert not any(k in ("StatefulSet", "Secret") for k, _ in objs)
    env = objs["Deployment", "roarapp-sample-web"]["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    host = next(e for e in env if e["name"] == names.MYSQL_HOST)
    assert host["valueFrom"]["secretKeyRef"] == {"name": "ext", "key": "host"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"image": {"tag": "latest"}}, "tag"),
        ({"service": {"type": "ClusterIP", "nodePort": 30001}}, "node_port"),
        ({"database": {"managed": {"user": "x"}, "external": {"secretName": "e"}}}, "both"),
    ],
)
def test_invalid_specs_name_the_problem(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(reconcile.InvalidSpec, match=field):
        reconcile.to_roar_spec(app(**spec), DEFAULTS)


def test_children_are_whole_apply_configurations() -> None:
    # Server-side apply owns exactly what is sent: every child names itself fully and carries
    # no server-set field (one would be owned, or refused, on every apply).
    a = app(replicas=3)
    spec = reconcile.to_roar_spec(a, DEFAULTS)
    for obj in reconcile.desired_objects(a, spec, passwords=("p", "r")):
        assert obj["apiVersion"] and obj["kind"], obj
        meta = obj["metadata"]
        assert meta["namespace"] == "lab9" and meta["name"]
        assert not {"resourceVersion", "uid", "managedFields", "creationTimestamp"} & meta.keys()
        assert "status" not in obj


def _dep(ready: int, want: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "status": {"observedGeneration": 2, "replicas": want, "updatedReplicas": want,
                   "readyReplicas": ready},
    }  # fmt: skip


def _pod(name: str, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": "Running"}}


def test_status_ready_with_pod_names() -> None:
    a = app(replicas=3)
    spec = reconcile.to_roar_spec(a, DEFAULTS)
    observed = reconcile.Observed(
        deployment=_dep(3, 3), statefulset={"status": {"readyReplicas": 1}},
        pods=[_pod("w-b"), _pod("w-a"), _pod("w-c"), _pod("w-old", deleting=True)],
    )  # fmt: skip
    status = reconcile.compute_status(a, spec, observed, now="2026-11-26T00:00:00Z")
    assert status["podNames"] == ["w-a", "w-b", "w-c"]
    assert status["readyReplicas"] == 3 and status["observedGeneration"] == 3
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["status"] == "True"
    assert conds["Progressing"]["status"] == "False" and conds["Degraded"]["status"] == "False"
    assert status["url"] == "http://roarapp-sample-web.lab9.svc:8089/roar/"

    # Same facts later: lastTransitionTime stays, so nothing needs writing.
    a["status"] = status
    again = reconcile.compute_status(a, spec, observed, now="2026-11-26T01:00:00Z")
    assert not reconcile.status_changed(status, again)


def test_status_progressing_then_degraded() -> None:
    a = app(replicas=3)
    spec = reconcile.to_roar_spec(a, DEFAULTS)
    waiting = reconcile.compute_status(a, spec, reconcile.Observed(deployment=_dep(1, 3)), now="t")
    conds = {c["type"]: c for c in waiting["conditions"]}
    assert conds["Ready"]["reason"] == "WaitingForDatabase"
    assert conds["Progressing"]["status"] == "True"
    failed = reconcile.compute_status(
        a, spec, reconcile.Observed(errors=[("Service/x", "403 Forbidden")]), now="t"
    )
    conds = {c["type"]: c for c in failed["conditions"]}
    assert conds["Degraded"]["status"] == "True" and conds["Degraded"]["reason"] == "ApplyFailed"
    assert "403" in conds["Degraded"]["message"]


def test_reconcile_leaves_its_inputs_so_a_status_change_is_written() -> None:
    # The controller compares the app's stored status with the computed one before writing it
    # and posting Events (status_changed, status_events): a step that wrote into the app, or into
    # the children it observed, would hide the change. Snapshots are JSON copies (share nothing).
    def sample() -> dict[str, Any]:
        return app(
            replicas=3,
            resources={"limits": {"cpu": "2"}},
            database={"managed": {"storage": {"size": "2Gi"}}},
            monitoring={"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        )

    sts = {"status": {"readyReplicas": 1}}
    ready = reconcile.Observed(deployment=_dep(3, 3), statefulset=sts, pods=[_pod("w-a")])
    a = sample()  # as stored: Ready, from an earlier pass over an equal app
    a["status"] = reconcile.compute_status(
        sample(), reconcile.to_roar_spec(sample(), DEFAULTS), ready, now="t0"
    )
    assert {c["type"]: c["status"] for c in a["status"]["conditions"]}["Ready"] == "True"
    failing = reconcile.Observed(
        deployment=_dep(1, 3), statefulset=sts, pods=[_pod("w-a")],
        errors=[("Service/roarapp-sample-web", "403 Forbidden")],
    )  # fmt: skip
    before = json.loads(json.dumps({"app": a, "observed": dataclasses.asdict(failing)}))

    spec = reconcile.to_roar_spec(a, DEFAULTS)
    reconcile.desired_objects(a, spec, passwords=("p", "r"))
    new = reconcile.compute_status(a, spec, failing, now="t1")

    assert json.loads(json.dumps({"app": a, "observed": dataclasses.asdict(failing)})) == before
    assert reconcile.status_changed(a["status"], new)
    events = reconcile.status_events(a["status"], new)
    assert ("Warning", "ApplyFailed") in [(kind, reason) for kind, reason, _ in events]


def test_committed_crd_matches_the_builder() -> None:
    assert (ROOT / "deploy/operator/crd.yaml").read_text() == crd.render(), (
        "run: python -m roar.operator.crd > deploy/operator/crd.yaml"
    )


def test_workshop_sample_is_exactly_the_workshops() -> None:
    sample = yaml.safe_load((ROOT / "deploy/operator/samples/roarapp-sample.yaml").read_text())
    assert sample == {
        "apiVersion": "app.example.com/v1alpha1", "kind": "RoarApp",
        "metadata": {"name": "roarapp-sample"}, "spec": {"replicas": 5},
    }  # fmt: skip


def test_crd_schema_defaults_agree_with_the_operator() -> None:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]["properties"]
    fallback = reconcile.to_roar_spec(app(), DEFAULTS)
    assert spec["replicas"]["default"] == fallback.replicas
    assert spec["flavor"]["default"] == fallback.flavor
    assert spec["service"]["properties"]["type"]["default"] == fallback.service_type
    assert spec["database"]["properties"]["name"]["default"] == fallback.database
    web = spec["resources"]["properties"]
    assert web["limits"]["properties"]["memory"]["default"] == fallback.web_resources.memory_limit
