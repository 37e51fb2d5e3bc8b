"""Pure builders: a :class:`RoarSpec` in, plain Kubernetes objects (dicts) out.

No I/O and nothing kustomize- or Helm-specific: the operator calls these at run time and adds
owner references; the kustomize base is rendered from them.
"""

from __future__ import annotations

from typing import Any

from roar.kube import labels as lb
from roar.kube import names
from roar.kube.spec import RoarSpec, ServiceMonitor

__all__ = [
    "BACKUP_SCRIPT",
    "RESTORE_SCRIPT",
    "backup_name",
    "build_all",
    "build_backup",
    "build_backup_restore_job",
    "build_configmap",
    "build_db_secret",
    "build_db_services",
    "build_db_statefulset",
    "build_hpa",
    "build_namespace",
    "build_network_policies",
    "build_pdb",
    "build_service_account",
    "build_service_monitor",
    "build_track_service",
    "build_web_deployment",
    "build_web_service",
]

Obj = dict[str, Any]


def _meta(spec: RoarSpec, name: str, component: str | None) -> Obj:
    meta: Obj = {"name": name, "namespace": spec.namespace}
    if component is None:
        meta["labels"] = {
            lb.NAME: names.APP,
            lb.INSTANCE: spec.instance,
            lb.PART_OF: names.APP,
            lb.VERSION: spec.tag,
        }
    else:
        meta["labels"] = lb.labels(spec.instance, component, spec.tag)
    return meta


def _restricted_container_security(uid: int) -> Obj:
    # The restricted Pod Security profile, plus a read-only root (writable dirs are emptyDirs).
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security(uid: int) -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _config_ref(spec: RoarSpec, key: str) -> Obj:
    return {"configMapKeyRef": {"name": names.db_config_name(spec.instance), "key": key}}


def _secret_ref(spec: RoarSpec, key: str) -> Obj:
    return {"secretKeyRef": {"name": names.db_secret_name(spec.instance), "key": key}}


def _db_client_env(spec: RoarSpec) -> list[Obj]:
    """How web (and its migrations) reach the db: explicit host, never service-link variables."""
    if spec.external_db is not None:
        return _external_db_env(spec)
    return [
        {"name": names.MYSQL_HOST, "value": spec.db_service},
        {"name": names.MYSQL_TCP_PORT, "value": str(names.DB_PORT)},
        {"name": names.MYSQL_DATABASE, "valueFrom": _config_ref(spec, names.MYSQL_DATABASE)},
        {"name": names.MYSQL_USER, "valueFrom": _config_ref(spec, names.MYSQL_USER)},
        {"name": names.MYSQL_PASSWORD, "valueFrom": _secret_ref(spec, names.MYSQL_PASSWORD)},
    ]


def _external_db_env(spec: RoarSpec) -> list[Obj]:
    ext = spec.external_db
    assert ext is not None

    def ref(key: str) -> Obj:
        return {"secretKeyRef": {"name": ext.secret, "key": key}}

    if ext.url_key is not None:
        return [{"name": "ROAR_DATABASE_URL", "valueFrom": ref(ext.url_key)}]
    return [
        {"name": names.MYSQL_HOST, "valueFrom": ref(ext.host_key)},
        {"name": names.MYSQL_TCP_PORT, "value": str(ext.port)},
        {"name": names.MYSQL_DATABASE, "valueFrom": _config_ref(spec, names.MYSQL_DATABASE)},
        {"name": names.MYSQL_USER, "valueFrom": ref(ext.user_key)},
        {"name": names.MYSQL_PASSWORD, "valueFrom": ref(ext.password_key)},
    ]


