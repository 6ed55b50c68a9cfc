"""The whole loop on the real broker and database with a fake, demo-aware LM.

traffic with labels → collector stores examples → trigger sees accuracy < threshold →
optimizer compiles + gates on the holdout → program-updated → worker hot-reloads (ack) →
accuracy on new traffic rises by ≥ 20 points. (``tests/secure`` runs the same turn over TLS.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings
from tests.e2e.fake_loop import improve_once


@pytest.mark.parametrize(
    "optimizer",
    [
        "RetrievalCascade",  # the default: its index and label model are published, hot-reloaded
        "BootstrapFewShot",
        pytest.param("BootstrapFewShotWithRandomSearch", marks=pytest.mark.slow),
        pytest.param("MIPROv2", marks=pytest.mark.slow),
    ],
)
async def test_loop_improves_accuracy(
    optimizer: str, kafka_settings: KafkaSettings, topics: Topics, db_schema: str, tmp_path: Path
) -> None:
    turn = await improve_once(optimizer, kafka_settings, topics, db_schema, tmp_path)
    print(
        f"\n{optimizer}: accuracy {turn.accuracy_before:.2f} -> {turn.accuracy_after:.2f} "
        f"in {turn.seconds:.1f}s"
    )
    assert turn.accuracy_after - turn.accuracy_before >= 0.20, turn
    assert turn.seconds < 300
