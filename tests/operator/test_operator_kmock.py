"""The kopf operator end to end against kmock: children created, owned, repaired, left alone."""

from __future__ import annotations

import asyncio
import base64

import kmock

from roar.kube import labels as lb
from roar.kube import names
from roar.operator import settings as st
from support.operator_kmock import NS, ROARAPPS, Operator, eventually, roarapp

APP = "roarapp-sample"
WEB = names.web_name(APP)
NETPOL = "networking.k8s.io/v1/networkpolicies"
CHILDREN = [
    ("v1/serviceaccounts", WEB),
    ("v1/configmaps", names.db_config_name(APP)),
    ("v1/secrets", names.db_secret_name(APP)),
    ("v1/services", names.db_headless_name(APP)),
    ("v1/services", f"{APP}-mysql"),
    ("apps/v1/statefulsets", names.db_name(APP)),
    ("v1/services", WEB),
    ("apps/v1/deployments", WEB),
    ("policy/v1/poddisruptionbudgets", WEB),
    *[(NETPOL, f"{APP}-{p}") for p in ("default-deny", "web-ingress", "db-ingress")],
]


def live(api: kmock.KubernetesEmulator, resource: str, name: str) -> bool:
    try:
        return not api.objects[resource, NS, name].deleted
    except KeyError:
        return False


def all_children(api: kmock.KubernetesEmulator) -> bool:
    return all(live(api, r, n) for r, n in CHILDREN)


def event_count(api: kmock.KubernetesEmulator) -> int:
    """Events kopf posted (on the RoarApp, for the operator's _post calls)."""
    return sum(1 for (res, _, _), obj in api.objects.items() if res.plural == "events")


async def test_the_workshop_sample_creates_the_whole_app(
    api: kmock.KubernetesEmulator, operator: Operator
) -> None:
    app = roarapp(APP, replicas=5)
    api.objects[ROARAPPS, NS, APP] = app
    await operator.start()
    await eventually(lambda: all_children(api), what="every child of the RoarApp")

    uid = app["metadata"]["uid"]
    for resource, name in CHILDREN:
        obj = api.objects[resource, NS, name]
        assert obj["metadata"]["ownerReferences"][0]["uid"] == uid, name
        assert obj["metadata"]["labels"][lb.MANAGED_BY] == "roar-operator"
    dep = api.objects["apps/v1/deployments", NS, WEB]
    assert dep["spec"]["replicas"] == 5
    init = dep["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"] == list(names.MIGRATE_COMMAND)
    assert init["image"] == "localhost:5000/roar-web:0.2.0"  # the workshop registry
    sts = api.objects["apps/v1/statefulsets", NS, names.db_name(APP)]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    secret = api.objects["v1/secrets", NS, names.db_secret_name(APP)]
    assert len(base64.b64decode(secret["data"][names.MYSQL_PASSWORD])) >= 24

    status = await eventually(
        lambda: api.objects[ROARAPPS, NS, APP]["status"]["conditions"], what="status"
    )
    # kmock runs no controllers: the Deployment never reports ready pods.
    ready = next(c for c in status if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "WaitingForDatabase"


async def test_pods_show_in_status(api: kmock.KubernetesEmulator, operator: Operator) -> None:
    api.objects[ROARAPPS, NS, APP] = roarapp(APP, replicas=2)
    await operator.start()
    await eventually(lambda: all_children(api), what="children")
    pod_labels = {**lb.selector_labels(APP, names.WEB), lb.MANAGED_BY: "roar-operator"}
    for i in range(2):  # what the ReplicaSet controller and a kubelet would leave
        api.objects["v1/pods", NS, f"{WEB}-{i}"] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{WEB}-{i}", "namespace": NS,
                         "labels": pod_labels},
            "status": {"phase": "Running"},
        }  # fmt: skip
    await eventually(
        lambda: api.objects[ROARAPPS, NS, APP]["status"]["podNames"] == [f"{WEB}-0", f"{WEB}-1"],
        what="status.podNames listing both pods",
    )