def _web_env(spec: RoarSpec) -> list[Obj]:
    env: list[Obj] = [
        {"name": "ROAR_HOST", "value": "0.0.0.0"},
        {"name": "ROAR_PORT", "value": str(names.WEB_PORT)},
        {"name": "ROAR_FLAVOR", "value": spec.flavor},
        {"name": "ROAR_LOG_FORMAT", "value": spec.log_format},
        {"name": "ROAR_SHUTDOWN_DRAIN", "value": str(names.SHUTDOWN_DRAIN)},
        {"name": "ROAR_SHUTDOWN_GRACE", "value": str(names.SHUTDOWN_GRACE)},
        *_db_client_env(spec),
    ]
    if spec.api_token_secret is not None:
        ref = {"name": spec.api_token_secret.name, "key": spec.api_token_secret.key}
        env.append({"name": "ROAR_API_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    return env


def _web_selector(spec: RoarSpec) -> dict[str, str]:
    """What web's Deployment selects: with a track, only that version's pods."""
    selector = lb.selector_labels(spec.instance, names.WEB)
    if spec.track is not None:
        selector[lb.TRACK] = spec.track.label
    return selector


def _web_meta(spec: RoarSpec, name: str) -> Obj:
    meta = _meta(spec, name, names.WEB)
    if spec.track is not None:
        meta["labels"][lb.TRACK] = spec.track.label
    return meta


def _web_deployment_name(spec: RoarSpec) -> str:
    if spec.track is None or spec.track.primary:
        return names.web_name(spec.instance)
    return names.web_track_name(spec.instance, spec.track.name)


def _http_probe(path: str, *, period: int, failures: int, timeout: int = 2) -> Obj:
    return {
        "httpGet": {"path": path, "port": names.WEB_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def build_namespace(spec: RoarSpec) -> Obj:
    meta = _meta(spec, spec.namespace, None)
    del meta["namespace"]
    # Enforce the restricted profile every ROAR pod is built to meet.
    meta["labels"]["pod-security.kubernetes.io/enforce"] = "restricted"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def build_service_account(spec: RoarSpec) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(spec, names.web_name(spec.instance), names.WEB),
        # ROAR never talks to the Kubernetes API.
        "automountServiceAccountToken": False,
    }


def build_configmap(spec: RoarSpec) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(spec, names.db_config_name(spec.instance), names.DB),
        "data": {names.MYSQL_DATABASE: spec.database, names.MYSQL_USER: spec.db_user},
    }


def build_db_secret(spec: RoarSpec, *, password: str, root_password: str) -> Obj:
    """The db credentials Secret (the operator's; kustomize and Helm generate their own)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(spec, names.db_secret_name(spec.instance), names.DB),
        "type": "Opaque",
        "stringData": {names.MYSQL_PASSWORD: password, names.MYSQL_ROOT_PASSWORD: root_password},
    }


def build_web_deployment(spec: RoarSpec) -> Obj:
    security = _restricted_container_security(names.WEB_UID)
    tmp_mount = [{"name": "tmp", "mountPath": "/tmp"}]
    migrate = {
        # Runs before web starts in every new pod, so web never serves an unmigrated schema;
        # `roar db upgrade --seed` is idempotent and exits non-zero while the db is unreachable.
        "name": "migrate",
        "image": spec.web_image_ref,
        "imagePullPolicy": spec.image_pull_policy,
        "command": list(names.MIGRATE_COMMAND),
        "env": [{"name": "ROAR_LOG_FORMAT", "value": spec.log_format}, *_db_client_env(spec)],
        "resources": spec.web_resources.to_dict(),
        "securityContext": security,
        "volumeMounts": tmp_mount,
    }
    web = {
        "name": names.WEB,
        "image": spec.web_image_ref,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [
            {"name": names.WEB_PORT_NAME, "containerPort": names.WEB_PORT, "protocol": "TCP"}
        ],
        "env": _web_env(spec),
        "startupProbe": _http_probe(names.LIVENESS_PATH, period=2, failures=30),
        "livenessProbe": _http_probe(names.LIVENESS_PATH, period=10, failures=3),
        # Fails within DRAIN seconds of SIGTERM (2 x 2 s < 5 s), so endpoints drop first.
        "readinessProbe": _http_probe(names.READINESS_PATH, period=2, failures=2),
        "resources": spec.web_resources.to_dict(),
        "securityContext": security,
        "volumeMounts": tmp_mount,
    }
    pod_labels = lb.labels(spec.instance, names.WEB, spec.tag)
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(names.WEB_PORT),
        "prometheus.io/path": names.METRICS_PATH,
    }
    if spec.track is not None:
        pod_labels[lb.TRACK] = spec.track.label
        # Versions side by side run in a mesh, where a proxy container joins web in the pod:
        # `kubectl logs/exec` still mean web without -c, whatever the injector does.
        annotations["kubectl.kubernetes.io/default-container"] = names.WEB
    deployment_spec: Obj = {
        "selector": {"matchLabels": _web_selector(spec)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {"labels": pod_labels, "annotations": annotations},
            "spec": {
                "serviceAccountName": names.web_name(spec.instance),
                "automountServiceAccountToken": False,
                # ROAR drains itself on SIGTERM (no preStop); this covers drain + grace.
                "terminationGracePeriodSeconds": names.WEB_TERMINATION_GRACE,
                "securityContext": _pod_security(names.WEB_UID),
                "initContainers": [migrate],
                "containers": [web],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            },
        },
    }
    if not spec.autoscaling:
        # With an HPA the replica count is the HPA's; setting it here would fight it on apply.
        deployment_spec = {"replicas": spec.replicas, **deployment_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _web_meta(spec, _web_deployment_name(spec)),
        "spec": deployment_spec,
    }


def _web_service_port() -> Obj:
    # Named `http`: Istio takes the protocol from the port name (or appProtocol).
    return {
        "name": names.WEB_PORT_NAME,
        "port": names.WEB_SERVICE_PORT,
        "targetPort": names.WEB_PORT_NAME,
        "protocol": "TCP",
    }


def build_web_service(spec: RoarSpec) -> Obj:
    """The web Service: every web pod of the instance, whatever its track."""
    port = _web_service_port()
    if spec.node_port is not None:
        port["nodePort"] = spec.node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, names.web_name(spec.instance), names.WEB),
        "spec": {
            "type": spec.service_type,
            "selector": lb.selector_labels(spec.instance, names.WEB),
            "ports": [port],
        },
    }


def build_track_service(spec: RoarSpec) -> Obj:
    """A web version's own ClusterIP Service, ``<instance>-web-<track name>``: what Gateway API
    backendRefs name, since they have no subsets (Istio's subsets use the shared Service)."""
    if spec.track is None:
        raise ValueError("track: a version's own Service needs a spec with a track")
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _web_meta(spec, names.web_track_name(spec.instance, spec.track.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": _web_selector(spec),
            "ports": [_web_service_port()],
        },
    }


def build_service_monitor(spec: RoarSpec) -> Obj:
    """A Prometheus Operator ServiceMonitor for web's /metrics (``spec.service_monitor``, or
    the defaults when it is None)."""
    monitor = spec.service_monitor or ServiceMonitor()
    meta = _meta(spec, names.web_name(spec.instance), names.WEB)
    meta["labels"].update(dict(monitor.labels))
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": lb.selector_labels(spec.instance, names.WEB)},
            "endpoints": [
                {
                    "port": names.WEB_PORT_NAME,
                    "path": names.METRICS_PATH,
                    "interval": monitor.interval,
                }
            ],
        },
    }


def build_db_statefulset(spec: RoarSpec) -> Obj:
    env = [
        {"name": names.MYSQL_DATABASE, "valueFrom": _config_ref(spec, names.MYSQL_DATABASE)},
        {"name": names.MYSQL_USER, "valueFrom": _config_ref(spec, names.MYSQL_USER)},
        {"name": names.MYSQL_PASSWORD, "valueFrom": _secret_ref(spec, names.MYSQL_PASSWORD)},
        {
            "name": names.MYSQL_ROOT_PASSWORD,
            "valueFrom": _secret_ref(spec, names.MYSQL_ROOT_PASSWORD),
        },
    ]
    tcp_probe = {"tcpSocket": {"port": names.DB_PORT_NAME}}
    db = {
        "name": names.DB,
        "image": spec.db_image_ref,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [{"name": names.DB_PORT_NAME, "containerPort": names.DB_PORT, "protocol": "TCP"}],
        "env": env,
        # First start initialises the data directory, which can take a while on slow disks.
        "startupProbe": {**tcp_probe, "periodSeconds": 5, "failureThreshold": 60},
        "livenessProbe": {**tcp_probe, "periodSeconds": 10, "failureThreshold": 3},
        # `mariadb-admin ping` succeeds once the server answers, even without credentials.
        "readinessProbe": {
            "exec": {"command": ["mariadb-admin", "ping", "-h", "127.0.0.1", "--silent"]},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "resources": spec.db_resources.to_dict(),
        "securityContext": _restricted_container_security(names.DB_UID),
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/mysql"},
            {"name": "run", "mountPath": "/run/mysqld"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    claim_spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.db_storage_size}},
    }
    if spec.db_storage_class is not None:
        claim_spec["storageClassName"] = spec.db_storage_class
    sts_spec: Obj = {
        "serviceName": names.db_headless_name(spec.instance),
        "replicas": 1,
        "selector": {"matchLabels": lb.selector_labels(spec.instance, names.DB)},
        "template": {
            "metadata": {"labels": lb.labels(spec.instance, names.DB, spec.tag)},
            "spec": {
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 60,
                # fsGroup makes the volume writable for the non-root mysql user.
                "securityContext": _pod_security(names.DB_UID),
                "containers": [db],
                "volumes": [
                    {"name": "run", "emptyDir": {}},
                    {"name": "tmp", "emptyDir": {}},
                ],
            },
        },
        "volumeClaimTemplates": [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data"},
                "spec": claim_spec,
            }
        ],
    }
    if spec.db_claim_retention is not None:
        # Claims from volumeClaimTemplates outlive the StatefulSet unless this says otherwise;
        # scaling down never happens (one replica), so only whenDeleted matters.
        sts_spec["persistentVolumeClaimRetentionPolicy"] = {
            "whenDeleted": spec.db_claim_retention,
            "whenScaled": "Retain",
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(spec, names.db_name(spec.instance), names.DB),
        "spec": sts_spec,
    }


