"""The app.kubernetes.io/* labels every ROAR object carries."""

from __future__ import annotations

from roar.kube import names

NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
PART_OF = "app.kubernetes.io/part-of"
VERSION = "app.kubernetes.io/version"
MANAGED_BY = "app.kubernetes.io/managed-by"
#: The web version a pod runs when several run side by side (lab 8): Istio's DestinationRule
#: subsets select on it, as the workshop's did (``version: current`` / ``version: new``).
TRACK = "version"


def selector_labels(instance: str, component: str) -> dict[str, str]:
    """Labels a selector matches on; immutable on Deployments, so never a version in here."""
    return {NAME: names.APP, INSTANCE: instance, COMPONENT: component}


def labels(instance: str, component: str, version: str) -> dict[str, str]:
    """Selector labels plus the descriptive ones."""
    return {**selector_labels(instance, component), PART_OF: names.APP, VERSION: version}
