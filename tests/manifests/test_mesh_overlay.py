"""Lab 8 offline: the mesh overlay as kustomize builds it, and every Istio and Gateway API object
of deploy/istio resolved against it (hosts, ports, subsets, backends, selectors, identities).

The API server's own checks of deploy/istio (the CRDs' schemas and CEL rules) run in the
cluster tier: tests/cluster/test_mesh_objects.py."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from manifests import helpers as h
from roar.kube import builders, names
from roar.kube import labels as lb
from roar.kube.render import MESH_NAMESPACE, mesh_specs

ISTIO = h.REPO / "deploy" / "istio"
GATEWAY_API = ISTIO / "gateway-api"
#: The only API versions lab 8 may use (never v1alpha3/v1beta1).
API_VERSIONS = {
    "Gateway": {"networking.istio.io/v1", "gateway.networking.k8s.io/v1"},
    "DestinationRule": {"networking.istio.io/v1"},
    "VirtualService": {"networking.istio.io/v1"},
    "PeerAuthentication": {"security.istio.io/v1"},
    "AuthorizationPolicy": {"security.istio.io/v1"},
    "HTTPRoute": {"gateway.networking.k8s.io/v1"},
}
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def mesh(renders: dict[str, h.Render]) -> h.Render:
    return renders["kustomize/mesh"]


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def _objects(directory: Path) -> list[tuple[Path, Obj]]:
    return [(path, obj) for path in _files(directory) for obj in h.load_all(path.read_text())]


ISTIO_OBJECTS = _objects(ISTIO)
GATEWAY_API_OBJECTS = _objects(GATEWAY_API)


def _of_kind(objects: list[tuple[Path, Obj]], kind: str, api: str = "") -> list[Obj]:
    return [o for _, o in objects if o["kind"] == kind and o["apiVersion"].startswith(api)]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def _pods(render: h.Render) -> dict[str, Obj]:
    """Workload name -> its pod template."""
    return {owner["metadata"]["name"]: pod for owner, pod in h.pod_templates(render.objects)}


def _selected(render: h.Render, selector: dict[str, str]) -> set[str]:
    return {n for n, pod in _pods(render).items() if _selects(selector, pod["metadata"]["labels"])}


# The overlay ---------------------------------------------------------------------------------


def _unrendered(obj: Obj) -> Obj:
    """A built Deployment as the builders wrote it: bare image, unhashed Secret name."""
    obj = copy.deepcopy(obj)
    for _, pod in h.pod_templates([obj]):
        for c in h.containers(pod):
            c["image"] = c["image"].removeprefix(f"{names.WORKSHOP_REGISTRY}/")
            for env in c.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    ref["name"] = re.sub(r"-[a-z0-9]{10}$", "", ref["name"])
    return obj


def test_the_versions_are_exactly_the_builders(mesh: h.Render) -> None:
    """kustomize's result (base + generated patch + generated v2) is what the builders say."""
    v1, v2 = mesh_specs()
    for spec in (v1, v2):
        want = builders.build_web_deployment(spec)
        got = mesh.find("Deployment", want["metadata"]["name"])
        assert got is not None, want["metadata"]["name"]
        assert _unrendered(got) == want
        want_svc = builders.build_track_service(spec)
        assert mesh.find("Service", want_svc["metadata"]["name"]) == want_svc


