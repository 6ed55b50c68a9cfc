"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dspy_flywheel.settings import KafkaSettings
from tests.e2e.observed_loop import Observed, observed_loop


@pytest.fixture(scope="package")
async def observed(
    kafka_settings: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Observed]:
    """One observed lifecycle, shared by the observability and dashboard tests."""
    async with observed_loop(kafka_settings, tmp_path_factory.mktemp("observed")) as found:
        yield found
