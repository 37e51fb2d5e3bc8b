"""The ROAR operator: RoarApp custom resources managed by kopf.

``handlers`` holds the kopf decorators, ``reconcile`` the pure logic, ``apply`` the API calls,
``controller`` one reconcile and the per-app loop, ``runner`` the entry point.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run"]


def run(*args: Any, **kwargs: Any) -> None:
    """See :func:`roar.operator.runner.run` (imported lazily: it needs the operator extra)."""
    from roar.operator.runner import run as _run

    _run(*args, **kwargs)
