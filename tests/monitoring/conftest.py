"""Fixtures of the monitoring tier: kmock's API for the operator (shared with the operator tier)."""

from support.operator_kmock import api

__all__ = ["api"]
