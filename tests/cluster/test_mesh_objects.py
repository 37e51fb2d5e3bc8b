"""Lab 8 on the test control plane: Istio's CRDs (istio.io/api v1.32.0) and the Gateway API's
standard channel (v1.6.3) installed from their Go modules, the mesh overlay applied, then every
file of deploy/istio applied server-side as a learner would, one after the other. The API server
checks each object against the CRD's OpenAPI schema and CEL rules (strict field validation:
an unknown field is an error, not silently pruned), and the tests read back what it stored.

No istiod and no Envoy here (pods run on kwok nodes): what traffic does under these objects is
the real-node test's part (docs/lab-8-istio.md, "How the tests prove it")."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubekit import KubeCluster, assert_stored, wait_for
from meshkit import install_gateway_api_crds, install_istio_crds

from manifests import helpers as h
from roar.kube.render import MESH_NAMESPACE

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
ISTIO = REPO / "deploy" / "istio"
NS = MESH_NAMESPACE
#: The field manager of the learner's applies: one manager, so a file applied after another
#: replaces the fields it no longer sets (as client-side `kubectl apply` does for these objects).
MANAGER = "lab-8"
Obj = dict[str, Any]

#: Group of each kind (the Istio and Gateway API Gateways share a name; kubectl needs the group).
RESOURCES = {
    ("networking.istio.io", "Gateway"): "gateways.networking.istio.io",
    ("networking.istio.io", "DestinationRule"): "destinationrules.networking.istio.io",
    ("networking.istio.io", "VirtualService"): "virtualservices.networking.istio.io",
    ("security.istio.io", "PeerAuthentication"): "peerauthentications.security.istio.io",
    ("security.istio.io", "AuthorizationPolicy"): "authorizationpolicies.security.istio.io",
    ("gateway.networking.k8s.io", "Gateway"): "gateways.gateway.networking.k8s.io",
    ("gateway.networking.k8s.io", "HTTPRoute"): "httproutes.gateway.networking.k8s.io",
}


@pytest.fixture(scope="module")
def mesh_crds(kube_cluster: KubeCluster) -> list[str]:
    return install_istio_crds(kube_cluster) + install_gateway_api_crds(kube_cluster)


@pytest.fixture(scope="module")
def mesh_overlay(
    kube_cluster: KubeCluster, kustomize_tree: Path, mesh_crds: list[str]
) -> Iterator[Path]:
    """The mesh overlay, applied server-side into roar-mesh (the namespace every deploy/istio
    file names); deleted at the end with everything in it."""
    overlay = kustomize_tree / "overlays" / "mesh"
    kube_cluster.kubectl("apply", "--server-side", "--field-manager=roar-tests", "-k",
                         str(overlay))  # fmt: skip
    yield overlay
    kube_cluster.kubectl("delete", "-k", str(overlay), "--wait=true", "--timeout=180s",
                         check=False, timeout=240)  # fmt: skip


def _resource(obj: Obj) -> str:
    return RESOURCES[(obj["apiVersion"].split("/")[0], obj["kind"])]


def _stored(cluster: KubeCluster, obj: Obj) -> Obj:
    return cluster.kubectl_json("get", _resource(obj), obj["metadata"]["name"], "-n", NS)


def _apply(cluster: KubeCluster, *args: str, input: str | None = None,
           check: bool = True) -> Any:  # fmt: skip
    return cluster.kubectl(
        "apply", "--server-side", f"--field-manager={MANAGER}", "--validate=strict", *args,
        input=input, check=check,
    )  # fmt: skip


def _http(spec: Obj) -> list[Obj]:
    return spec["http"]


def _weights(rule: Obj, key: str = "route") -> list[int]:
    return [r.get("weight") for r in rule[key]]


def _subsets(spec: Obj) -> dict[str, Obj]:
    return {s["name"]: s["labels"] for s in spec["subsets"]}


SUBSETS = {"current": {"version": "current"}, "new": {"version": "new"}}

#: What each file must leave stored: the fields the lab's step is about, in the current names.
CHECKS: dict[str, Callable[[Obj], None]] = {}


def check(name: str) -> Callable[[Callable[[Obj], None]], Callable[[Obj], None]]:
    def register(fn: Callable[[Obj], None]) -> Callable[[Obj], None]:
        CHECKS[name] = fn
        return fn

    return register


@check("gateway.yaml")
def _(spec: Obj) -> None:
    (server,) = spec["servers"]
    assert spec["selector"] == {"istio": "ingressgateway"}
    assert (server["port"]["number"], server["port"]["protocol"], server["hosts"]) == (
        80, "HTTP", ["*"])  # fmt: skip


@check("destination-rule.yaml")
def _(spec: Obj) -> None:
    assert spec["host"] == "roar-web" and _subsets(spec) == SUBSETS
    assert "trafficPolicy" not in spec


@check("split-80-20.yaml")
def _(spec: Obj) -> None:
    canary, rest = _http(spec)
    assert canary["match"] == [{"uri": {"exact": "/roar/api/v1/status/version"}}]
    assert _weights(canary) == [80, 20] and sum(_weights(canary)) == 100
    assert [r["destination"]["subset"] for r in canary["route"]] == ["current", "new"]
    assert rest["route"][0]["destination"] == {
        "host": "roar-web", "port": {"number": 8089}, "subset": "current"}  # fmt: skip


@check("split-50-50.yaml")
def _(spec: Obj) -> None:
    canary, _ = _http(spec)
    assert _weights(canary) == [50, 50]
    assert canary["match"] == [{"uri": {"exact": "/roar/api/v1/status/version"}}]


@check("header-route.yaml")
def _(spec: Obj) -> None:
    testers, rest = _http(spec)
    assert testers["match"] == [{"headers": {"x-roar-tester": {"exact": "true"}}}]
    assert testers["route"][0]["destination"]["subset"] == "new"
    assert rest["route"][0]["destination"]["subset"] == "current" and "match" not in rest


@check("fault-delay.yaml")
def _(spec: Obj) -> None:
    canary, _ = _http(spec)
    assert canary["fault"] == {"delay": {"percentage": {"value": 25}, "fixedDelay": "3s"}}
    assert _weights(canary) == [80, 20]


@check("fault-abort.yaml")
def _(spec: Obj) -> None:
    canary, _ = _http(spec)
    # Replaced, not merged: the delay of the previous file is gone.
    assert canary["fault"] == {"abort": {"percentage": {"value": 10}, "httpStatus": 500}}


@check("timeout-retries.yaml")
def _(spec: Obj) -> None:
    version, _ = _http(spec)
    assert version["route"][0]["destination"]["subset"] == "new"
    assert version["timeout"] == "10s"
    retries = version["retries"]
    assert (retries["attempts"], retries["perTryTimeout"]) == (3, "2s")
    assert "5xx" in retries["retryOn"].split(",")


@check("mirror.yaml")
def _(spec: Obj) -> None:
    (rule,) = _http(spec)
    assert "match" not in rule and rule["route"][0]["destination"]["subset"] == "current"
    assert rule["mirror"]["subset"] == "new" and rule["mirrorPercentage"] == {"value": 100}


@check("circuit-breaker.yaml")
def _(spec: Obj) -> None:
    assert _subsets(spec) == SUBSETS
    outlier = spec["trafficPolicy"]["outlierDetection"]
    assert (outlier["consecutive5xxErrors"], outlier["interval"], outlier["baseEjectionTime"],
            outlier["maxEjectionPercent"]) == (3, "5s", "30s", 100)  # fmt: skip
    pool = spec["trafficPolicy"]["connectionPool"]
    assert pool["tcp"]["maxConnections"] > 0 and pool["http"]["http1MaxPendingRequests"] > 0


@check("peer-authentication-strict.yaml")
def _(spec: Obj) -> None:
    assert spec == {"mtls": {"mode": "STRICT"}}


@check("authorization-db.yaml")
def _(spec: Obj) -> None:
    assert spec["action"] == "ALLOW"
    (rule,) = spec["rules"]
    assert rule["from"][0]["source"]["principals"] == [f"cluster.local/ns/{NS}/sa/roar-web"]
    assert rule["to"][0]["operation"]["ports"] == ["3306"]


@check("gateway-api/gateway.yaml")
def _(spec: Obj) -> None:
    (listener,) = spec["listeners"]
    assert spec["gatewayClassName"] == "istio"
    assert (listener["port"], listener["protocol"]) == (80, "HTTP")


@check("gateway-api/split-80-20.yaml")
def _(spec: Obj) -> None:
    canary, rest = spec["rules"]
    refs = canary["backendRefs"]
    # The server defaults each reference to a core Service (group "", kind Service).
    assert [(r["name"], r["port"], r["weight"], r["kind"]) for r in refs] == [
        ("roar-web-v1", 8089, 80, "Service"), ("roar-web-v2", 8089, 20, "Service")]  # fmt: skip
    assert sum(r["weight"] for r in refs) == 100
    assert [r["name"] for r in rest["backendRefs"]] == ["roar-web-v1"]


@check("gateway-api/header-route.yaml")
def _(spec: Obj) -> None:
    testers, rest = spec["rules"]
    (match,) = testers["matches"]  # the server adds its default path match, PathPrefix /
    assert match["headers"] == [{"type": "Exact", "name": "x-roar-tester", "value": "true"}]
    assert [r["name"] for r in testers["backendRefs"]] == ["roar-web-v2"]
    assert [r["name"] for r in rest["backendRefs"]] == ["roar-web-v1"]


@check("gateway-api/mirror.yaml")
def _(spec: Obj) -> None:
    (rule,) = spec["rules"]
    (mirror,) = rule["filters"]
    assert mirror["type"] == "RequestMirror"
    assert mirror["requestMirror"]["backendRef"]["name"] == "roar-web-v2"
    assert mirror["requestMirror"]["percent"] == 100
    assert [r["name"] for r in rule["backendRefs"]] == ["roar-web-v1"]


#: Every file of deploy/istio, in the order of docs/lab-8-istio.md: each scenario replaces the
#: one before (fault-abort's check sees fault-delay's delay gone).
FILES = [
    "gateway.yaml", "destination-rule.yaml", "split-80-20.yaml", "split-50-50.yaml",
    "header-route.yaml", "fault-delay.yaml", "fault-abort.yaml", "timeout-retries.yaml",
    "mirror.yaml", "circuit-breaker.yaml", "peer-authentication-strict.yaml",
    "authorization-db.yaml", "gateway-api/gateway.yaml", "gateway-api/split-80-20.yaml",
    "gateway-api/header-route.yaml", "gateway-api/mirror.yaml",
]  # fmt: skip


def test_every_file_has_a_check() -> None:
    on_disk = {str(p.relative_to(ISTIO)) for p in ISTIO.rglob("*.yaml")}
    assert on_disk == set(FILES) == set(CHECKS), on_disk ^ set(CHECKS)


def test_the_crds_install(kube_cluster: KubeCluster, mesh_crds: list[str]) -> None:
    assert {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io",
            "gateways.networking.istio.io", "authorizationpolicies.security.istio.io",
            "peerauthentications.security.istio.io", "httproutes.gateway.networking.k8s.io",
            "gateways.gateway.networking.k8s.io"} <= set(mesh_crds)  # fmt: skip
    for crd in ("virtualservices.networking.istio.io", "httproutes.gateway.networking.k8s.io"):
        versions = kube_cluster.kubectl_json("get", "crd", crd)["spec"]["versions"]
        assert [v["name"] for v in versions if v["storage"]] == ["v1"], crd


def test_both_versions_run_behind_their_services(
    kube_cluster: KubeCluster, mesh_overlay: Path
) -> None:
    """On a real API server, the controllers' view: one pod per version, the shared Service's
    EndpointSlices hold both, each version's own Service only its pod."""
    for deployment in ("roar-web", "roar-web-v2"):
        kube_cluster.kubectl("rollout", "status", f"deployment/{deployment}", "-n", NS,
                             "--timeout=180s", timeout=240)  # fmt: skip
    pods = kube_cluster.kubectl_json("get", "pods", "-n", NS, "-l",
                                     "app.kubernetes.io/component=web")["items"]  # fmt: skip
    version_of = {p["metadata"]["name"]: p["metadata"]["labels"]["version"] for p in pods}
    assert sorted(version_of.values()) == ["current", "new"]

    def versions_behind(service: str) -> list[str]:
        slices = kube_cluster.kubectl_json(
            "get", "endpointslices", "-n", NS, "-l", f"kubernetes.io/service-name={service}"
        )["items"]
        return sorted(
            version_of[e["targetRef"]["name"]]
            for s in slices
            for e in s.get("endpoints") or []
            if e.get("conditions", {}).get("ready")
        )

    expected = {"roar-web": ["current", "new"], "roar-web-v1": ["current"],
                "roar-web-v2": ["new"]}  # fmt: skip
    seen: dict[str, list[str]] = {}

    def settled() -> bool:
        seen.update({service: versions_behind(service) for service in expected})
        return seen == expected

    try:
        wait_for(settled, what="the EndpointSlices of the three web Services", timeout=60)
    except AssertionError as err:
        raise AssertionError(f"{err}; last seen: {seen}") from None


