"""``flywheel topics create`` and ``flywheel schemas freeze|check``."""

from __future__ import annotations

import argparse
from typing import Any

from dspy_flywheel.bus.admin import ensure_topics
from dspy_flywheel.contracts.compat import freeze, full_incompatibilities
from dspy_flywheel.contracts.registry import SchemaRegistry
from dspy_flywheel.settings import FlywheelSettings


async def _topics_create(args: argparse.Namespace) -> int:
    settings = FlywheelSettings()
    created = await ensure_topics(settings.kafka, settings.topics)
    print(f"created: {', '.join(created) or 'nothing (all exist)'}")
    return 0


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
    topics = sub.add_parser("topics", help="Kafka topic provisioning").add_subparsers(
        dest="action", required=True
    )
    topics.add_parser("create", help="create missing topics").set_defaults(func=_topics_create)
    schemas = sub.add_parser("schemas", help="event schema history").add_subparsers(
        dest="action", required=True
    )
    schemas.add_parser("freeze", help="record current schemas in history").set_defaults(
        func=_schemas_freeze
    )
    schemas.add_parser("check", help="check history compatibility").set_defaults(
        func=_schemas_check
    )
