"""What an operator may send the manager (Python API, HTTP, CLI), checked before anything runs.

``checked_config`` takes the request settings (``optimizer``, ``params``, ``program_ref``,
``metric_ref``), refuses unknown keys and wrong types, and returns the ones given (None means
"not given"). Whether a reference may be used is the rule of :mod:`dspy_flywheel.contracts.refs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from dspy_flywheel.contracts.refs import check_ref_syntax
from dspy_flywheel.contracts.validate import (
    MAX_NAME_CHARS,
    check_json_value,
    check_text,
    parse_json,
)

CONFIG_KEYS: Final[tuple[str, ...]] = ("optimizer", "params", "program_ref", "metric_ref")


class ManagerError(ValueError):
    retriable = False


def checked_config(config: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise ManagerError("optimizer_config must be an object")
    unknown = set(config) - set(CONFIG_KEYS)
    if unknown:
        raise ManagerError(
            f"unknown optimizer_config keys {sorted(unknown)}; accepted: {sorted(CONFIG_KEYS)}"
        )
    given = {k: v for k, v in config.items() if v is not None}
    if "optimizer" in given:
        check_text(given["optimizer"], "optimizer", MAX_NAME_CHARS)
    if "params" in given:
        if not isinstance(given["params"], dict):
            raise ManagerError(f"params must be an object, not {type(given['params']).__name__}")
        check_json_value(given["params"], "params")
    for key in ("program_ref", "metric_ref"):
        if key in given:
            check_ref_syntax(given[key], key)
    return given


def parse_body(raw: bytes) -> dict[str, Any]:
    """A JSON object from a request body (depth and size checked before parsing)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ManagerError("request body must be UTF-8 JSON") from None
    body = parse_json(text, "request body")
    if not isinstance(body, dict):
        raise ManagerError("request body must be a JSON object")
    check_json_value(body, "request body")
    return body


def body_keys(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        hint = (
            " (the requester is the authenticated caller, not a body field)"
            if "requested_by" in unknown
            else ""
        )
        raise ManagerError(f"unknown fields {unknown}; accepted: {list(allowed)}{hint}")