@pytest.mark.parametrize("name", FILES)
def test_each_file_applies_and_is_stored(
    kube_cluster: KubeCluster, mesh_overlay: Path, name: str
) -> None:
    """`kubectl apply -f` of one lab file, server-side with strict validation: accepted, stored
    whole, with the fields the step is about."""
    path = ISTIO / name
    _apply(kube_cluster, "-f", str(path))
    for obj in h.load_all(path.read_text()):
        stored = _stored(kube_cluster, obj)
        assert_stored(stored["spec"], obj["spec"])
        assert stored["apiVersion"] == obj["apiVersion"]
        CHECKS[name](stored["spec"])


def test_destination_rule_takes_the_circuit_breaker_back(
    kube_cluster: KubeCluster, mesh_overlay: Path
) -> None:
    """The doc's way back: destination-rule.yaml after circuit-breaker.yaml drops the limits."""
    for name in ("circuit-breaker.yaml", "destination-rule.yaml"):
        _apply(kube_cluster, "-f", str(ISTIO / name))
    (obj,) = h.load_all((ISTIO / "destination-rule.yaml").read_text())
    CHECKS["destination-rule.yaml"](_stored(kube_cluster, obj)["spec"])


def _vs(http: list[Obj]) -> Obj:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "refused", "namespace": NS},
        "spec": {"hosts": ["*"], "gateways": ["roar-gateway"], "http": http},
    }  # fmt: skip


