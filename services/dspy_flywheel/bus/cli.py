"""``flywheel topics create`` and ``flywheel dlq list|show|replay TOPIC``.

``dlq list TOPIC``            every dead letter of TOPIC: offset, source, reason, error
``dlq show TOPIC OFFSET``     one letter in full: headers and the record (if it still decodes;
                              a sealed letter, e.g. the collector's, is opened with
                              ``FLYWHEEL_ENCRYPTION_KEYS``)
``dlq replay TOPIC OFFSET``   publish the fixed record to TOPIC with a new event id and a link
                              to the original (``bus.letters``); the fix is ``--set FIELD=JSON``
                              on the original record, or ``--record FILE`` with the whole record

TOPIC is a topic name (``executions``; ``FLYWHEEL_TOPIC_PREFIX`` is added when missing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dspy_flywheel.bus.admin import ensure_topics
from dspy_flywheel.bus.letters import Letter, find, read_letters, replay
from dspy_flywheel.bus.publish import producing
from dspy_flywheel.security.crypto import Cipher, EncryptionSettings
from dspy_flywheel.settings import FlywheelSettings


async def _topics_create(args: argparse.Namespace) -> int:
    settings = FlywheelSettings()
    created = await ensure_topics(settings.kafka, settings.topics)
    print(f"created: {', '.join(created) or 'nothing (all exist)'}")
    return 0


async def _letters(args: argparse.Namespace) -> tuple[FlywheelSettings, list[Letter]]:
    """The settings and every dead letter of ``args.topic`` (the topic prefix added)."""
    settings = FlywheelSettings()
    prefix = settings.topic_prefix
    topic = args.topic if args.topic.startswith(prefix) else f"{prefix}{args.topic}"
    return settings, await read_letters(settings.kafka, topic)


async def _dlq_list(args: argparse.Namespace) -> int:
    _, letters = await _letters(args)
    print(json.dumps([letter.summary() for letter in letters], indent=2))
    return 0


async def _dlq_show(args: argparse.Namespace) -> int:
    _, letters = await _letters(args)
    try:
        letter = find(letters, args.offset, args.partition)
    except LookupError as exc:
        print(f"error: {exc}")
        return 1
    print(json.dumps(letter.details(_cipher()), indent=2, default=str))
    return 0


def _cipher() -> Cipher | None:
    """The platform's keys when they are configured (sealed dead letters need them)."""
    settings = EncryptionSettings()
    return Cipher.from_settings(settings) if settings.keys is not None else None


def _fixed_record(args: argparse.Namespace, original: dict[str, Any] | None) -> dict[str, Any]:
    if args.record is not None:
        record = json.loads(Path(args.record).read_text())
    elif original is not None:
        record = dict(original)
    else:
        raise ValueError("the original record does not decode: give the whole record (--record)")
    if not isinstance(record, dict):
        raise ValueError("the record must be a JSON object")
    for item in args.set or []:
        field, sep, raw = item.partition("=")
        if not sep or field not in record:
            raise ValueError(f"--set {item!r}: expected FIELD=JSON with a field of the record")
        record[field] = json.loads(raw)
    return record


async def _dlq_replay(args: argparse.Namespace) -> int:
    settings, letters = await _letters(args)
    try:
        letter = find(letters, args.offset, args.partition)
        details = letter.details(_cipher())
        event_type = args.event_type or details.get("event_type") or letter.header("event_type")
        if not event_type:
            raise ValueError("the letter names no event type: give --event-type")
        record = _fixed_record(args, details.get("record"))
        async with producing(settings.kafka) as producer:
            event_id = await replay(producer, letter, record, event_type=event_type)
    except (LookupError, ValueError) as exc:  # JSON, InvalidInput, a fixed record still invalid
        print(f"error: {exc}")
        return 2
    print(json.dumps({"replayed": letter.source, "event_id": event_id, "event_type": event_type}))
    return 0


def register(sub: Any) -> None:
    topics = sub.add_parser("topics", help="Kafka topic provisioning").add_subparsers(
        dest="action", required=True
    )
    topics.add_parser("create", help="create missing topics").set_defaults(func=_topics_create)
    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay fixed records")
    actions = dlq.add_subparsers(dest="action", required=True)
    p = actions.add_parser("list", help="every dead letter of TOPIC")
    p.add_argument("topic")
    p.set_defaults(func=_dlq_list)
    for name, func, text in (
        ("show", _dlq_show, "one dead letter in full"),
        ("replay", _dlq_replay, "publish the fixed record with a new event id"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument("topic")
        p.add_argument("offset", type=int)
        p.add_argument("--partition", type=int, default=0)
        p.set_defaults(func=func)
        if name == "replay":
            p.add_argument("--set", action="append", metavar="FIELD=JSON")
            p.add_argument("--record", metavar="FILE", help="the whole fixed record (JSON)")
            p.add_argument("--event-type", help="when the letter does not say")
