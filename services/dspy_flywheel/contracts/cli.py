"""``flywheel schemas freeze|check`` (``flywheel topics create`` is in ``bus.cli``)."""

from __future__ import annotations

import argparse
from typing import Any

from dspy_flywheel.contracts.compat import freeze, full_incompatibilities
from dspy_flywheel.contracts.registry import SchemaRegistry


def _schemas_freeze(args: argparse.Namespace) -> int:
    for path in freeze(SchemaRegistry()):
        print(f"froze {path}")
    return 0


def _schemas_check(args: argparse.Namespace) -> int:
    registry = SchemaRegistry()
    failures = 0
    for old in registry.by_fingerprint.values():
        current = registry.current[old.event_type]
        for problem in full_incompatibilities(old.schema, current.schema):
            failures += 1
            print(f"{old.event_type} {old.fingerprint.hex()}: {problem}")
    print("schemas compatible" if not failures else f"{failures} incompatibilities")
    return 1 if failures else 0


def register(sub: Any) -> None:
    schemas = sub.add_parser("schemas", help="event schema history").add_subparsers(
        dest="action", required=True
    )
    schemas.add_parser("freeze", help="record current schemas in history").set_defaults(
        func=_schemas_freeze
    )
    schemas.add_parser("check", help="check history compatibility").set_defaults(
        func=_schemas_check
    )
