"""Helpers for the tests that run ROAR's pods on the real node: HTTP through the NodePort on
127.0.0.1 (or a pod address on the test bridge), pods, events and a bounded request loop."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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
    #: Conntrack entries of earlier unanswered attempts deleted before the loop (see below).
    forgotten: int = 0

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
    statuses, bodies and errors: a failure is a request that got no answer (a refused
    connection, a reset, a timeout) or, for the caller, a non-200. Each request is a new
    connection, so each one goes through kube-proxy's choice of a pod again."""
    result = LoadResult()
    parts = urlsplit(url)
    if parts.hostname == "127.0.0.1" and parts.port:
        result.forgotten = forget_untranslated_syns(parts.port)
    deadline = time.monotonic() + max_seconds
    with httpx.Client(timeout=5) as client:
        while result.total < max_requests and time.monotonic() < deadline:
            try:
                r = client.get(url, headers={"Connection": "close"})
                result.statuses[r.status_code] += 1
                result.versions[r.text.rsplit(">", 1)[-1]] += 1
            except httpx.HTTPError as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")
            if result.total % 20 == 0 and until():
                break
            time.sleep(0.02)
    return result


def forget_untranslated_syns(port: int) -> int:
    """Delete the conntrack entries of connection attempts to 127.0.0.1:`port` that kube-proxy
    never translated (still SYN_SENT, the reply expected from 127.0.0.1 itself); returns how many.

    A client that tried the NodePort while its Service had no endpoints (an earlier test's
    outage, a wait loop) left such entries, and for 120 s the kernel takes a new SYN from the
    same source port for a retransmission of that attempt: no DNAT, the packet reaches
    127.0.0.1:`port` where nothing listens, and the connection is refused. A request loop of
    a few hundred connections hit them (on CI, and here in 5 of 9 runs beside the other tiers,
    in bursts of 3 to 9 refusals; 0 of 8 with them deleted). kube-proxy clears such
    entries for UDP only (kubernetes/kubernetes#48719, #101607). A loop that asserts every
    request is answered starts without them; the Service answers throughout it, so it makes
    no new ones."""
    run = subprocess.run(
        ["conntrack", "-D", "-p", "tcp", "--orig-dst", "127.0.0.1", "--dport", str(port),
         "--reply-src", "127.0.0.1", "--state", "SYN_SENT"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    deleted = re.search(r"(\d+) flow entries have been deleted", run.stderr)
    if deleted is None:  # exit 1 with a count of 0 is "nothing to delete"; anything else fails
        raise RuntimeError(f"conntrack -D failed ({run.returncode}): {run.stderr.strip()}")
    return int(deleted.group(1))


@dataclass
class Backend:
    """What a BackendWatch saw of one pod address (times from time.monotonic())."""

    out_of_rules: float | None = None  # gone from kube-proxy's rules for the Service
    stopping: float | None = None  # first 503 from /readyz: the pod got its SIGTERM
    closed: float | None = None  # first refused connection: its listener closed


class BackendWatch(threading.Thread):
    """Watches, every `interval` s (bounded by `max_seconds`), which pod addresses kube-proxy's
    rules send a Service's traffic to, and polls each one's /readyz directly: when each pod
    left the rules and when its listener closed. A pod that closes before it leaves them
    refuses the connections still sent to it; the margin says how close a drain came to that
    on this machine (the propagation delay of endpoint changes, which load stretches)."""

    def __init__(self, namespace: str, service: str, *, interval: float = 0.1,
                 max_seconds: float = 300) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.comment = f'--comment "{namespace}/{service}:'
        self.interval = interval
        self.deadline = time.monotonic() + max_seconds
        self.backends: dict[str, Backend] = {}
        self.done = threading.Event()
        self.failure: BaseException | None = None

    def _in_rules(self) -> set[str]:
        save = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                              check=True, timeout=10).stdout  # fmt: skip
        return {
            m.group(1)
            for line in save.splitlines()
            if line.startswith("-A KUBE-SEP-") and self.comment in line
            for m in [re.search(r"--to-destination ([0-9.]+):", line)]
            if m
        }

    def run(self) -> None:
        try:
            self._watch()
        except Exception as exc:  # reported by stop(), in the test's thread
            self.failure = exc

    def _watch(self) -> None:
        with httpx.Client(timeout=0.5) as client:
            while not self.done.is_set() and time.monotonic() < self.deadline:
                now, rules = time.monotonic(), self._in_rules()
                for ip in rules:
                    self.backends.setdefault(ip, Backend())
                for ip, b in self.backends.items():
                    if ip not in rules and b.out_of_rules is None:
                        b.out_of_rules = now
                    if b.closed is None:
                        self._poll(client, ip, b)
                self.done.wait(self.interval)

    @staticmethod
    def _poll(client: httpx.Client, ip: str, b: Backend) -> None:
        try:
            status = client.get(f"http://{ip}:8080/readyz").status_code
        except httpx.ConnectError:
            b.closed = time.monotonic()
        except httpx.HTTPError:
            pass  # slow under load: the next round asks again
        else:
            if status == 503 and b.stopping is None:
                b.stopping = time.monotonic()

    def stop(self) -> dict[str, Backend]:
        """The pods whose listener closed while watched, by address."""
        self.done.set()
        self.join(timeout=30)
        if self.failure is not None:
            raise AssertionError(f"the backend watch failed: {self.failure!r}")
        return {ip: b for ip, b in self.backends.items() if b.closed is not None}

    def report(self) -> str:
        """A line per pod whose listener closed while watched."""
        lines = []
        for ip, b in sorted(self.backends.items()):
            if b.closed is None:
                continue
            line = f"{ip} closed"
            if b.stopping is not None:
                line += f" {b.closed - b.stopping:.2f} s after its SIGTERM,"
            if b.out_of_rules is None:
                line += " never out of kube-proxy's rules"
            else:
                line += f" {b.closed - b.out_of_rules:+.2f} s after it left kube-proxy's rules"
            lines.append(line)
        return "\n".join(lines) or "no pod closed while watched"


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
