"""Fixtures of the kmock tier; they live in tests/support/operator_kmock.py so that test modules
can import its helpers without naming a ``conftest`` (several directories have one)."""

from support.operator_kmock import api, operator

__all__ = ["api", "operator"]
