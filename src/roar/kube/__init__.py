"""ROAR's Kubernetes shape, defined once.

Pure builders (:mod:`roar.kube.builders`) turn a small typed spec (:class:`RoarSpec`) into plain
Kubernetes objects (dicts). The kustomize base is rendered from them (:mod:`roar.kube.render`),
the Helm chart is held to them by a test, and the operator calls them at run time.
"""

from __future__ import annotations

from roar.kube.spec import Resources, RoarSpec, SecretKeyRef

__all__ = ["Resources", "RoarSpec", "SecretKeyRef"]
