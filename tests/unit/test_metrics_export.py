"""The metrics SDK setup: Prometheus ``/metrics`` and OTLP export carry the same instruments.

A child process (the meter provider is global, once per process) installs the SDK the way a
service does, records through the real instruments, and keeps serving until told to stop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.otlp_receiver import OtlpMetricsReceiver
from tests.prometheus_text import samples

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import sys
import time
from dspy_flywheel.metrics import kafka, setup_metrics, force_flush
from dspy_flywheel.metrics import collector, optimizer, sdk, trigger

port = setup_metrics("svc-under-test", port=int(sys.argv[1]))
trigger.observe("w1", 3, True)
trigger.observe("w1", 3, False)
kafka.note_consumed("g", {"t": 5}, {("t", 0): (5, 12)})
kafka.note_dead_letters("t", ["corrupt_payload"])
collector.note_pii({"EMAIL": 2})
optimizer.job_state("succeeded", "BootstrapFewShot", time.monotonic(), {"tokens": 900})
sdk.record_reload("w1", "serving", 0.02)
force_flush()
print(port, flush=True)
sys.stdin.read()
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prometheus_and_otlp_export_the_recorded_values() -> None:
    with OtlpMetricsReceiver() as receiver:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "services"), str(ROOT)]),
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": receiver.endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
        }
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(_free_port())],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            port = int(child.stdout.readline())
            scraped = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
            deadline = time.monotonic() + 20
            while "flywheel.trigger.accuracy" not in receiver.snapshot().get("svc-under-test", {}):
                assert time.monotonic() < deadline, receiver.snapshot()
                time.sleep(0.1)
        finally:
            child.communicate("", timeout=30)

    assert scraped["flywheel_trigger_accuracy"] == [
        ({"flywheel_worker_id": "w1", "flywheel_program_version": "3"}, 0.5)
    ]
    (lag,) = scraped["messaging_kafka_consumer_lag"]
    assert lag[1] == 7.0
    assert lag[0]["messaging_destination_partition_id"] == "0"
    assert [v for _, v in scraped["messaging_client_consumed_messages_total"]] == [5.0]
    assert scraped["flywheel_dlq_records_total"][0][0]["error_type"] == "corrupt_payload"
    pii = scraped["flywheel_collector_pii_removed_total"]
    assert pii == [({"flywheel_pii_kind": "EMAIL"}, 2.0)]
    assert [v for _, v in scraped["flywheel_optimizer_job_tokens_sum"]] == [900.0]
    assert [v for _, v in scraped["flywheel_worker_reload_duration_seconds_count"]] == [1.0]

    otlp = receiver.snapshot()["svc-under-test"]
    assert otlp["flywheel.trigger.accuracy"] == [0.5]
    assert otlp["messaging.kafka.consumer.lag"] == [7.0]
    assert otlp["flywheel.collector.pii.removed"] == [2.0]
    assert otlp["flywheel.optimizer.job.duration"] == [1.0]  # histogram: one job
