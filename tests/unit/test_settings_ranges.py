"""Settings refuse values outside their ranges when read; consumer groups carry the namespace."""

from __future__ import annotations

import pydantic
import pytest

from dspy_flywheel.collector.settings import CollectorSettings
from dspy_flywheel.optimizer.settings import OptimizerSettings
from dspy_flywheel.sdk.settings import WorkerSettings


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_a_spool_limit_that_is_not_positive_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FLYWHEEL_WORKER_SPOOL_MAX_BYTES", value)
    with pytest.raises(pydantic.ValidationError, match="spool_max_bytes"):
        WorkerSettings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FLYWHEEL_WORKER_QUEUE_MAX", "0"),
        ("FLYWHEEL_WORKER_LINGER_MS", "-5"),
        ("FLYWHEEL_WORKER_BATCH_MAX", "0"),
        ("FLYWHEEL_WORKER_CONNECT_TIMEOUT_S", "0"),
    ],
)
def test_other_worker_settings_are_range_checked(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(pydantic.ValidationError):
        WorkerSettings()


def test_consumer_groups_include_the_topic_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: two namespaces on one broker shared (and rebalanced) one group."""
    monkeypatch.setenv("FLYWHEEL_TOPIC_PREFIX", "staging-")
    collector, optimizer = CollectorSettings(), OptimizerSettings()
    assert collector.consumer_group(collector.group_id) == "staging-flywheel-collector"
    assert optimizer.consumer_group(optimizer.acks_group_id) == "staging-flywheel-optimizer-acks"
    monkeypatch.setenv("FLYWHEEL_TOPIC_PREFIX", "")
    assert CollectorSettings().consumer_group("flywheel-collector") == "flywheel-collector"


def test_a_malformed_allow_list_entry_stops_a_service_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLYWHEEL_OPTIMIZER_ALLOWED_REFS", "pkg.mod:build,not a ref")
    with pytest.raises(pydantic.ValidationError, match=r"package\.module:attr"):
        OptimizerSettings()
    monkeypatch.setenv("FLYWHEEL_OPTIMIZER_ALLOWED_REFS", "pkg.mod:build,pkg.other:*")
    allowed = OptimizerSettings().ref_allow_list
    assert allowed.allows("pkg.mod:build")
    assert allowed.allows("pkg.other:anything")
    assert not allowed.allows("pkg.mod:other")
    assert not allowed.allows("tempfile:mkdtemp")


def test_the_largest_published_program_fits_one_bus_message() -> None:
    import inspect

    from aiokafka import AIOKafkaProducer

    bus_limit = inspect.signature(AIOKafkaProducer).parameters["max_request_size"].default
    room = 32 * 1024  # the event's other fields: signature, scores, ids
    assert OptimizerSettings().max_program_bytes + room <= bus_limit
