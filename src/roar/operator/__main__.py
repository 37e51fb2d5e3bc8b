"""``python -m roar.operator``: the same as ``roar operator run``."""

from __future__ import annotations

import argparse

from roar.operator.runner import run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m roar.operator", description=__doc__)
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster)")
    parser.add_argument("-n", "--namespace", help="namespace to watch")
    parser.add_argument("-A", "--all-namespaces", action="store_true")
    parser.add_argument("--metrics-host")
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--liveness", help="e.g. http://0.0.0.0:8091/healthz")
    parser.add_argument("-v", "--verbose", action="store_true")
    a = parser.parse_args()
    run(
        a.kubeconfig, a.namespace, a.all_namespaces, metrics_host=a.metrics_host,
        metrics_port=a.metrics_port, liveness=a.liveness, verbose=a.verbose,
    )  # fmt: skip


if __name__ == "__main__":
    main()