ROUTE = [{"destination": {"host": "roar-web", "port": {"number": 8089}, "subset": "current"}}]
HTTPROUTE_RULE = {"backendRefs": [{"name": "roar-web-v1", "port": 8089}]}


def _route(rule: Obj) -> Obj:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "refused", "namespace": NS},
        "spec": {"parentRefs": [{"name": "roar-gateway"}], "rules": [{**HTTPROUTE_RULE, **rule}]},
    }  # fmt: skip


MIRROR = {"type": "RequestMirror",
          "requestMirror": {"backendRef": {"name": "roar-web-v2", "port": 8089}}}  # fmt: skip

#: (accepted object, the same with one mistake, what the API server's error must name).
MISTAKES = {
    # The workshop's field: gone from abort in networking.istio.io/v1 (schema).
    "abort.percent (removed)": (
        _vs([{"route": ROUTE, "fault": {"abort": {"httpStatus": 500,
                                                  "percentage": {"value": 10}}}}]),
        _vs([{"route": ROUTE, "fault": {"abort": {"httpStatus": 500, "percent": 10}}}]),
        "percent",
    ),
    # A CEL rule of the CRD: durations of at least 1 ms.
    "fixedDelay below 1ms (CEL)": (
        _vs([{"route": ROUTE, "fault": {"delay": {"fixedDelay": "3s",
                                                  "percentage": {"value": 25}}}}]),
        _vs([{"route": ROUTE, "fault": {"delay": {"fixedDelay": "500us",
                                                  "percentage": {"value": 25}}}}]),
        "must be a valid duration greater than 1ms",
    ),
    # Gateway API: an experimental-channel field is unknown to the standard CRDs.
    "HTTPRoute retry (experimental channel)": (
        _route({}), _route({"retry": {"attempts": 2}}), "retry",
    ),
    # Gateway API CEL: percent and fraction of a mirror exclude each other.
    "RequestMirror percent and fraction (CEL)": (
        _route({"filters": [{**MIRROR, "requestMirror": {**MIRROR["requestMirror"],
                                                         "percent": 50}}]}),
        _route({"filters": [{**MIRROR, "requestMirror": {
            **MIRROR["requestMirror"], "percent": 50,
            "fraction": {"numerator": 1, "denominator": 2}}}]}),
        "Only one of percent or fraction",
    ),
}  # fmt: skip


@pytest.mark.parametrize("mode", ["server-side", "client-side"])
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_api_server_refuses_mistakes(
    kube_cluster: KubeCluster, mesh_overlay: Path, mistake: str, mode: str
) -> None:
    """The checks above can fail: the same server refuses each mistake, naming it, and accepts
    the object without it; through server-side apply (these tests) and through the plain
    `kubectl apply` a learner types (strict field validation, kubectl's default)."""
    good, bad, named = MISTAKES[mistake]
    apply = ["apply", "--validate=strict", "--dry-run=server", "-f", "-"]
    if mode == "server-side":
        apply[1:1] = ["--server-side", f"--field-manager={MANAGER}"]
    kube_cluster.kubectl(*apply, input=json.dumps(good))
    refused = kube_cluster.kubectl(*apply, input=json.dumps(bad), check=False)
    assert refused.returncode != 0, f"{mistake}: accepted\n{refused.stdout}"
    assert named in refused.stderr, refused.stderr
