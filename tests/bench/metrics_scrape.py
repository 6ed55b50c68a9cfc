"""What the SDK's metrics cost a worker: CPU per Prometheus scrape, against the calls' CPU.

    python tests/bench/metrics_scrape.py [--workers 2] [--scrapes 200] [--calls 2000]

The SDK records nothing on the call path: its counters are read from ``Worker.stats()`` when a
reader collects. So the cost is per scrape, paid by the scraping thread. This script runs
``--workers`` instances of the ``worker_overhead`` worker (fake LM, no broker: spool path),
makes ``--calls`` calls (the baseline: process CPU per call), then scrapes ``/metrics``
``--scrapes`` times and prints the process CPU per scrape (the endpoint's and this script's
HTTP client's together: an upper bound) and what that adds per second at a 15 s scrape
interval, in calls' worth of CPU. Last line::

    metrics_scrape cpu_per_scrape_ms=… cpu_per_call_us=… scrape_share_at_15s=…
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

import dspy
import httpx
import repo_root  # noqa: F401  # first: the repository root, for tests.fixtures
from tests.fixtures.fake_lm import FakeEngine
from worker_overhead import OFFLINE_BROKER, ClassifyWorker  # the script's folder: same worker

from dspy_flywheel.lm import make_lm
from dspy_flywheel.metrics import setup_metrics
from dspy_flywheel.sdk import WorkerSettings
from dspy_flywheel.settings import KafkaSettings

SCRAPE_INTERVAL_S = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    dspy.configure(lm=make_lm(FakeEngine(lambda _m: {"label": "billing"})))
    port = setup_metrics("bench-worker", _free_port())
    if port is None:
        raise SystemExit("metrics endpoint did not start")
    with tempfile.TemporaryDirectory() as spool:
        kafka = KafkaSettings(bootstrap_servers=OFFLINE_BROKER)
        workers = [
            ClassifyWorker.create(
                settings=WorkerSettings(kafka=kafka, spool_dir=Path(spool) / str(i), reload=False)
            )
            for i in range(args.workers)
        ]
        started = time.process_time()
        for i in range(args.calls):
            workers[i % len(workers)](text=f"call {i}")
        per_call_s = (time.process_time() - started) / args.calls

        url = f"http://127.0.0.1:{port}/metrics"
        with httpx.Client() as client:
            body = client.get(url).text
            assert "flywheel_worker_events_emitted_total" in body, body[:500]
            started = time.process_time()
            for _ in range(args.scrapes):
                client.get(url).raise_for_status()
            per_scrape_s = (time.process_time() - started) / args.scrapes
        for worker in workers:
            worker.close(timeout=1)
    share = per_scrape_s / SCRAPE_INTERVAL_S  # CPU seconds per second of wall time
    print(f"{len(body.splitlines())} lines per scrape, {args.workers} worker instance(s)")
    print(
        f"metrics_scrape cpu_per_scrape_ms={per_scrape_s * 1000:.2f} "
        f"cpu_per_call_us={per_call_s * 1e6:.1f} scrape_share_at_15s={share:.5f} "
        f"(= {share / per_call_s:.2f} calls' CPU per second)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
