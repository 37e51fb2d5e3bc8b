"""Scale benchmark of the operator: N RoarApps created at once on kwok nodes.

For each operator variant, in the same run on the same control plane: server-side apply (today's
operator, ``ssa``) and the compare-then-patch operator it replaced (``legacy``,
bench/legacy_operator.py). Each gets a fresh namespace, a fresh operator process (admin
kubeconfig, default settings: 30 s resync, 0.5 s debounce) and N RoarApps in one
``kubectl apply``. Reported: the time until each app's Ready condition is True (p50, p99, all N),
reconcile durations (p50/p99 from the operator's histogram, interpolated within buckets as
PromQL's histogram_quantile does), the operator's RSS, and the API requests per RoarApp, both
counted by the operator (its reconciler's requests) and by the API server
(``apiserver_request_total``: everything, the controllers and kwok included). Then a steady window
of two resyncs with nothing to do: requests per reconcile, and child writes (must be 0).

    .venv/bin/python bench/operator_scale.py [--apps 100] [--replicas 1] [--rounds 2]

Starts its own kwok-only control plane (tools/cluster/up --real-nodes 0, in a temporary
directory) and stops it at the end. Results replace the `operator-scale` section of
docs/benchmarks.md (``--no-write`` only prints them). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from report import markers, write_section  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools" / "cluster"
START, END = markers("operator-scale")
RESYNC = 30.0  # the operator's default; the steady window spans two of them
OPERATORS = {
    "ssa": [sys.executable, "-m", "roar.operator"],
    "legacy": [sys.executable, str(ROOT / "bench" / "legacy_operator.py")],
}
LABELS = {
    "ssa": "server-side apply (this version)",
    "legacy": "compare-then-patch (0.2.0)",
}
Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _parse(text: str) -> Metrics:
    """Prometheus text format -> {(name, sorted labels): value}."""
    out: Metrics = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)", line)
        if not m:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def _sum(metrics: Metrics, name: str, **match: str) -> float:
    return sum(
        v for (n, labels), v in metrics.items()
        if n == name and all((k, val) in labels for k, val in match.items())
    )  # fmt: skip


def _delta(after: Metrics, before: Metrics) -> Metrics:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def _quantile(q: float, metrics: Metrics, name: str) -> float:
    """histogram_quantile(q, name) over cumulative buckets, interpolated linearly."""
    buckets = sorted(
        (float("inf") if dict(labels)["le"] == "+Inf" else float(dict(labels)["le"]), v)
        for (n, labels), v in metrics.items() if n == f"{name}_bucket"
    )  # fmt: skip
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return lower


def _by_verb(metrics: Metrics, per: float) -> dict[str, float]:
    """The operator's requests by verb (all result codes together), divided by ``per``."""
    verbs: Counter[str] = Counter()
    for (name, labels), value in metrics.items():
        if name == "roar_operator_api_requests_total":
            verbs[dict(labels)["verb"]] += value
    return {verb: round(count / per, 2) for verb, count in sorted(verbs.items()) if count}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Cluster:
    kubeconfig: Path
    kubectl_bin: Path

    def kubectl(self, *args: str, input: str | None = None) -> str:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        res = subprocess.run([str(self.kubectl_bin), *args], env=env, input=input,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        if res.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)}: {res.stderr}")
        return res.stdout

    def apiserver_metrics(self) -> Metrics:
        metrics = _parse(self.kubectl("get", "--raw", "/metrics"))
        return {k: v for k, v in metrics.items() if k[0] == "apiserver_request_total"}


