"""A RoarApp's NetworkPolicies: the kustomize base's, switchable, and fitted to the app."""

from __future__ import annotations

from typing import Any

import pytest

from roar.kube import builders, names
from roar.operator import crd, reconcile
from roar.operator.settings import OperatorSettings
from support.roarapp import roarapp

DEFAULTS = OperatorSettings(liveness_endpoint=None)


def app(**spec: Any) -> dict[str, Any]:
    return roarapp(**spec)


def policies(**spec: Any) -> dict[str, dict[str, Any]]:
    body = app(**spec)
    roar = reconcile.to_roar_spec(body, DEFAULTS)
    objs = reconcile.desired_objects(body, roar, passwords=("pw", "root"))
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == "NetworkPolicy"}


def test_on_by_default_and_built_by_the_kustomize_bases_builder() -> None:
    got = policies()
    spec = reconcile.to_roar_spec(app(), DEFAULTS)
    built = {p["metadata"]["name"]: p for p in builders.build_network_policies(spec)}
    assert got.keys() == built.keys()
    assert set(got) == {"shop-default-deny", "shop-web-ingress", "shop-db-ingress"}
    for name, policy in got.items():
        assert policy["spec"] == built[name]["spec"]
        assert policy["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_switched_off() -> None:
    assert policies(networkPolicies={"enabled": False}) == {}


def test_the_ingress_namespace_is_the_specs() -> None:
    web = policies(networkPolicies={"ingressNamespace": "traefik"})["shop-web-ingress"]
    sources = web["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}} in (
        sources
    )


@pytest.mark.parametrize("service_type", ["NodePort", "LoadBalancer"])
def test_a_service_reachable_from_outside_opens_webs_port_to_every_source(
    service_type: str,
) -> None:
    got = policies(service={"type": service_type})
    (rule,) = got["shop-web-ingress"]["spec"]["ingress"]
    assert "from" not in rule and rule["ports"] == [{"protocol": "TCP", "port": names.WEB_PORT}]
    # The db stays reachable from web only.
    assert got["shop-db-ingress"]["spec"]["ingress"][0]["from"]


def test_no_db_policy_without_a_managed_db() -> None:
    got = policies(database={"external": {"secretName": "ext"}})
    assert set(got) == {"shop-default-deny", "shop-web-ingress"}


def test_the_crd_defaults_agree() -> None:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props = schema["properties"]["spec"]["properties"]["networkPolicies"]["properties"]
    assert props["enabled"]["default"] is True
    assert props["ingressNamespace"]["default"] == names.DEFAULT_INGRESS_NAMESPACE