def build_db_services(spec: RoarSpec) -> list[Obj]:
    """The StatefulSet's headless Service, and the ClusterIP Service clients use."""
    selector = lb.selector_labels(spec.instance, names.DB)
    port = {
        "name": names.DB_PORT_NAME,
        "port": names.DB_PORT,
        "targetPort": names.DB_PORT_NAME,
        "protocol": "TCP",
    }
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, names.db_headless_name(spec.instance), names.DB),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector,
            "ports": [port],
        },
    }
    cluster_ip = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, spec.db_service, names.DB),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": [port]},
    }
    return [headless, cluster_ip]


def build_hpa(spec: RoarSpec) -> Obj:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(spec, names.web_name(spec.instance), names.WEB),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": names.web_name(spec.instance),
            },
            "minReplicas": max(spec.replicas, 1),
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": spec.target_cpu_percent,
                        },
                    },
                }
            ],
        },
    }


def build_pdb(spec: RoarSpec) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(spec, names.web_name(spec.instance), names.WEB),
        # maxUnavailable (not minAvailable) so a one-replica dev install can still be drained.
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": lb.selector_labels(spec.instance, names.WEB)},
        },
    }


def build_network_policies(spec: RoarSpec) -> list[Obj]:
    """Deny ingress by default; web on 8080 from the ingress path; db on 3306 from web only.

    The ingress path is any pod in ``spec.ingress_namespace`` (the ingress controller) or in
    ROAR's own namespace (port-forward targets, helm tests, in-namespace clients).
    """
    web_selector = {"matchLabels": lb.selector_labels(spec.instance, names.WEB)}
    db_selector = {"matchLabels": lb.selector_labels(spec.instance, names.DB)}
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, f"{spec.instance}-default-deny", None),
        "spec": {
            "podSelector": {"matchLabels": {lb.NAME: names.APP, lb.INSTANCE: spec.instance}},
            "policyTypes": ["Ingress"],
        },
    }
    web = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, f"{spec.instance}-web-ingress", names.WEB),
        "spec": {
            "podSelector": web_selector,
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {
                                    "kubernetes.io/metadata.name": spec.ingress_namespace
                                }
                            }
                        },
                        {"podSelector": {}},
                    ],
                    "ports": [{"protocol": "TCP", "port": names.WEB_PORT}],
                }
            ],
        },
    }
    db = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, f"{spec.instance}-db-ingress", names.DB),
        "spec": {
            "podSelector": db_selector,
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": web_selector}],
                    "ports": [{"protocol": "TCP", "port": names.DB_PORT}],
                }
            ],
        },
    }
    return [deny, web, db]