@contextmanager
def control_plane(nodes: int) -> Iterator[Cluster]:
    bin_dir = subprocess.run([str(TOOLS / "build"), "--print-bin-dir"], capture_output=True,
                             text=True, check=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="roar-bench-") as state:
        up = subprocess.run(
            [str(TOOLS / "up"), "--dir", state, "--bin-dir", bin_dir, "--real-nodes", "0",
             "--nodes", str(nodes)], capture_output=True, text=True,
        )  # fmt: skip
        if up.returncode:
            raise SystemExit(f"tools/cluster/up failed:\n{up.stderr[-4000:]}")
        try:
            yield Cluster(Path(up.stdout.strip().splitlines()[-1]), Path(bin_dir) / "kubectl")
        finally:
            subprocess.run([str(TOOLS / "down"), "--dir", state], capture_output=True)


@dataclass
class Operator:
    argv: list[str]
    kubeconfig: Path
    namespace: str
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROAR_")}
        env |= {
            "ROAR_OPERATOR_METRICS_PORT": str(self.port),
            "ROAR_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{_free_port()}/healthz",
        }
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*self.argv, "--kubeconfig", str(self.kubeconfig), "-n", self.namespace],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.metrics():
                return
            time.sleep(0.2)
        raise SystemExit(f"the operator did not start; see {log}")

    def metrics(self) -> Metrics:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                return _parse(r.read().decode())
        except OSError:
            return {}

    def memory(self) -> dict[str, float]:
        """VmRSS now and VmHWM (the peak), in MB."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M))
        return {k: int(v) / 1024 for k, v in values.items()}

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)


def roarapps(count: int, replicas: int) -> str:
    items = [
        {"apiVersion": "app.example.com/v1alpha1", "kind": "RoarApp",
         "metadata": {"name": f"app-{i:03d}"}, "spec": {"replicas": replicas}}
        for i in range(count)
    ]  # fmt: skip
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def ready_times(cluster: Cluster, namespace: str, count: int, t0: float) -> list[float]:
    """Seconds from the apply until each app's Ready condition was first seen True."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 900
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(seen)} of {count} RoarApps got Ready in 900 s")
        apps = json.loads(cluster.kubectl("get", "roarapps", "-n", namespace, "-o", "json"))
        now = time.monotonic() - t0
        for app in apps["items"]:
            conds = (app.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                seen.setdefault(app["metadata"]["name"], now)
        time.sleep(0.5)
    return list(seen.values())


def run_mode(
    cluster: Cluster, mode: str, args: argparse.Namespace, logs: Path, round_: int
) -> dict[str, Any]:
    ns = f"bench-{mode}-{round_}"
    cluster.kubectl("create", "namespace", ns)
    op = Operator(OPERATORS[mode], cluster.kubeconfig, ns)
    op.start(logs / f"operator-{mode}-{round_}.log")
    try:
        api0, op0 = cluster.apiserver_metrics(), op.metrics()
        t0 = time.monotonic()
        cluster.kubectl("apply", "-n", ns, "-f", "-", input=roarapps(args.apps, args.replicas))
        ready = ready_times(cluster, ns, args.apps, t0)
        api1, op1, mem1 = cluster.apiserver_metrics(), op.metrics(), op.memory()
        time.sleep(args.steady)  # nothing changes: only resyncs
        api2, op2, mem2 = cluster.apiserver_metrics(), op.metrics(), op.memory()
        # While the operator runs: kopf's finalizer (it stops each app's resync daemon) would
        # otherwise keep every RoarApp, and so the namespace, from going.
        cluster.kubectl("delete", "roarapps", "--all", "-n", ns, "--timeout=300s")
    finally:
        op.stop()
    # The next variant starts on an empty cluster: its controllers idle, its pods gone.
    cluster.kubectl("delete", "namespace", ns, "--timeout=600s")
    create, steady = _delta(op1, op0), _delta(op2, op1)
    api_create, api_steady = _delta(api1, api0), _delta(api2, api1)
    steady_reconciles = _sum(steady, "roar_operator_reconciles_total")
    n = args.apps
    result = {
        "mode": mode,
        "ready_p50": _percentile(ready, 0.5),
        "ready_p99": _percentile(ready, 0.99),
        "ready_all": max(ready),
        "reconciles": _sum(create, "roar_operator_reconciles_total"),
        "reconcile_p50": _quantile(0.5, create, "roar_operator_reconcile_duration_seconds"),
        "reconcile_p99": _quantile(0.99, create, "roar_operator_reconcile_duration_seconds"),
        "steady_reconcile_p50": _quantile(0.5, steady, "roar_operator_reconcile_duration_seconds"),
        "rss_ready": mem1["VmRSS"],
        "rss_peak": mem2["VmHWM"],
        "op_requests_per_app": _sum(create, "roar_operator_api_requests_total") / n,
        "op_requests_by_verb": _by_verb(create, n),
        "api_requests_per_app": _sum(api_create, "apiserver_request_total") / n,
        "api_roarapp_requests_per_app": _sum(
            api_create, "apiserver_request_total", resource="roarapps"
        )
        / n,
        "writes_create": _sum(create, "roar_operator_child_writes_total"),
        "steady_reconciles": steady_reconciles,
        "steady_requests_per_reconcile": _sum(steady, "roar_operator_api_requests_total")
        / max(steady_reconciles, 1),
        "steady_api_requests": _sum(api_steady, "apiserver_request_total"),
        "steady_writes": _sum(steady, "roar_operator_child_writes_total"),
        "steady_by_verb": _by_verb(steady, max(steady_reconciles, 1)),
        "rss_steady": mem2["VmRSS"],
    }
    return result


def _cell(rounds: list[dict[str, Any]], keys: str | tuple[str, ...], fmt: str) -> str:
    """One value per round, "first / second"; a per-verb breakdown is averaged over rounds."""
    names = keys if isinstance(keys, tuple) else (keys,)
    if isinstance(rounds[0][names[0]], dict):
        verbs = sorted({v for r in rounds for v in r[names[0]]})
        mean = {v: sum(r[names[0]].get(v, 0) for r in rounds) / len(rounds) for v in verbs}
        return ", ".join(f"{v} {n:.1f}" for v, n in mean.items())
    return " / ".join(fmt.format(*(r[k] for k in names)) for r in rounds)


def render(results: dict[str, list[dict[str, Any]]], orders: list[list[str]],
           args: argparse.Namespace) -> str:  # fmt: skip
    date = dt.date.today().isoformat()
    rows = [
        ("all N Ready after (s)", "ready_all", "{:.1f}"),
        ("app Ready after, p50 (s)", "ready_p50", "{:.1f}"),
        ("app Ready after, p99 (s)", "ready_p99", "{:.1f}"),
        ("reconciles until all Ready", "reconciles", "{:.0f}"),
        ("reconcile duration p50 (s)", "reconcile_p50", "{:.2f}"),
        ("reconcile duration p99 (s)", "reconcile_p99", "{:.2f}"),
        ("operator requests per RoarApp until Ready", "op_requests_per_app", "{:.1f}"),
        ("... by verb (mean of the rounds)", "op_requests_by_verb", ""),
        ("API server requests per RoarApp until Ready (all clients)", "api_requests_per_app",
         "{:.0f}"),
        ("... of them on roarapps (kopf, status)", "api_roarapp_requests_per_app", "{:.1f}"),
        ("child writes until Ready", "writes_create", "{:.0f}"),
        ("operator RSS, peak (MB)", "rss_peak", "{:.0f}"),
        (f"steady ({args.steady:.0f} s, nothing to do): reconciles", "steady_reconciles",
         "{:.0f}"),
        ("... operator requests per reconcile", "steady_requests_per_reconcile", "{:.1f}"),
        ("... by verb, per reconcile (mean of the rounds)", "steady_by_verb", ""),
        ("... reconcile duration p50 (s)", "steady_reconcile_p50", "{:.2f}"),
        ("... child writes", "steady_writes", "{:.0f}"),
    ]  # fmt: skip
    modes = orders[0]
    lines = ["| measurement | " + " | ".join(LABELS[m] for m in modes) + " |",
             "| --- |" + " ---: |" * len(modes)]  # fmt: skip
    for label, keys, fmt in rows:
        cells = " | ".join(_cell(results[m], keys, fmt) for m in modes)
        lines.append(f"| {label} | {cells} |")
    order = "; ".join(f"round {i + 1}: {', '.join(o)}" for i, o in enumerate(orders))
    intro = (
        f"## Operator at scale (`bench/operator_scale.py`)\n\n"
        f"`.venv/bin/python bench/operator_scale.py --apps {args.apps} --replicas "
        f"{args.replicas} --rounds {args.rounds}` on {date}: a kwok-only control plane "
        f"({args.nodes} kwok nodes) on this project's machine class (2 cores, shared with other "
        f"work at the time), {args.apps} RoarApps (`replicas: {args.replicas}`, managed "
        f"database, NetworkPolicies on: 12 children each) created in one `kubectl apply`, one "
        f"operator variant at a time, each on an empty namespace, in the same run ({order}). "
        "Each cell: round 1 / round 2 / ...\n"
    )
    return f"{START}\n{intro}\n" + "\n".join(lines) + f"\n\n{NOTES}\n{END}"


NOTES = """How to read it: "operator requests" are what its reconciler sends (the
`roar_operator_api_requests_total` metric); kopf's own (watches, its annotations on each
RoarApp, Events) and the controllers' and kwok's show only in the API server's count. Times and
reconcile durations are dominated by waiting for the API server, which the 2 cores share with
etcd, the controllers, kwok and the other reconciles (kopf runs one per RoarApp at once), and
they move with whatever else the machine is doing, hence two rounds in opposite orders: read a
difference smaller than the spread between rounds as none. The request counts are the steadier
figures. At creation server-side apply reads each child once (404: the operator has not seen it
yet, and the read is its "before"), then applies; compare-then-patch reads, then creates. A
steady reconcile with server-side apply sends one apply per child (a no-op the API server does
not write), the Secret read (the db passwords), the RoarApp read and the pod list;
compare-then-patch sends a GET per child and reads the Deployment and StatefulSet again. With
non-canonical quantities in the spec ("0.5" CPU), compare-then-patch also patches the Deployment
and StatefulSet and posts two "Updated" Events at every resync; server-side apply writes nothing
(tests/cluster/test_operator.py proves it)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apps", type=int, default=100)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=4, help="kwok nodes (110 pods each)")
    ap.add_argument("--modes", default="legacy,ssa")
    ap.add_argument("--rounds", type=int, default=2, help="each variant once per round")
    ap.add_argument("--steady", type=float, default=2 * RESYNC + 5,
                    help="seconds of the steady window")  # fmt: skip
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="roar-bench-logs-"))
    modes = args.modes.split(",")
    # Alternate the order: whichever variant runs first gets a quieter machine.
    orders = [modes if r % 2 == 0 else modes[::-1] for r in range(args.rounds)]
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    with control_plane(args.nodes) as cluster:
        cluster.kubectl("apply", "-f", str(ROOT / "deploy" / "operator" / "crd.yaml"))
        cluster.kubectl("wait", "--for=condition=Established",
                        "crd/roarapps.app.example.com", "--timeout=60s")  # fmt: skip
        for round_, order in enumerate(orders, 1):
            for mode in order:
                print(f"[bench] round {round_}: {mode} ...", file=sys.stderr, flush=True)
                results[mode].append(run_mode(cluster, mode, args, logs, round_))
                print(json.dumps(results[mode][-1]), file=sys.stderr, flush=True)
    (logs / "results.json").write_text(json.dumps({"orders": orders, "results": results}))
    section = render(results, orders, args)
    print(section)
    print(f"[bench] operator logs and results.json in {logs}", file=sys.stderr)
    if not args.no_write:
        write_section("operator-scale", section)


if __name__ == "__main__":
    main()
