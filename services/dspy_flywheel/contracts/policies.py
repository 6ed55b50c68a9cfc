"""Trigger policy names: the values of ``TriggerConfig.policy``.

A policy field holds one name or a comma-separated combination (``performance,periodic``);
names are matched case-insensitively. The SDK checks them at decoration, the trigger on read.
"""

from __future__ import annotations

from typing import Final

POLICIES: Final = ("manual", "periodic", "performance")


def split_policies(policy: str) -> list[str]:
    """The names in ``policy``, lower-cased, blanks dropped (not checked against POLICIES)."""
    return [p.strip().lower() for p in policy.split(",") if p.strip()]