async def test_drift_is_repaired(api: kmock.KubernetesEmulator, operator: Operator) -> None:
    api.objects[ROARAPPS, NS, APP] = roarapp(APP, replicas=3)
    await operator.start()
    await eventually(lambda: all_children(api), what="children")

    async with api.delete(f"/api/v1/namespaces/{NS}/services/{WEB}") as resp:
        assert resp.status == 200
    async with api.patch(
        f"/apis/apps/v1/namespaces/{NS}/deployments/{WEB}", json={"spec": {"replicas": 9}}
    ) as resp:
        assert resp.status == 200
    await eventually(lambda: live(api, "v1/services", WEB), what="the deleted Service back")
    await eventually(
        lambda: api.objects["apps/v1/deployments", NS, WEB]["spec"]["replicas"] == 3,
        what="the hand-edited replica count back to 3",
    )


async def test_a_restart_changes_nothing(api: kmock.KubernetesEmulator, operator: Operator) -> None:
    api.objects[ROARAPPS, NS, APP] = roarapp(APP, replicas=5)
    await operator.start()
    await eventually(lambda: all_children(api), what="children")
    await eventually(lambda: api.objects[ROARAPPS, NS, APP]["status"], what="status")
    await operator.stop()
    versions = {c: len(api.objects[(c[0], NS, c[1])].history) for c in CHILDREN}
    secret = dict(api.objects["v1/secrets", NS, names.db_secret_name(APP)]["data"])

    events = event_count(api)
    assert events, "the first start posts a Created Event per child"

    await operator.start()
    await asyncio.sleep(3)  # three resyncs (every second here)
    assert {c: len(api.objects[(c[0], NS, c[1])].history) for c in CHILDREN} == versions
    assert api.objects["v1/secrets", NS, names.db_secret_name(APP)]["data"] == secret
    assert event_count(api) == events, "an Event without a change"


async def test_network_policies_turned_off_are_deleted(
    api: kmock.KubernetesEmulator, operator: Operator
) -> None:
    api.objects[ROARAPPS, NS, APP] = roarapp(APP, replicas=1)
    await operator.start()
    await eventually(lambda: all_children(api), what="children, NetworkPolicies included")
    # What `kubectl edit` does: a new spec, and the API server bumps the generation.
    async with api.patch(
        f"/apis/{st.GROUP}/{st.VERSION}/namespaces/{NS}/{st.PLURAL}/{APP}",
        json={"metadata": {"generation": 2}, "spec": {"networkPolicies": {"enabled": False}}},
    ) as resp:
        assert resp.status == 200
    await eventually(
        lambda: not any(live(api, r, n) for r, n in CHILDREN if r == NETPOL),
        what="the NetworkPolicies deleted",
    )
    assert live(api, "apps/v1/deployments", WEB)  # nothing else goes


async def test_external_database_builds_no_mariadb(
    api: kmock.KubernetesEmulator, operator: Operator
) -> None:
    spec = {"replicas": 1, "database": {"external": {"secretName": "ext", "urlKey": "url"}}}
    api.objects[ROARAPPS, NS, APP] = roarapp(APP, **spec)
    await operator.start()
    await eventually(lambda: live(api, "apps/v1/deployments", WEB), what="web")
    env = api.objects["apps/v1/deployments", NS, WEB]["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    url = next(e for e in env if e["name"] == "ROAR_DATABASE_URL")
    assert url["valueFrom"]["secretKeyRef"] == {"name": "ext", "key": "url"}
    assert not live(api, "apps/v1/statefulsets", names.db_name(APP))
    assert not live(api, "v1/secrets", names.db_secret_name(APP))


async def test_an_invalid_spec_is_reported(
    api: kmock.KubernetesEmulator, operator: Operator
) -> None:
    # Past the CRD's schema (kmock validates nothing): the builders still refuse it.
    api.objects[ROARAPPS, NS, APP] = roarapp(APP, replicas=1, image={"tag": "latest"})
    await operator.start()
    cond = await eventually(
        lambda: next(
            c for c in api.objects[ROARAPPS, NS, APP]["status"]["conditions"]
            if c["type"] == "Degraded"
        ),
        what="a Degraded condition",
    )  # fmt: skip
    assert cond["status"] == "True" and cond["reason"] == "InvalidSpec"
    assert "latest" in cond["message"]
    assert not live(api, "apps/v1/deployments", WEB)
