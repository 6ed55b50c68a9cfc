import argparse
import json

import pytest

from dspy_flywheel.contracts import InvalidEvent, TriggerConfig, decode, encode
from dspy_flywheel.trigger.cli import _add_set_flags, changes_from_args
from dspy_flywheel.trigger.config import ConfigError, TriggerPolicyConfig, parse_param


def parse_set(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    _add_set_flags(parser)
    return parser.parse_args(["w1", *argv])


def test_record_round_trip_and_defaults() -> None:
    config = TriggerPolicyConfig(worker_id="w1", policy="performance,periodic", interval_seconds=60)
    again = TriggerPolicyConfig.from_record(config.to_record())
    assert again == config
    assert again.policies == {"performance", "periodic"}
    assert TriggerPolicyConfig.of(decode(encode(config).value).event) == config
    with pytest.raises(InvalidEvent, match="unknown_field"):
        TriggerPolicyConfig.from_record({**config.to_record(), "unknown_field": 1})


def test_an_invalid_config_on_the_topic_is_refused() -> None:
    event = TriggerConfig(worker_id="w1", policy="sometimes", timestamp_ms=1)
    with pytest.raises(ConfigError, match="sometimes"):
        TriggerPolicyConfig.of(decode(encode(event).value).event)


@pytest.mark.parametrize(
    "bad",
    [
        {"policy": "sometimes"},
        {"threshold": 1.5},
        {"window_size": 0},
        {"cron": "not a cron"},
        {"optimizer_params_json": "[1]"},
        {"min_examples": 0},
        {"cron": "0 0 30 2 *"},  # no February 30th: refused when written, not on a tick
        {"cooldown_seconds": 99999999999999999999},  # more than an Avro long
        {"cooldown_seconds": -1},
        {"window_size": 2**31},
        {"interval_seconds": 0},
        {"threshold": float("nan")},
        {"optimizer": "NoSuchOpt"},
        {"optimizer_params_json": "[" * 50_000 + "]" * 50_000},
        {"optimizer_params_json": '{"a": "\\u0000"}'},
        {"worker_type": "t\x00"},
        {"timestamp_ms": 2**62},
        {"program_ref": "not a ref"},
        {"enabled": "yes"},
    ],
)
def test_invalid_configs_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        TriggerPolicyConfig(worker_id="w1", **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("worker", ["", "w\x00", " w"])
def test_malformed_worker_ids_rejected(worker: str) -> None:
    with pytest.raises(ConfigError):
        TriggerPolicyConfig(worker_id=worker)


def test_set_merges_with_current_value() -> None:
    current = TriggerPolicyConfig(
        worker_id="w1",
        threshold=0.7,
        cooldown_seconds=30,
        optimizer_params_json='{"max_rounds": 2}',
        program_ref="pkg.mod:Prog",
    )
    args = parse_set("--threshold", "0.85", "--param", "max_bootstrapped_demos=4")
    merged = current.merged(changes_from_args(args, current))
    assert merged.threshold == 0.85
    assert merged.cooldown_seconds == 30  # not given: kept
    assert merged.program_ref == "pkg.mod:Prog"
    assert json.loads(merged.optimizer_params_json) == {
        "max_rounds": 2,
        "max_bootstrapped_demos": 4,
    }
    assert merged.updated_by.startswith("cli")


def test_set_disable_and_unset_fields() -> None:
    current = TriggerPolicyConfig(worker_id="w1", window_seconds=300, interval_seconds=60)
    args = parse_set("--disable", "--no-window-seconds", "--policy", "periodic")
    merged = current.merged(changes_from_args(args, current))
    assert merged.enabled is False
    assert merged.window_seconds is None
    assert merged.interval_seconds == 60
    assert merged.policy == "periodic"


def test_merge_rejects_unknown_field() -> None:
    with pytest.raises(ConfigError):
        TriggerPolicyConfig(worker_id="w1").merged({"thresold": 0.5})


def test_parse_param() -> None:
    assert parse_param("k=3") == ("k", 3)
    assert parse_param("flag=true") == ("flag", True)
    assert parse_param("name=gpt x") == ("name", "gpt x")
    with pytest.raises(ConfigError):
        parse_param("novalue")
