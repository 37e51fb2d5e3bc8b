"""The kwok nodes: Node objects that kwok keeps Ready and whose pods it marks Running and Ready
without running anything. They carry the scale tests (many RoarApps, many replicas)."""

from __future__ import annotations

KWOK_ANNOTATION = "kwok.x-k8s.io/node=fake"
ZONES = ("zone-a", "zone-b", "zone-c")


def kwok_nodes(count: int) -> list[dict]:
    nodes = []
    for i in range(count):
        name = f"kwok-node-{i}"
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        KWOK_ANNOTATION.split("=")[0]: KWOK_ANNOTATION.split("=")[1],
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    # Well-known labels, zones included, so manifests with node selectors or
                    # topology spread constraints schedule as on a real multi-zone cluster.
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "node-role.kubernetes.io/agent": "",
                        "topology.kubernetes.io/zone": ZONES[i % len(ZONES)],
                        "type": "kwok",
                    },
                },
                "spec": {},
                "status": {
                    "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                    "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                },
            }
        )
    return nodes
