"""The RoarApp CustomResourceDefinition, built here and rendered to deploy/operator/crd.yaml
(``python -m roar.operator.crd > deploy/operator/crd.yaml``; a unit test fails on drift).

Defaults come from the same constants the builders use, so the schema, the operator's fallbacks
(:func:`roar.operator.reconcile.to_roar_spec`) and the manifests agree.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from roar.kube import names
from roar.kube.spec import DURATION_PATTERN, Resources, ServiceMonitor
from roar.operator import settings as st
from roar.operator.reconcile import SCHEDULE as SCHEDULE_RE

__all__ = ["build_crd", "render"]

Obj = dict[str, Any]

QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: A CronJob schedule's shape, the operator's own check, as a CEL string literal.
SCHEDULE = SCHEDULE_RE.pattern.replace("\\", "\\\\")


def _str(desc: str, **extra: Any) -> Obj:
    return {"type": "string", "description": desc, **extra}


def _resources(default: Resources, what: str) -> Obj:
    q = {"x-kubernetes-int-or-string": True, "pattern": QUANTITY}

    def pair(cpu: str, mem: str) -> Obj:
        return {
            "type": "object",
            "properties": {
                "cpu": {**q, "default": cpu, "description": "CPU quantity, e.g. 100m"},
                "memory": {**q, "default": mem, "description": "memory quantity, e.g. 128Mi"},
            },
        }

    d = default.to_dict()
    return {
        "type": "object",
        "description": f"Requests and limits of the {what} container.",
        "default": {},
        "properties": {
            "requests": {**pair(d["requests"]["cpu"], d["requests"]["memory"]), "default": {}},
            "limits": {**pair(d["limits"]["cpu"], d["limits"]["memory"]), "default": {}},
        },
    }


def _image(repo_desc: str, tag_desc: str) -> Obj:
    return {
        "type": "object",
        "default": {},
        "properties": {
            "repository": _str(repo_desc, minLength=1, maxLength=255),
            "tag": _str(
                tag_desc,
                pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
                **{"x-kubernetes-validations": [
                    {"rule": "self != 'latest'", "message": "pin a version, not latest"}
                ]},
            ),
            "pullPolicy": _str(
                "imagePullPolicy of the containers.",
                enum=["Always", "IfNotPresent", "Never"],
                default="IfNotPresent",
            ),
        },
    }  # fmt: skip


def _backup_schema() -> Obj:
    return {
        "type": "object",
        "description": "Scheduled dumps of the managed database (mariadb-dump, gzip'd) to a PVC "
        "<name>-backup, by a CronJob <name>-backup. Removing it deletes the CronJob and keeps "
        "the PVC with its dumps. Not with an external database.",
        "required": ["schedule"],
        "properties": {
            "schedule": _str(
                "cron schedule in UTC, five fields ('0 3 * * *') or @daily, @hourly, ...",
                maxLength=100,
                **{"x-kubernetes-validations": [{
                    "rule": f"self.matches('{SCHEDULE}')",
                    "message": "a cron schedule: five fields such as '0 3 * * *', or @daily, "
                    "@hourly, @weekly, @monthly, @yearly",
                }]},
            ),
            "retention": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 7,
                          "description": "dumps kept (the newest); older ones are deleted"},
            "storage": {
                "type": "object",
                "default": {},
                "properties": {
                    "size": {"x-kubernetes-int-or-string": True, "pattern": QUANTITY,
                             "default": "1Gi", "description": "size of the backup PVC (it "
                             "can grow only where its StorageClass allows expansion)"},
                    "storageClassName": _str(
                        "StorageClass of the backup PVC (default: the cluster's default "
                        "class); fixed once the PVC exists",
                        maxLength=253,
                        **{"x-kubernetes-validations": [{
                            "rule": "self == oldSelf",
                            "message": "fixed once the backup PVC exists",
                        }]},
                    ),
                },
            },
        },
    }  # fmt: skip


def _spec_schema() -> Obj:
    managed = {
        "type": "object",
        "description": "A MariaDB StatefulSet the operator runs (the default).",
        "properties": {
            "image": {
                "type": "object",
                "properties": {
                    "repository": _str(
                        f"db image (default: the operator's, {names.WORKSHOP_DB_IMAGE}); "
                        "an image that names its tag (mariadb:11.4) is used as given",
                        minLength=1, maxLength=255,
                    ),
                    "tag": _str("db image tag (default: spec.image.tag)",
                                pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"),
                },
            },
            "user": _str("database user web connects as", default=names.DEFAULT_USER,
                         pattern=r"^[A-Za-z0-9_]{1,32}$"),
            "storage": {
                "type": "object",
                "default": {},
                # A StatefulSet's volumeClaimTemplates cannot change: refused here, with a reason,
                # rather than by the StatefulSet's apply (which would block every other change).
                "x-kubernetes-validations": [{
                    "rule": "self == oldSelf",
                    "message": "fixed once the database exists (a StatefulSet's volume claim "
                    "cannot change); delete and recreate the RoarApp to change it",
                }],
                "properties": {
                    "size": {"x-kubernetes-int-or-string": True, "pattern": QUANTITY,
                             "default": "1Gi", "description": "size of the data PVC"},
                    "storageClassName": _str("StorageClass of the data PVC (default: the "
                                             "cluster's default class)", maxLength=253),
                },
            },
            "deleteClaimOnDelete": {
                "type": "boolean",
                "default": False,
                "description": "Delete the data PVC with the RoarApp (StatefulSet "
                "persistentVolumeClaimRetentionPolicy.whenDeleted: Delete); false keeps it.",
            },
            "resources": _resources(Resources("100m", "256Mi", "1", "512Mi"), "db"),
        },
    }  # fmt: skip
    external = {
        "type": "object",
        "description": "A database the operator does not run; web reads its coordinates from a "
        "Secret: either urlKey (a full URL) or hostKey/userKey/passwordKey.",
        "required": ["secretName"],
        "properties": {
            "secretName": _str("Secret in the RoarApp's namespace", pattern=DNS_SUBDOMAIN,
                               maxLength=253),
            "urlKey": _str("key holding a URL such as mysql://user:pw@host:3306/registry",
                           pattern=SECRET_KEY),
            "hostKey": _str("key holding the host", default="host", pattern=SECRET_KEY),
            "userKey": _str("key holding the user", default="user", pattern=SECRET_KEY),
            "passwordKey": _str("key holding the password", default="password",
                                pattern=SECRET_KEY),
            "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                     "default": names.DB_PORT, "description": "port (host/user/password form)"},
        },
    }  # fmt: skip
    return {
        "type": "object",
        "x-kubernetes-validations": [{
            "rule": "!has(self.backup) || !has(self.database) || !has(self.database.external)",
            "fieldPath": ".backup",
            "reason": "FieldValueForbidden",
            "message": "needs the managed database (back up an external one with its own "
            "tools)",
        }],
        "properties": {
            "replicas": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "default": 2,
                "description": "Web pods the operator keeps (the workshop's lab 9 field).",
            },
            "flavor": _str("UI flavor (v2 is the workshop's 'new' version)",
                           enum=["v1", "v2"], default="v1"),
            "image": _image(f"web image (default: the operator's, {names.WORKSHOP_WEB_IMAGE})",
                            f"web image tag (default: the operator's, {names.DEFAULT_TAG})"),
            "service": {
                "type": "object",
                "default": {},
                "properties": {
                    "type": _str("type of the web Service (port 8089 -> 8080)",
                                 enum=["ClusterIP", "NodePort", "LoadBalancer"],
                                 default="ClusterIP"),
                    "nodePort": {"type": "integer", "minimum": 30000, "maximum": 32767,
                                 "description": "fixed nodePort (default: Kubernetes picks)"},
                },
                "x-kubernetes-validations": [{
                    "rule": "!has(self.nodePort) || self.type != 'ClusterIP'",
                    "message": "nodePort needs type NodePort or LoadBalancer",
                }],
            },
            "apiToken": {
                "type": "object",
                "description": "Secret key whose value every write must carry as a bearer "
                "token (ROAR_API_TOKEN); unset leaves writes open.",
                "required": ["secretName"],
                "properties": {
                    "secretName": _str("Secret in the RoarApp's namespace",
                                       pattern=DNS_SUBDOMAIN, maxLength=253),
                    "key": _str("key in that Secret", default="token", pattern=SECRET_KEY),
                },
            },
            "resources": _resources(Resources(), "web"),
            "logFormat": _str("web log format", enum=["json", "text"], default="json"),
            "monitoring": {
                "type": "object",
                "default": {},
                "properties": {
                    "serviceMonitor": {
                        "type": "object",
                        "description": "A Prometheus Operator ServiceMonitor for web's "
                        "/metrics (needs the monitoring.coreos.com CRDs). Turning it off "
                        "later leaves it in place: delete it, or let it go with the RoarApp.",
                        "default": {},
                        "properties": {
                            "enabled": {"type": "boolean", "default": False,
                                        "description": "create the ServiceMonitor"},
                            "interval": _str("scrape interval",
                                             default=ServiceMonitor.interval,
                                             pattern=DURATION_PATTERN),
                            "labels": {"type": "object",
                                       "additionalProperties": {"type": "string"},
                                       "description": "labels your Prometheus selects "
                                       "ServiceMonitors by, e.g. release: kube-prometheus"},
                        },
                    },
                },
            },
            "networkPolicies": {
                "type": "object",
                "default": {},
                "description": "The app's NetworkPolicies, as in the kustomize base: ingress "
                "denied by default, web's port from the ingress namespace and the app's own "
                "namespace (from anywhere with a NodePort or LoadBalancer Service), the db's "
                "from web only. They need a CNI that enforces them.",
                "properties": {
                    "enabled": {"type": "boolean", "default": True,
                                "description": "create them; false deletes them"},
                    "ingressNamespace": _str("namespace of the ingress controller admitted to "
                                             "web", default=names.DEFAULT_INGRESS_NAMESPACE,
                                             pattern=DNS_LABEL, maxLength=63),
                },
            },
            "backup": _backup_schema(),
            "database": {
                "type": "object",
                "default": {},
                "properties": {
                    "name": _str("database name", default=names.DEFAULT_DATABASE,
                                 pattern=r"^[A-Za-z0-9_]{1,64}$"),
                    "managed": managed,
                    "external": external,
                },
                "x-kubernetes-validations": [{
                    "rule": "!(has(self.managed) && has(self.external))",
                    "message": "set managed or external, not both",
                }],
            },
        },
    }  # fmt: skip


def _status_schema() -> Obj:
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": _str("Ready, Progressing or Degraded"),
            "status": _str("True, False or Unknown", enum=["True", "False", "Unknown"]),
            "reason": _str("CamelCase reason"),
            "message": _str("what a person can act on"),
            "lastTransitionTime": _str("when status last changed", format="date-time"),
            "observedGeneration": {"type": "integer", "format": "int64"},
        },
    }
    return {
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64",
                                   "description": "metadata.generation the status describes"},
            "replicas": {"type": "integer", "description": "web pods wanted"},
            "readyReplicas": {"type": "integer", "description": "web pods ready"},
            "podNames": {"type": "array", "items": {"type": "string"},
                         "description": "names of the live web pods"},
            "url": _str("in-cluster URL of the page"),
            "version": _str("version (image tag) the ready web pods serve; several, "
                            "comma-separated, while a rollout mixes them"),
            "backup": {
                "type": "object",
                "description": "from the backup CronJob's status (absent without spec.backup)",
                "properties": {
                    "lastScheduleTime": _str("when the last backup was started",
                                             format="date-time"),
                    "lastSuccessfulTime": _str("when the last backup finished successfully",
                                               format="date-time"),
                },
            },
            "conditions": {
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    }  # fmt: skip


def build_crd() -> Obj:
    columns = [
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Flavor", "type": "string", "jsonPath": ".spec.flavor"},
        {"name": "Version", "type": "string", "jsonPath": ".status.version"},
        {"name": "Status", "type": "string",
         "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
        {"name": "URL", "type": "string", "jsonPath": ".status.url", "priority": 1},
        {"name": "Last Backup", "type": "date",
         "jsonPath": ".status.backup.lastSuccessfulTime", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]  # fmt: skip
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{st.PLURAL}.{st.GROUP}",
            "labels": {
                "app.kubernetes.io/name": "roar-operator",
                "app.kubernetes.io/part-of": names.APP,
            },
        },
        "spec": {
            "group": st.GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": st.PLURAL,
                "singular": st.KIND.lower(),
                "kind": st.KIND,
                "listKind": f"{st.KIND}List",
                "shortNames": ["roar"],
            },
            "versions": [
                {
                    "name": st.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "One ROAR installation (web + database) run by "
                            "the ROAR operator.",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": {**_spec_schema(), "default": {}},
                                "status": _status_schema(),
                            },
                            # The name prefixes every child and is a label value.
                            "x-kubernetes-validations": [
                                {
                                    "rule": "self.metadata.name.size() <= 40 && "
                                    "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
                                    "message": "metadata.name: a DNS label of at most 40 chars",
                                }
                            ],
                        }
                    },
                }
            ],
        },
    }


def render() -> str:
    header = "# Generated by `python -m roar.operator.crd`; edit src/roar/operator/crd.py.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(render())