def test_two_versions_side_by_side(mesh: h.Render) -> None:
    deps = {d["metadata"]["name"]: d for d in mesh.of_kind("Deployment")}
    assert set(deps) == {"roar-web", "roar-web-v2"}
    seen = {}
    for name, dep in deps.items():
        pod = dep["spec"]["template"]
        (web,) = pod["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in web["env"]}
        seen[name] = (pod["metadata"]["labels"].get(lb.TRACK), env["ROAR_FLAVOR"])
        assert web["image"] == f"{names.WORKSHOP_WEB_IMAGE}:{names.DEFAULT_TAG}"
        assert pod["spec"]["serviceAccountName"] == "roar-web"
        assert dep["spec"]["replicas"] == 1
        # Each Deployment selects its own pods only: no two ReplicaSets fight over a pod.
        for other, other_dep in deps.items():
            mine = _selects(dep["spec"]["selector"]["matchLabels"],
                            other_dep["spec"]["template"]["metadata"]["labels"])  # fmt: skip
            assert mine == (other == name), (name, other)
    assert seen == {"roar-web": ("current", "v1"), "roar-web-v2": ("new", "v2")}
    assert not mesh.of_kind("HorizontalPodAutoscaler")
    assert mesh.find("Service", "mysql") is not None


def test_the_services_and_what_they_select(mesh: h.Render) -> None:
    expected = {
        "roar-web": {"roar-web", "roar-web-v2"},
        "roar-web-v1": {"roar-web"},
        "roar-web-v2": {"roar-web-v2"},
    }
    for name, workloads in expected.items():
        svc = mesh.find("Service", name)
        assert svc is not None, name
        assert _selected(mesh, svc["spec"]["selector"]) == workloads, name
        (port,) = svc["spec"]["ports"]
        # Istio takes the protocol from the port name: `http`, or traffic is plain TCP.
        assert (port["name"], port["port"], port["targetPort"]) == ("http", 8089, "http")


def test_the_namespace_is_meshed(mesh: h.Render) -> None:
    (ns,) = mesh.of_kind("Namespace")
    assert ns["metadata"]["name"] == MESH_NAMESPACE
    assert ns["metadata"]["labels"]["istio-injection"] == "enabled"


def test_the_istio_gateway_may_reach_web(mesh: h.Render) -> None:
    """Some NetworkPolicy admits the ingress gateway's pods (by the labels the Gateway selects
    them by) to web's container port."""
    (gateway,) = _of_kind(ISTIO_OBJECTS, "Gateway", "networking.istio.io/")
    gateway_pod = gateway["spec"]["selector"]
    web_pod = _pods(mesh)["roar-web"]["metadata"]["labels"]
    admitted = []
    for policy in mesh.of_kind("NetworkPolicy"):
        if not _selects(policy["spec"]["podSelector"].get("matchLabels", {}), web_pod):
            continue
        for rule in policy["spec"].get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            for peer in rule.get("from", []):
                pods = (peer.get("podSelector") or {}).get("matchLabels")
                any_namespace = peer.get("namespaceSelector") == {}
                if any_namespace and pods and pods.items() <= gateway_pod.items():
                    admitted.append((policy["metadata"]["name"], ports))
    assert admitted and all(names.WEB_PORT in ports for _, ports in admitted), admitted


# deploy/istio against the overlay -------------------------------------------------------------


def test_lab_8_uses_current_apis_only() -> None:
    objects = ISTIO_OBJECTS + GATEWAY_API_OBJECTS
    assert objects
    for path, obj in objects:
        assert obj["apiVersion"] in API_VERSIONS[obj["kind"]], (path.name, obj["apiVersion"])
        assert obj["metadata"]["namespace"] == MESH_NAMESPACE, path.name
    for path in _files(ISTIO) + _files(GATEWAY_API):
        text = path.read_text()
        assert text.startswith("# "), f"{path.name}: no comment header"
        assert "roar load" in text or "kubectl apply" in text, f"{path.name}: how to watch it?"


def test_every_scenario_replaces_the_last() -> None:
    """Scenarios share one object name per kind, so `kubectl apply -f` of one replaces another."""
    for objects, kinds in ((ISTIO_OBJECTS, ("VirtualService", "DestinationRule")),
                           (GATEWAY_API_OBJECTS, ("HTTPRoute",))):  # fmt: skip
        for kind in kinds:
            assert {o["metadata"]["name"] for o in _of_kind(objects, kind)} == {"roar-web"}, kind


def _service_port(mesh: h.Render, host: str, port: int) -> Obj:
    """The Service a mesh host names (short or fully qualified), checked to have ``port``."""
    short = host.removesuffix(f".{MESH_NAMESPACE}.svc.cluster.local")
    assert "." not in short, f"{host} is not a Service of {MESH_NAMESPACE}"
    svc = mesh.find("Service", short)
    assert svc is not None, f"no Service {short} in the mesh overlay"
    assert port in {p["port"] for p in svc["spec"]["ports"]}, f"Service {short} has no port {port}"
    return svc


def _destinations(vs: Obj) -> Iterator[tuple[Obj, int | None]]:
    """(destination, weight) of every route, and the mirrors (weight None)."""
    for http in vs["spec"]["http"]:
        route = http["route"]
        for r in route:
            yield r["destination"], r.get("weight")
        if len(route) > 1:
            assert sum(r["weight"] for r in route) == 100, http.get("name")
        if "mirror" in http:
            yield http["mirror"], None
        for mirror in http.get("mirrors", []):
            yield mirror["destination"], None


@pytest.mark.parametrize(
    "dr",
    [o for _, o in ISTIO_OBJECTS if o["kind"] == "DestinationRule"],
    ids=[p.name for p, o in ISTIO_OBJECTS if o["kind"] == "DestinationRule"],
)
def test_destination_rule_subsets_select_one_version_each(mesh: h.Render, dr: Obj) -> None:
    svc = _service_port(mesh, dr["spec"]["host"], names.WEB_SERVICE_PORT)
    behind = _selected(mesh, svc["spec"]["selector"])
    subsets = {s["name"]: _selected(mesh, s["labels"]) & behind for s in dr["spec"]["subsets"]}
    assert subsets == {"current": {"roar-web"}, "new": {"roar-web-v2"}}


def test_every_virtual_service_route_resolves(mesh: h.Render) -> None:
    gateways = {g["metadata"]["name"] for g in _of_kind(ISTIO_OBJECTS, "Gateway", "networking")}
    subsets = [{s["name"] for s in dr["spec"]["subsets"]}
               for dr in _of_kind(ISTIO_OBJECTS, "DestinationRule")]  # fmt: skip
    services = _of_kind(ISTIO_OBJECTS, "VirtualService")
    assert len(services) == 7  # the two splits, header, two faults, timeout-retries, mirror
    for vs in services:
        assert set(vs["spec"]["gateways"]) <= gateways, vs["spec"]["gateways"]
        for dest, _ in _destinations(vs):
            _service_port(mesh, dest["host"], dest["port"]["number"])
            # Whichever DestinationRule is applied (destination-rule.yaml or circuit-breaker.yaml)
            # defines the subset.
            assert all(dest["subset"] in s for s in subsets), dest


def test_every_http_route_resolves(mesh: h.Render) -> None:
    (gateway,) = _of_kind(GATEWAY_API_OBJECTS, "Gateway")
    listener_ports = {listener["port"] for listener in gateway["spec"]["listeners"]}
    routes = _of_kind(GATEWAY_API_OBJECTS, "HTTPRoute")
    assert len(routes) == 3  # split, header, mirror
    for route in routes:
        assert [p["name"] for p in route["spec"]["parentRefs"]] == [gateway["metadata"]["name"]]
        assert listener_ports == {80}
        for rule in route["spec"]["rules"]:
            refs = list(rule["backendRefs"])
            refs += [f["requestMirror"]["backendRef"] for f in rule.get("filters", [])
                     if f["type"] == "RequestMirror"]  # fmt: skip
            for ref in refs:
                svc = _service_port(mesh, ref["name"], ref["port"])
                # Gateway API has no subsets: each backend is one version's own Service.
                assert len(_selected(mesh, svc["spec"]["selector"])) == 1, ref["name"]


def test_the_db_policy_admits_exactly_web(mesh: h.Render) -> None:
    (policy,) = _of_kind(ISTIO_OBJECTS, "AuthorizationPolicy")
    assert _selected(mesh, policy["spec"]["selector"]["matchLabels"]) == {"roar-db"}
    (rule,) = policy["spec"]["rules"]
    (source,) = rule["from"]
    (operation,) = rule["to"]
    db = _pods(mesh)["roar-db"]
    db_ports = {str(p["containerPort"]) for c in h.containers(db) for p in c.get("ports", [])}
    assert set(operation["operation"]["ports"]) == db_ports == {"3306"}
    accounts = {
        pod["spec"]["serviceAccountName"]
        for name, pod in _pods(mesh).items()
        if name in ("roar-web", "roar-web-v2")
    }
    assert source["source"]["principals"] == [
        f"cluster.local/ns/{MESH_NAMESPACE}/sa/{account}" for account in sorted(accounts)
    ]
    assert mesh.find("ServiceAccount", accounts.pop()) is not None
    (peer,) = _of_kind(ISTIO_OBJECTS, "PeerAuthentication")
    assert peer["spec"]["mtls"]["mode"] == "STRICT" and "selector" not in peer["spec"]
