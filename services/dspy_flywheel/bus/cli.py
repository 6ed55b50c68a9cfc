"""``flywheel topics create``."""

from __future__ import annotations

import argparse
from typing import Any

from dspy_flywheel.bus.admin import ensure_topics
from dspy_flywheel.settings import FlywheelSettings


async def _topics_create(args: argparse.Namespace) -> int:
    settings = FlywheelSettings()
    created = await ensure_topics(settings.kafka, settings.topics)
    print(f"created: {', '.join(created) or 'nothing (all exist)'}")
    return 0


def register(sub: Any) -> None:
    topics = sub.add_parser("topics", help="Kafka topic provisioning").add_subparsers(
        dest="action", required=True
    )
    topics.add_parser("create", help="create missing topics").set_defaults(func=_topics_create)