def build_all(spec: RoarSpec) -> list[Obj]:
    """Every object of one installation except the db Secret (its values are not the spec's)."""
    objects = [
        build_namespace(spec),
        build_service_account(spec),
        build_configmap(spec),
        build_web_deployment(spec),
        build_web_service(spec),
        *([build_track_service(spec)] if spec.track is not None else []),
        build_db_statefulset(spec),
        *build_db_services(spec),
    ]
    if spec.autoscaling:
        objects.append(build_hpa(spec))
    objects.append(build_pdb(spec))
    objects.extend(build_network_policies(spec))
    return objects


# --- Backups of the managed database (the operator's spec.backup) ---------------------------

#: app.kubernetes.io/component of the backup and restore pods: never "db", which the db
#: Services select on.
BACKUP = "backup"
BACKUP_DIR = "/backup"
#: Only names of this shape are dumps: they sort by time, and a temporary name never matches.
DUMP_PATTERN = r"^dump-[0-9]{8}T[0-9]{6}Z\.sql\.gz$"

#: The CronJob's script, run by /bin/sh in the db image (mariadb-dump, gzip, coreutils). The
#: password comes in MYSQL_PWD (from the Secret), which the client reads: never an argument.
BACKUP_SCRIPT = f"""set -eu
umask 077
dir="$BACKUP_DIR"
keep="$BACKUP_RETENTION"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
final="dump-$stamp.sql.gz"
tmp=".partial-$stamp-$$.sql.gz"
trap 'rm -f "$dir/$tmp"' EXIT
# Leftovers of runs killed before their trap ran (activeDeadlineSeconds, a lost node).
find "$dir" -maxdepth 1 -name '.partial-*' -mmin +120 -exec rm -f {{}} +
# The dump's exit status, past the pipe (POSIX sh has no pipefail).
rc=$( {{ {{ mariadb-dump --host="$MYSQL_HOST" --port="$MYSQL_TCP_PORT" --user="$MYSQL_USER" \\
  --single-transaction --quick "$MYSQL_DATABASE" && echo 0 >&3 || echo $? >&3; }} |
  gzip -c > "$dir/$tmp"; }} 3>&1 )
if [ "$rc" != 0 ]; then echo "mariadb-dump failed (exit $rc); no dump written" >&2; exit 1; fi
gzip -t "$dir/$tmp"
mv "$dir/$tmp" "$dir/$final"
echo "wrote $final"
ls -1 "$dir" | grep -E '{DUMP_PATTERN}' | sort -r | tail -n +"$((keep + 1))" |
  while read -r old; do rm -f "$dir/$old"; echo "removed $old"; done
echo "dumps:"
ls -1 "$dir" | grep -E '{DUMP_PATTERN}' | sort -r
"""

