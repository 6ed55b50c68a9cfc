"""Kafka plumbing shared by services: topic provisioning, publishing encoded events."""

from dspy_flywheel.bus.admin import ensure_topics
from dspy_flywheel.bus.publish import publish, start_producer, stop_producer

__all__ = ["ensure_topics", "publish", "start_producer", "stop_producer"]
