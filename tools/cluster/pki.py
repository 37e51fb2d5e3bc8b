"""Certificates and kubeconfigs of the test cluster, made with the openssl command.

One CA signs every serving and client certificate; the aggregation layer has a CA of its own (as
kubeadm does). Generated once per state dir and reused: `make_pki` is a no-op on a complete dir.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import network

PKI_LAYOUT = 4  # bump when make_pki changes, so an older state dir regenerates its pki


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ec_key(name: str, pki: Path) -> None:
    # P-256 keys: generated in milliseconds, unlike RSA, which keeps a cold `up` fast.
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=pki)
    (pki / f"{name}.key").chmod(0o600)


def issue_cert(
    name: str, subject: str, pki: Path, *, sans: str = "", server: bool = False, ca: str = "ca"
) -> None:
    _ec_key(name, pki)
    usage = "serverAuth,clientAuth" if server else "clientAuth"
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        ext.append(f"subjectAltName={sans}")
    (pki / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", f"{name}.ext",
        "-out", f"{name}.crt", cwd=pki,
    )  # fmt: skip


def _ca(name: str, cn: str, pki: Path) -> None:
    _ec_key(name, pki)
    _openssl(
        "req", "-x509", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}",
        "-days", "3650", "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-out", f"{name}.crt", cwd=pki,
    )  # fmt: skip


def make_pki(pki: Path) -> None:
    """Generate the CAs, serving and client certificates and the service-account key, once."""
    done = pki / f".complete-{PKI_LAYOUT}"
    if done.exists():
        return
    shutil.rmtree(pki, ignore_errors=True)
    pki.mkdir(parents=True)
    pki.chmod(0o700)
    _ca("ca", "roar-test-cluster-ca", pki)
    # The aggregation layer's own CA (as kubeadm does): the apiserver proves to aggregated API
    # servers, and to the delegated authentication of the controller-manager and scheduler, that
    # a request comes through it.
    _ca("front-proxy-ca", "roar-test-front-proxy-ca", pki)
    issue_cert("front-proxy-client", "/CN=front-proxy-client", pki, ca="front-proxy-ca")
    # The node address too: with a real node the apiserver listens there, so pods reach it.
    local = f"IP:127.0.0.1,DNS:localhost,IP:{network.NODE_IP}"
    issue_cert("etcd-server", "/CN=etcd", pki, sans=local, server=True)
    issue_cert("apiserver-etcd-client", "/CN=kube-apiserver-etcd-client", pki)
    svc = ",".join(
        f"DNS:{n}"
        for n in (
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
    )
    sans = f"{local},IP:{network.SERVICE_IP},{svc}"
    issue_cert("apiserver", "/CN=kube-apiserver", pki, sans=sans, server=True)
    # The apiserver's client cert towards kubelets (logs, exec, port-forward on the real node;
    # bound to system:kubelet-api-admin by realnode.RBAC).
    issue_cert("apiserver-kubelet-client", "/CN=kube-apiserver-kubelet-client", pki)
    issue_cert("admin", "/O=system:masters/CN=roar-admin", pki)
    issue_cert("kube-controller-manager", "/CN=system:kube-controller-manager", pki)
    issue_cert("kube-scheduler", "/CN=system:kube-scheduler", pki)
    # kwok plays every kubelet at once (node status, leases, pod status), so it gets admin rights
    # rather than one system:node:<name> identity per node.
    issue_cert("kwok", "/O=system:masters/CN=kwok", pki)
    # The real node: the kubelet as system:node:<name> (the Node authorizer and NodeRestriction
    # limit it to its own node and pods), kube-proxy (bound to system:node-proxier by default)
    # and CoreDNS (a ClusterRole of its own, realnode.RBAC).
    node = network.REAL_NODE
    issue_cert(f"node-{node}", f"/O=system:nodes/CN=system:node:{node}", pki)
    issue_cert("kube-proxy", "/CN=system:kube-proxy", pki)
    issue_cert("coredns", "/CN=roar:coredns", pki)
    # Serving certificates from the cluster CA, so clients verify them: the kubelet's (the
    # apiserver and metrics-server call it) and metrics-server's (the aggregation layer calls it),
    # which is also its client certificate towards the apiserver and the kubelet.
    ip = f"IP:{network.NODE_IP}"
    issue_cert("kubelet-serving", f"/CN={node}", pki, sans=f"{ip},DNS:{node}", server=True)
    ms = "DNS:metrics-server.kube-system.svc"
    issue_cert("metrics-server", "/CN=roar:metrics-server", pki, sans=f"{ip},{ms}", server=True)
    _ec_key("sa", pki)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for leftover in pki.glob("*.csr"):
        leftover.unlink()
    done.touch()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, pki: Path, user: str, server: str) -> None:
    """A client-certificate kubeconfig with the data embedded (helm and kubectl read it alike)."""
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "roar-test",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": _b64(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(pki / f"{user}.crt"),
                    "client-key-data": _b64(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "roar-test", "context": {"cluster": "roar-test", "user": user}}],
        "current-context": "roar-test",
    }
    path.write_text(json.dumps(cfg, indent=2) + "\n")  # JSON is YAML
    path.chmod(0o600)