#: The restore Job's script: DUMP is a file name from the backup volume, or ``latest``. The
#: dump drops and recreates each table it holds (mariadb-dump's default --add-drop-table).
RESTORE_SCRIPT = f"""set -eu
dir="$BACKUP_DIR"
dump="${{DUMP:-latest}}"
if [ "$dump" = latest ]; then
  dump=$(ls -1 "$dir" | grep -E '{DUMP_PATTERN}' | sort | tail -n 1)
fi
case "$dump" in
  ''|*/*|.*) echo "DUMP: no dump named '$dump' in $dir (a file name or latest)" >&2; exit 1 ;;
esac
gzip -t "$dir/$dump"
echo "restoring $dump into $MYSQL_DATABASE"
# The dump's triggers name their creator (root, when the db image's init SQL made them), and the
# app user may not create objects for another definer (SUPER): they are restored as its own.
gunzip -c "$dir/$dump" | sed -e 's/DEFINER=`[^`]*`@`[^`]*`//g' |
  mariadb --host="$MYSQL_HOST" --port="$MYSQL_TCP_PORT" --user="$MYSQL_USER" "$MYSQL_DATABASE"
echo "restored $dump"
"""


def backup_name(instance: str) -> str:
    """The backup PVC and CronJob: ``<instance>-backup``."""
    return f"{instance}-{BACKUP}"


