"""spec.backup end to end against kmock: the CronJob and PVC applied and owned, the last backup
times in status, and the CronJob (not the PVC) gone when backup is removed."""

from __future__ import annotations

import kmock

from roar.kube import labels as lb
from roar.operator import settings as st
from support.operator_kmock import NS, ROARAPPS, Operator, eventually, roarapp

APP = "roarapp-sample"
CRONJOBS = "batch/v1/cronjobs"
PVCS = "v1/persistentvolumeclaims"
NAME = f"{APP}-backup"
BACKUP = {"schedule": "0 3 * * *", "retention": 3}


def with_backup_kinds(api: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    verbs = {"get", "list", "watch", "create", "update", "patch", "delete"}
    api.resources[CRONJOBS] = kmock.ResourceInfo(
        kind="CronJob", namespaced=True, verbs=verbs, subresources={"status"}
    )
    api.resources[PVCS] = kmock.ResourceInfo(
        kind="PersistentVolumeClaim", namespaced=True, verbs=verbs, subresources={"status"}
    )
    return api


def live(api: kmock.KubernetesEmulator, resource: str, name: str) -> bool:
    try:
        return not api.objects[resource, NS, name].deleted
    except KeyError:
        return False


async def test_backup_creates_a_cronjob_and_a_pvc_and_removing_it_keeps_the_pvc(
    api: kmock.KubernetesEmulator, operator: Operator
) -> None:
    with_backup_kinds(api)
    app = roarapp(APP, replicas=1, backup=BACKUP)
    api.objects[ROARAPPS, NS, APP] = app
    await operator.start()
    await eventually(lambda: live(api, CRONJOBS, NAME) and live(api, PVCS, NAME),
                     what="the backup CronJob and PVC")  # fmt: skip
    cron = api.objects[CRONJOBS, NS, NAME]
    assert cron["spec"]["schedule"] == "0 3 * * *"
    assert cron["metadata"]["ownerReferences"][0]["uid"] == app["metadata"]["uid"]
    assert cron["metadata"]["labels"][lb.MANAGED_BY] == "roar-operator"
    env = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "BACKUP_RETENTION", "value": "3"} in env

    # What the CronJob controller writes after a run; the next resync (1 s here) reports it.
    async with api.patch(
        f"/apis/batch/v1/namespaces/{NS}/cronjobs/{NAME}",
        json={"status": {"lastScheduleTime": "2026-01-02T03:00:00Z",
                         "lastSuccessfulTime": "2026-01-02T03:00:07Z"}},
    ) as resp:  # fmt: skip
        assert resp.status == 200
    await eventually(
        lambda: (
            api.objects[ROARAPPS, NS, APP]["status"]["backup"]["lastSuccessfulTime"]
            == "2026-01-02T03:00:07Z"
        ),
        what="status.backup.lastSuccessfulTime",
    )

    # `kubectl edit` removing spec.backup: a new spec and generation.
    body = roarapp(APP, replicas=1)
    async with api.patch(
        f"/apis/{st.GROUP}/{st.VERSION}/namespaces/{NS}/{st.PLURAL}/{APP}",
        json={"metadata": {"generation": 2}, "spec": {"backup": None, **body["spec"]}},
    ) as resp:
        assert resp.status == 200
    await eventually(lambda: not live(api, CRONJOBS, NAME), what="the CronJob deleted")
    assert live(api, PVCS, NAME), "the PVC (the dumps) must stay"
    await eventually(
        lambda: "backup" not in api.objects[ROARAPPS, NS, APP]["status"],
        what="status.backup gone",
    )
