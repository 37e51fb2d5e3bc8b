"""A RoarApp that asks for monitoring gets a ServiceMonitor that finds its web pods."""

from __future__ import annotations

from typing import Any

import pytest

from roar.kube import names
from roar.kube.spec import ServiceMonitor
from roar.operator import crd, reconcile
from roar.operator.settings import OperatorSettings
from support.roarapp import UID, roarapp

DEFAULTS = OperatorSettings(liveness_endpoint=None)


def app(**spec: Any) -> dict[str, Any]:
    return roarapp(**spec)


def children(**spec: Any) -> dict[str, dict[str, Any]]:
    body = app(**spec)
    roar = reconcile.to_roar_spec(body, DEFAULTS)
    objs = reconcile.desired_objects(body, roar, passwords=("pw", "root"))
    return {o["kind"]: o for o in objs if o["kind"] in ("Service", "ServiceMonitor")} | {
        "web-service": next(
            o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "shop-web"
        )
    }


def test_no_service_monitor_unless_asked() -> None:
    assert "ServiceMonitor" not in children()
    assert "ServiceMonitor" not in children(monitoring={"serviceMonitor": {"enabled": False}})


def test_the_service_monitor_selects_the_web_service_and_its_metrics_port() -> None:
    got = children(
        monitoring={
            "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kp"}}
        }
    )
    monitor, service = got["ServiceMonitor"], got["web-service"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    # What Prometheus Operator does: find Services whose labels match, then their named port.
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (endpoint["path"], endpoint["interval"]) == (names.METRICS_PATH, "15s")
    # The Prometheus picks it by the user's label; garbage collection removes it with the app.
    assert monitor["metadata"]["labels"]["release"] == "kp"
    assert monitor["metadata"]["namespace"] == "lab9"
    assert monitor["metadata"]["ownerReferences"][0]["uid"] == UID


def test_a_bad_interval_is_refused_with_the_field_named() -> None:
    with pytest.raises(reconcile.InvalidSpec, match="interval"):
        reconcile.to_roar_spec(
            app(monitoring={"serviceMonitor": {"enabled": True, "interval": "soon"}}), DEFAULTS
        )


def test_the_crd_defaults_are_the_builders() -> None:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props = schema["properties"]["spec"]["properties"]["monitoring"]["properties"]
    monitor = props["serviceMonitor"]["properties"]
    assert monitor["enabled"]["default"] is False
    assert monitor["interval"]["default"] == ServiceMonitor().interval
