"""Validation at the edge: what a value from Kafka or HTTP may be before a service touches it.

One rule per kind of value, used by the event codec (every decoded record), the manager API
(every request) and the trigger config (every write and read)::

    id          1..256 printable characters, no surrounding whitespace     (worker_id, job_id...)
    name        at most 1,024 characters, no NUL                        (optimizer, status...)
    text        at most 1 MiB, no NUL, encodable as UTF-8              (labels, errors...)
    *_json      at most 16 MiB, nested at most 64 deep                 (inputs_json...)
    timestamp   epoch milliseconds from 1970 to the end of year 9999

PostgreSQL refuses NUL in text; a year past 9999 does not fit a Python datetime; JSON nested
thousands deep makes the parser (and every recursive walk after it) raise RecursionError.
Each of these once stopped a service; here they become an :class:`InvalidInput` with a short
``reason`` and a message that names the field.

Depth is checked without recursion: text with fewer brackets than the limit cannot be too deep
(a C-speed count, so ordinary records cost almost nothing); otherwise a linear scan measures it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from dspy_flywheel.contracts.events import ProgramUpdated

MAX_ID_CHARS: Final = 256
MAX_NAME_CHARS: Final = 1024
MAX_TEXT_CHARS: Final = 1024 * 1024
MAX_JSON_CHARS: Final = 16 * 1024 * 1024
MAX_JSON_DEPTH: Final = 64
MIN_TIMESTAMP_MS: Final = 0
MAX_TIMESTAMP_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

# Record fields by kind (the schemas' names; a field not listed is checked as text).
ID_FIELDS: Final = frozenset(
    {"worker_id", "execution_id", "job_id", "alert_id", "instance_id", "command_id"}
)
NAME_FIELDS: Final = frozenset(
    {
        "worker_type", "program_version", "source", "reason", "optimizer", "requested_by",
        "updated_by", "program_ref", "metric_ref", "status", "policy", "cron", "severity", "kind",
        "decision", "decided_by", "command",
    }
)  # fmt: skip
TIMESTAMP_FIELDS: Final = frozenset({"timestamp_ms"})

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


class InvalidInput(ValueError):
    """A value that no retry can make acceptable; ``reason`` is a short code for counters."""

    retriable: ClassVar[bool] = False

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_text(value: object, field: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str):
        raise InvalidInput("wrong_type", f"{field} must be a string, not {type(value).__name__}")
    if len(value) > max_chars:
        raise InvalidInput(
            "too_long", f"{field} has {len(value):,} characters; at most {max_chars:,} allowed"
        )
    if "\x00" in value:
        raise InvalidInput("nul_character", f"{field} contains a NUL character")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidInput("invalid_text", f"{field} is not valid Unicode text") from None
    return value


def check_id(value: object, field: str) -> str:
    """A well-formed identifier: 1..256 printable characters, no leading/trailing space."""
    text = check_text(value, field, MAX_ID_CHARS)
    if not text.strip():
        raise InvalidInput("missing_id", f"{field} is empty")
    if text != text.strip():
        raise InvalidInput("bad_id", f"{field} {text!r} has surrounding spaces")
    if not text.isprintable():
        raise InvalidInput("bad_id", f"{field} {text!r} contains control characters")
    return text


def check_timestamp_ms(value: object, field: str = "timestamp_ms") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("wrong_type", f"{field} must be an integer (epoch milliseconds)")
    if not MIN_TIMESTAMP_MS <= value <= MAX_TIMESTAMP_MS:
        raise InvalidInput(
            "bad_timestamp", f"{field} {value} is outside 1970-01-01 .. 9999-12-31 (epoch ms)"
        )
    return value


def check_number(value: object, field: str, low: float, high: float) -> float:
    """A finite number in [low, high] (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("wrong_type", f"{field} must be a number, not {type(value).__name__}")
    if not (math.isfinite(value) and low <= value <= high):
        raise InvalidInput("out_of_range", f"{field} must be in [{low:g}, {high:g}], got {value}")
    return value


def check_int(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("wrong_type", f"{field} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidInput("out_of_range", f"{field} must be in [{low:,}, {high:,}], got {value}")
    return value


def text_depth(text: str) -> int:
    """How deep the brackets of JSON ``text`` nest (strings skipped), without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def check_json_text(value: object, field: str, max_chars: int = MAX_JSON_CHARS) -> str:
    """JSON text within the size and depth limits (whether it parses is the reader's business)."""
    text = check_text(value, field, max_chars)
    if "\\u0000" in text:  # a NUL once parsed; PostgreSQL's jsonb and text refuse it
        raise InvalidInput("nul_character", f"{field} contains an escaped NUL (\\u0000)")
    brackets = text.count("[") + text.count("{")  # an upper bound of the depth, at C speed
    if brackets > MAX_JSON_DEPTH and text_depth(text) > MAX_JSON_DEPTH:
        raise InvalidInput("too_deep", f"{field} nests deeper than {MAX_JSON_DEPTH} levels")
    return text


def parse_json(value: object, field: str, max_chars: int = MAX_JSON_CHARS) -> Any:
    """Parse JSON text within the limits; InvalidInput (never RecursionError) when it is not."""
    text = check_json_text(value, field, max_chars)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput("invalid_json", f"{field} is not JSON: {exc}") from None


def check_json_value(value: Any, field: str) -> Any:
    """A parsed JSON value whose strings pass :func:`check_text` and whose nesting is within
    the limit (walked with an explicit stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidInput("too_deep", f"{field} nests deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    check_text(key, f"{field} key")
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            check_text(item, field)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput("out_of_range", f"{field} holds {item}, not a finite number")
    return value


def check_record(record: Mapping[str, Any]) -> None:
    """Every field of a decoded event record by its kind (see the module docstring)."""
    for name, value in record.items():
        if value is None:
            continue
        if isinstance(value, str):
            if name in ID_FIELDS:
                check_id(value, name)
            elif name.endswith("_json"):
                check_json_text(value, name)
            else:
                check_text(value, name, MAX_NAME_CHARS if name in NAME_FIELDS else MAX_TEXT_CHARS)
        elif name in TIMESTAMP_FIELDS:
            check_timestamp_ms(value, name)


def check_event_id(raw: bytes, header: str = "event_id") -> str:
    """An envelope id header: 1..256 printable ASCII characters without spaces (a token)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise InvalidInput("bad_header", f"{header} header is not UTF-8") from None
    if not text.isascii() or " " in text:
        raise InvalidInput("bad_header", f"{header} header must be ASCII without spaces")
    try:
        return check_id(text, f"{header} header")
    except InvalidInput as exc:
        raise InvalidInput("bad_header", str(exc)) from None


def valid_traceparent(raw: bytes | None) -> str | None:
    """The W3C traceparent, or None when absent or malformed (tracing is optional metadata)."""
    if not raw:
        return None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if _TRACEPARENT.fullmatch(text) else None


def program_update(event: ProgramUpdated) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """(version, program state, signature) of a ProgramUpdated: a version >= 1 and two JSON
    objects. What the optimizer checks on the topic and every worker before loading."""
    version = check_int(event.version, "version", 1, 2**31 - 1)
    state = parse_json(event.program_state_json, "program_state_json")
    signature = parse_json(event.signature_json, "signature_json")
    if not isinstance(state, dict) or not isinstance(signature, dict):
        raise InvalidInput("invalid_json", "program_state_json and signature_json must be objects")
    return version, state, signature
