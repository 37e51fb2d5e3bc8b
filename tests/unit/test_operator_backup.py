"""spec.backup: the PVC and CronJob the operator builds, the dump script run for real by
/bin/sh against a stand-in mariadb-dump, the restore script, status and the CRD's checks."""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from roar.kube import builders, names
from roar.kube import labels as lb
from roar.operator import crd, reconcile
from roar.operator.settings import OperatorSettings
from support.roarapp import UID, roarapp

DEFAULTS = OperatorSettings(liveness_endpoint=None)
BACKUP = {"schedule": "0 3 * * *", "retention": 2}


def app(**spec: Any) -> dict[str, Any]:
    return roarapp(**spec)


def children(**spec: Any) -> dict[tuple[str, str], dict[str, Any]]:
    body = app(**spec)
    roar = reconcile.to_roar_spec(body, DEFAULTS)
    objs = reconcile.desired_objects(body, roar, passwords=("pw", "root"))
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def pod_spec(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_off_unless_asked() -> None:
    assert not {k for k, _ in children()} & {"CronJob", "PersistentVolumeClaim"}


def test_a_cronjob_and_a_pvc_named_after_the_app() -> None:
    got = children(backup={**BACKUP, "storage": {"size": "5Gi", "storageClassName": "slow"}})
    cron, pvc = got["CronJob", "shop-backup"], got["PersistentVolumeClaim", "shop-backup"]
    assert cron["spec"]["schedule"] == "0 3 * * *" and cron["spec"]["timeZone"] == "Etc/UTC"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["successfulJobsHistoryLimit"] >= 1
    assert cron["spec"]["failedJobsHistoryLimit"] >= 1
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 1 and job["activeDeadlineSeconds"] > 0
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert pvc["spec"]["storageClassName"] == "slow"
    (volume,) = [v for v in pod_spec(cron)["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] == "shop-backup"
    assert cron["metadata"]["ownerReferences"][0]["uid"] == UID
    assert cron["metadata"]["labels"][lb.MANAGED_BY] == "roar-operator"


@pytest.mark.parametrize(("delete_claim", "owned"), [(False, False), (True, True)])
def test_the_pvc_follows_the_data_pvcs_policy(delete_claim: bool, owned: bool) -> None:
    got = children(backup=BACKUP, database={"managed": {"deleteClaimOnDelete": delete_claim}})
    pvc = got["PersistentVolumeClaim", "shop-backup"]
    assert ("ownerReferences" in pvc["metadata"]) is owned


def test_the_dump_runs_the_db_image_with_the_app_users_credentials_from_the_secret() -> None:
    cron = children(backup=BACKUP)["CronJob", "shop-backup"]
    (container,) = pod_spec(cron)["containers"]
    assert container["image"] == "localhost:5000/roar-db:0.2.0"  # the db image's own tools
    env = {e["name"]: e for e in container["env"]}
    secret = {"name": names.db_secret_name("shop"), "key": names.MYSQL_PASSWORD}
    assert env["MYSQL_PWD"]["valueFrom"]["secretKeyRef"] == secret
    assert env[names.MYSQL_USER]["valueFrom"]["configMapKeyRef"]["key"] == names.MYSQL_USER
    assert env[names.MYSQL_HOST]["value"] == "shop-mysql"
    assert env["BACKUP_RETENTION"]["value"] == "2"
    # No secret in clear anywhere in the CronJob; the script names no password option.
    assert "pw" not in str(cron).replace("MYSQL_PWD", "")
    assert "--password" not in builders.BACKUP_SCRIPT and " -p" not in builders.BACKUP_SCRIPT
    # Its pods are not the db's: the db Services must never select them.
    pod_labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert pod_labels[lb.COMPONENT] == "backup"


def test_restricted_pod_security() -> None:
    spec = pod_spec(children(backup=BACKUP)["CronJob", "shop-backup"])
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] == names.DB_UID
    assert sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["fsGroup"] == names.DB_UID
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    assert container["resources"]["limits"]["memory"]


def test_the_db_network_policy_admits_the_backup_pods() -> None:
    db = children(backup=BACKUP)["NetworkPolicy", "shop-db-ingress"]
    sources = db["spec"]["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": lb.selector_labels("shop", "backup")}} in sources
    without = children()["NetworkPolicy", "shop-db-ingress"]["spec"]["ingress"][0]["from"]
    assert len(without) == len(sources) - 1


@pytest.mark.parametrize(
    ("backup", "database", "field"),
    [
        ({"schedule": "daily"}, None, "spec.backup.schedule"),
        ({"schedule": "0 3 * *"}, None, "spec.backup.schedule"),
        ({"schedule": "@daily", "retention": 0}, None, "spec.backup.retention"),
        ({"schedule": "@daily"}, {"external": {"secretName": "ext"}}, "spec.backup"),
    ],
)
def test_a_bad_backup_is_refused_naming_the_field(
    backup: dict[str, Any], database: dict[str, Any] | None, field: str
) -> None:
    spec = {"backup": backup} | ({"database": database} if database else {})
    with pytest.raises(reconcile.InvalidSpec, match=f"^{field}"):
        reconcile.to_roar_spec(app(**spec), DEFAULTS)


@pytest.mark.parametrize("schedule", ["0 3 * * *", "*/15 * * * 1-5", "@hourly", "@weekly"])
def test_good_schedules(schedule: str) -> None:
    assert reconcile.backup_of(app(backup={"schedule": schedule})) is not None


def test_status_shows_the_last_backup_times() -> None:
    a = app(backup=BACKUP)
    spec = reconcile.to_roar_spec(a, DEFAULTS)
    cronjob = {"status": {"lastScheduleTime": "2026-01-02T03:00:00Z",
                          "lastSuccessfulTime": "2026-01-02T03:00:09Z", "active": []}}  # fmt: skip
    status = reconcile.compute_status(a, spec, reconcile.Observed(cronjob=cronjob), now="t")
    assert status["backup"] == {
        "lastScheduleTime": "2026-01-02T03:00:00Z",
        "lastSuccessfulTime": "2026-01-02T03:00:09Z",
    }
    # Without backups, None: the merge patch removes a stale status.backup.
    assert reconcile.compute_status(a, spec, reconcile.Observed(), now="t")["backup"] is None


def test_the_crd_checks_what_the_operator_checks() -> None:
    version = crd.build_crd()["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    backup = spec["properties"]["backup"]
    assert backup["required"] == ["schedule"]
    assert backup["properties"]["retention"]["minimum"] == 1
    assert backup["properties"]["retention"]["default"] == reconcile.Backup.retention
    (rule,) = backup["properties"]["schedule"]["x-kubernetes-validations"]
    # The CEL literal unescapes to the operator's own pattern.
    assert rule["rule"] == f"self.matches('{reconcile.SCHEDULE.pattern}')".replace("\\", "\\\\")
    assert any(r.get("fieldPath") == ".backup" for r in spec["x-kubernetes-validations"])
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Last Backup"]["jsonPath"] == ".status.backup.lastSuccessfulTime"


# --- The scripts, run for real --------------------------------------------------------------

FAKE_DUMP = """#!/bin/sh
# Stand-in mariadb-dump: records its arguments and environment, prints SQL, or fails.
echo "$@" > "$FAKE_LOG/args"
env > "$FAKE_LOG/env"
if [ -n "${FAKE_FAIL:-}" ]; then echo "-- half a dump"; echo "ERROR 2002" >&2; exit 2; fi
echo "DROP TABLE IF EXISTS agents; -- $MYSQL_DATABASE"
"""
FAKE_CLIENT = """#!/bin/sh
# Stand-in mariadb: what it reads is what would be loaded.
cat > "$FAKE_LOG/loaded"
echo "$@" > "$FAKE_LOG/client-args"
"""
OLD = [f"dump-2020010{i}T030000Z.sql.gz" for i in range(1, 6)]


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """The backup volume with five earlier dumps, a temp file of a run in progress, and
    something that is not a dump."""
    vol = tmp_path / "backup"
    vol.mkdir()
    for name in OLD:
        (vol / name).write_bytes(gzip.compress(f"-- {name}\n".encode()))
    (vol / ".partial-20991231T000000Z-1.sql.gz").write_bytes(b"half")
    (vol / "notes.txt").write_text("mine")
    return vol


def run(script: str, volume: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir(exist_ok=True)
    log.mkdir(exist_ok=True)
    for name, body in (("mariadb-dump", FAKE_DUMP), ("mariadb", FAKE_CLIENT)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    full = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log),
        "BACKUP_DIR": str(volume), "MYSQL_HOST": "shop-mysql", "MYSQL_TCP_PORT": "3306",
        "MYSQL_USER": "roar", "MYSQL_DATABASE": "registry", "MYSQL_PWD": "s3cret",
        **env,
    }  # fmt: skip
    return subprocess.run(["/bin/sh", "-c", script], env=full, capture_output=True, text=True)


def dumps(volume: Path) -> list[str]:
    return sorted(p.name for p in volume.iterdir() if p.name.startswith("dump-"))


def test_a_dump_is_written_and_only_the_newest_retention_kept(volume: Path, tmp_path: Path) -> None:
    res = run(builders.BACKUP_SCRIPT, volume, tmp_path, BACKUP_RETENTION="2")
    assert res.returncode == 0, res.stderr
    kept = dumps(volume)
    assert len(kept) == 2 and kept[0] == OLD[-1], kept  # the new one and the newest old one
    new = volume / kept[1]
    assert gzip.decompress(new.read_bytes()).decode().startswith("DROP TABLE IF EXISTS agents")
    assert oct(new.stat().st_mode & 0o777) == "0o600"
    # A run in progress is not a dump: neither counted nor deleted; other files are left.
    assert (volume / ".partial-20991231T000000Z-1.sql.gz").exists()
    assert (volume / "notes.txt").exists()
    assert f"wrote {kept[1]}" in res.stdout
    # The password reached the client through its environment, never its arguments.
    args = (tmp_path / "log" / "args").read_text()
    assert "s3cret" not in args and "--user=roar" in args and "--single-transaction" in args
    assert "MYSQL_PWD=s3cret" in (tmp_path / "log" / "env").read_text()


def test_a_failed_dump_leaves_no_file_and_deletes_nothing(volume: Path, tmp_path: Path) -> None:
    res = run(builders.BACKUP_SCRIPT, volume, tmp_path, BACKUP_RETENTION="1", FAKE_FAIL="1")
    assert res.returncode != 0 and "mariadb-dump failed (exit 2)" in res.stderr
    assert dumps(volume) == OLD
    partials = [p.name for p in volume.iterdir() if p.name.startswith(".partial-")]
    assert partials == [".partial-20991231T000000Z-1.sql.gz"]  # its own temp file removed


def test_restore_loads_the_newest_dump_or_the_one_named(volume: Path, tmp_path: Path) -> None:
    res = run(builders.RESTORE_SCRIPT, volume, tmp_path, DUMP="latest")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "log" / "loaded").read_text() == f"-- {OLD[-1]}\n"
    assert "s3cret" not in (tmp_path / "log" / "client-args").read_text()
    res = run(builders.RESTORE_SCRIPT, volume, tmp_path, DUMP=OLD[0])
    assert res.returncode == 0 and (tmp_path / "log" / "loaded").read_text() == f"-- {OLD[0]}\n"


@pytest.mark.parametrize("dump", ["../etc/passwd", ".partial-20991231T000000Z-1.sql.gz", "nope"])
def test_restore_refuses_what_is_not_a_dump(volume: Path, tmp_path: Path, dump: str) -> None:
    res = run(builders.RESTORE_SCRIPT, volume, tmp_path, DUMP=dump)
    assert res.returncode != 0
    assert not (tmp_path / "log" / "loaded").exists()


def test_the_restore_job_is_the_backups_pod_with_a_dump_to_load() -> None:
    spec = reconcile.to_roar_spec(app(backup=BACKUP), DEFAULTS)
    job = builders.build_backup_restore_job(spec, dump="dump-20260102T030000Z.sql.gz")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DUMP"]["value"] == "dump-20260102T030000Z.sql.gz"
    assert env["MYSQL_PWD"]["valueFrom"]["secretKeyRef"]["name"] == "shop-db-credentials"
    assert job["spec"]["backoffLimit"] == 0  # a restore is not retried behind one's back
    assert job["metadata"]["name"] == "shop-restore"


# --- The restore sample the docs apply -------------------------------------------------------

RESTORE_SAMPLE = (
    Path(__file__).resolve().parents[2] / "deploy/operator/samples/roarapp-sample-restore.yaml"
)
RESTORE_HEADER = """\
# Restore roarapp-sample's database from a dump on its backup PVC (docs/lab-9-operator.md).
# DUMP: a file name that the backup Job's log lists, or latest. Generated from
# roar.kube.builders.build_backup_restore_job by tests/unit/test_operator_backup.py
# (render_restore_sample), which fails when the two differ.
"""


def restore_sample_job() -> dict[str, Any]:
    body = app(backup=BACKUP)
    body["metadata"]["name"] = "roarapp-sample"
    job = builders.build_backup_restore_job(reconcile.to_roar_spec(body, DEFAULTS))
    del job["metadata"]["namespace"]  # kubectl -n says where
    return job


def render_restore_sample() -> str:
    """The sample's text: ``python -c 'import test_operator_backup as t;
    print(t.render_restore_sample(), end="")'`` from tests/unit, into the file."""

    class Literal(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Literal.add_representer(str, text)
    return RESTORE_HEADER + yaml.dump(restore_sample_job(), Dumper=Literal, sort_keys=False,
                                      width=100)  # fmt: skip


def test_the_restore_sample_is_the_builders() -> None:
    assert RESTORE_SAMPLE.read_text() == render_restore_sample(), (
        "regenerate deploy/operator/samples/roarapp-sample-restore.yaml (render_restore_sample)"
    )
