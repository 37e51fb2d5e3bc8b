"""Helpers for the tests that run ROAR's pods on the real node: HTTP through the NodePort on
127.0.0.1 (or a pod address on the test bridge), pods, events and a bounded request loop."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from kubekit import KubeCluster, is_ready, realnode, wait_for

from roar import __version__

# The names the manifests use (deploy/, the chart's defaults, the operator's): the workshop's
# registry. Nothing is pulled: the images tier's builds are loaded into the node under them.
WEB = f"localhost:5000/roar-web:{__version__}"
DB = f"localhost:5000/roar-db:{__version__}"
OPERATOR = f"localhost:5000/roar-operator:{__version__}"
NODE_PORT = 30089  # the dev overlay's and the workshop values' NodePort
BASE = f"http://127.0.0.1:{NODE_PORT}"


def get(url: str, timeout: float = 5) -> httpx.Response:
    return httpx.get(url, timeout=timeout)


def answers(url: str, status: int = 200) -> bool:
    try:
        return get(url).status_code == status
    except httpx.HTTPError:
        return False


def pods(cluster: KubeCluster, ns: str, selector: str) -> list[dict[str, Any]]:
    return cluster.kubectl_json("get", "pods", "-n", ns, "-l", selector)["items"]


def live_pods(cluster: KubeCluster, ns: str, selector: str) -> list[dict[str, Any]]:
    """Pods not being deleted."""
    return [p for p in pods(cluster, ns, selector) if not p["metadata"].get("deletionTimestamp")]


def assert_on_real_node_and_ready(pod: dict[str, Any]) -> None:
    name = pod["metadata"]["name"]
    assert pod["spec"].get("nodeName") == realnode.NODE, (
        f"{name} runs on {pod['spec'].get('nodeName')}"
    )
    assert pod["status"]["phase"] == "Running", f"{name}: {pod['status']['phase']}"
    assert is_ready(pod), f"{name} not Ready: {pod['status'].get('conditions')}"
    for c in pod["status"]["containerStatuses"]:
        assert c["ready"], f"{name}/{c['name']} not ready"
        assert c["restartCount"] == 0, f"{name}/{c['name']} restarted {c['restartCount']} times"


def event_reasons(cluster: KubeCluster, ns: str, pod: str) -> set[str]:
    evs = cluster.kubectl_json(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={pod}"
    )["items"]
    return {e["reason"] for e in evs}


def wait_rollout(cluster: KubeCluster, ns: str, what: str, timeout: int = 300) -> None:
    cluster.kubectl(
        "rollout", "status", what, "-n", ns, f"--timeout={timeout}s", timeout=timeout + 30
    )


def sql(cluster: KubeCluster, ns: str, pod: str, container: str, statements: str) -> str:
    """Run SQL in the db container as the application user, as lab 6 does (`kubectl exec -i`)."""
    return cluster.kubectl(
        "exec", "-i", "-n", ns, pod, "-c", container, "--",
        "sh", "-c", 'exec mariadb -N -u"$MYSQL_USER" -p"$MYSQL_PASSWORD" "$MYSQL_DATABASE"',
        input=statements,
    ).stdout  # fmt: skip


WOODY = (
    "INSERT INTO agents VALUES (NULL, 'Woody Woodpecker', 'bird', '1959-05-22', '1979-04-15', "
    "'Buzz Buzzard', 'menacing stare');\n"
)


def pod_url(pod: dict[str, Any], port: int = 8080) -> str:
    """A pod's own address: on the real node's bridge, reachable from this machine only."""
    return f"http://{pod['status']['podIP']}:{port}"


#: Longer than a web pod's readiness period x failure threshold plus the probe's timeout
#: (2 s x 2 + 2 s in the manifests): a probe that began while the database was away and fails
#: after the first 200 has landed by then.
STEADY_SECONDS = 6.5


def wait_serving_steadily(url: str, *, what: str, timeout: float = 120) -> None:
    """Wait (bounded) until `url` has answered 200 to every request for STEADY_SECONDS.

    After the database comes back, the first 200 does not mean the web pod stays in the Service:
    a readiness probe still in flight from the outage can fail a moment later and take it out for
    a few seconds (seen on CI: a 200, then connections refused)."""
    deadline = time.monotonic() + timeout
    since: float | None = None
    while True:
        now = time.monotonic()
        if answers(url):
            since = now if since is None else since
            if now - since >= STEADY_SECONDS:
                return
        else:
            since = None
        if now > deadline:
            raise AssertionError(
                f"{what}: {url} did not answer 200 for {STEADY_SECONDS} s in a row "
                f"within {timeout} s"
            )
        time.sleep(0.25)


def agent_names(url: str) -> list[str]:
    return [a["NAME"] for a in get(f"{url}/roar/api/v1/registry").json()]


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    #: Connections refused once and then answered on the retry (reported, not failures).
    retried: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + len(self.errors)


def serves_only(url: str, suffix: str, count: int = 10) -> bool:
    """`count` requests in a row, each on a new connection, all answered with a body ending in
    `suffix`: the Service sends nothing to an old pod any more (kube-proxy has caught up)."""
    try:
        return all(get(url).text.endswith(suffix) for _ in range(count))
    except httpx.HTTPError:
        return False


def request_loop(
    url: str, *, until: Any, max_requests: int = 5000, max_seconds: float = 240
) -> LoadResult:
    """GET `url` over and over (bounded in count and time) until `until()` is true, counting
    statuses, bodies and errors: a failure is a request that got no answer (a refused connection
    retried once and refused again, a reset, a timeout) or, for the caller, a non-200."""
    result = LoadResult()
    deadline = time.monotonic() + max_seconds
    with httpx.Client(timeout=5) as client:
        while result.total < max_requests and time.monotonic() < deadline:
            try:
                try:
                    r = client.get(url, headers={"Connection": "close"})
                except httpx.ConnectError as exc:
                    # The request never reached a server, so a client (or a proxy such as
                    # Envoy, `retry_on: connect-failure`) may safely try once more. Seen once in
                    # ~500 requests during a rollout on a busy 2-core machine.
                    result.retried.append(f"{type(exc).__name__}: {exc}")
                    time.sleep(0.05)
                    r = client.get(url, headers={"Connection": "close"})
                result.statuses[r.status_code] += 1
                result.versions[r.text.rsplit(">", 1)[-1]] += 1
            except httpx.HTTPError as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")
            if result.total % 20 == 0 and until():
                break
            time.sleep(0.02)
    return result


def real_namespace(cluster: KubeCluster, name: str) -> None:
    """A new namespace whose pods run on the real node: the same annotations a platform team
    would set (see tools/cluster/realnode.py). Manifests applied into it later keep them:
    `kubectl apply` leaves annotations it did not set. A namespace of that name left by an
    earlier test is deleted first, so its pods (on whatever node) and NodePorts are gone."""
    cluster.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true",
                    "--timeout=180s", timeout=240)  # fmt: skip
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("annotate", "namespace", name,
                    *(f"{k}={v}" for k, v in realnode.namespace_annotations().items()))  # fmt: skip
    wait_for(lambda: cluster.kubectl(
        "get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        what=f"default ServiceAccount in {name}")  # fmt: skip