def _backup_pod(spec: RoarSpec, script: str, extra_env: list[Obj]) -> Obj:
    """A restricted pod that runs ``script`` in the db image with the backup volume mounted
    and the app user's db credentials in its environment."""
    env = [
        {"name": names.MYSQL_HOST, "value": spec.db_service},
        {"name": names.MYSQL_TCP_PORT, "value": str(names.DB_PORT)},
        {"name": names.MYSQL_DATABASE, "valueFrom": _config_ref(spec, names.MYSQL_DATABASE)},
        {"name": names.MYSQL_USER, "valueFrom": _config_ref(spec, names.MYSQL_USER)},
        {"name": "MYSQL_PWD", "valueFrom": _secret_ref(spec, names.MYSQL_PASSWORD)},
        {"name": "BACKUP_DIR", "value": BACKUP_DIR},
        *extra_env,
    ]
    container = {
        "name": BACKUP,
        "image": spec.db_image_ref,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["/bin/sh", "-c", script],
        "env": env,
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "securityContext": _restricted_container_security(names.DB_UID),
        "volumeMounts": [
            {"name": BACKUP, "mountPath": BACKUP_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "metadata": {"labels": lb.labels(spec.instance, BACKUP, spec.tag)},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            # fsGroup makes the volume writable for the non-root mysql user, as for the db.
            "securityContext": _pod_security(names.DB_UID),
            "containers": [container],
            "volumes": [
                {"name": BACKUP,
                 "persistentVolumeClaim": {"claimName": backup_name(spec.instance)}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
            ],
        },
    }  # fmt: skip


def build_backup(
    spec: RoarSpec, *, schedule: str, retention: int, size: str = "1Gi",
    storage_class: str | None = None,
) -> list[Obj]:  # fmt: skip
    """The backup PVC and the CronJob that writes a gzip'd ``mariadb-dump`` of the app database
    to it on ``schedule`` (UTC), keeping the newest ``retention`` dumps."""
    if retention < 1:
        raise ValueError(f"retention: must be >= 1, got {retention}")
    claim: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class is not None:
        claim["storageClassName"] = storage_class
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(spec, backup_name(spec.instance), BACKUP),
        "spec": claim,
    }
    pod = _backup_pod(spec, BACKUP_SCRIPT, [{"name": "BACKUP_RETENTION", "value": str(retention)}])
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(spec, backup_name(spec.instance), BACKUP),
        "spec": {
            "schedule": schedule,
            "timeZone": "Etc/UTC",
            # Never two dumps at once; a run missed by more than 10 minutes is skipped.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": lb.labels(spec.instance, BACKUP, spec.tag)},
                "spec": {"backoffLimit": 2, "activeDeadlineSeconds": 1800, "template": pod},
            },
        },
    }
    return [pvc, cronjob]


def build_backup_restore_job(spec: RoarSpec, *, dump: str = "latest") -> Obj:
    """A one-off Job that loads a dump (a file name on the backup PVC, or ``latest``) into the
    app database; not the operator's: a person creates it (docs/lab-9-operator.md)."""
    pod = _backup_pod(spec, RESTORE_SCRIPT, [{"name": "DUMP", "value": dump}])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(spec, f"{spec.instance}-restore", BACKUP),
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 1800, "template": pod},
    }
