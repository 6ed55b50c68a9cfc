"""Per-call cost of the worker wrapper: the same module called plain and through ``@dspy_worker``.

    python tests/bench/worker_overhead.py [--calls 8000] [--block 50] [--latency-ms 1.0]
                                          [--warmup 10500] [--scrape-every 0]

The module is a ``dspy.Predict`` on a fake LM engine that sleeps ``--latency-ms`` per call.
Both are measured in their steady state: first ``--warmup`` calls each (without LM latency).
DSPy keeps the last 10,000 LM calls in every module's and LM's history; until those lists are
full, each call leaves ~9 objects behind, and the garbage collector's full passes (100-300 ms
here) land on whichever variant happens to run. The warm-up also fills the worker's feedback
cache (10,000 executions). A long-running worker lives in that steady state. Measuring starts
once the warm-up's events have left the worker (its fast calls overflow the in-memory buffer
into the spool; replaying them would run during the measured blocks).
Plain and wrapped calls alternate in short blocks within one run (50 calls, ~120 ms), in the
order plain-wrapped, wrapped-plain, ... so neither is always the one that runs after the other.
Short blocks matter on a shared VM: its speed drifts by up to 25% over a few seconds (seen block
by block here), and with 1 s blocks that drift alone moved the ratio by +-3% from run to run.
The worker's IO thread encodes and sends each 500 ms batch beside the calls, mostly while they
wait for the LM; its work lands on either variant's blocks, so its CPU per event is printed
separately, with the ratio it would give if all of it were spent on the call path.
With ``--scrape-every S`` the worker serves its SDK metrics (``FLYWHEEL_WORKER_METRICS_PORT``
on a free port) and another process scrapes ``/metrics`` every S seconds during the run, as a
Prometheus would (its default interval is 15 s or more).
With ``KAFKA_BOOTSTRAP_SERVERS`` set, the wrapped worker delivers its events to private topics
on that broker while it is measured; without it, Kafka is unreachable and events go to a
temporary spool (the worker's offline path). Last line::

    worker_overhead plain_us=… wrapped_us=… ratio=… p99_wrapped_us=…
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import dspy
import repo_root  # noqa: F401  # first: the repository root, for tests.fixtures
from tests.fixtures.fake_lm import FakeEngine

from dspy_flywheel.bus.admin import ensure_topics
from dspy_flywheel.lm import make_lm
from dspy_flywheel.sdk import Worker, WorkerSettings, dspy_worker
from dspy_flywheel.settings import KafkaSettings

OFFLINE_BROKER = "127.0.0.1:9"  # nothing listens: the worker's offline (spool) path


class Classify(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.predict(text=text)


ClassifyWorker = dspy_worker("bench-classifier")(Classify)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def thread_cpu_s(thread: threading.Thread) -> float:
    """CPU seconds used by ``thread`` so far (Linux /proc; NaN elsewhere)."""
    try:
        stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settings_for_run(spool_dir: Path) -> tuple[WorkerSettings, str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        prefix = f"bench{uuid.uuid4().hex[:8]}-"
        settings = WorkerSettings(topic_prefix=prefix, spool_dir=spool_dir, reload=False)
        asyncio.run(ensure_topics(settings.kafka, settings.topics))
        return settings, f"kafka {settings.kafka.bootstrap_servers} topics {prefix}*"
    kafka = KafkaSettings(bootstrap_servers=OFFLINE_BROKER)
    return WorkerSettings(kafka=kafka, spool_dir=spool_dir, reload=False), "no broker (spool)"


# Another process, as a Prometheus server would be: GET /metrics every N s until SIGINT, then
# print how many scrapes answered and how many worker samples the last one had.
SCRAPER = """
import sys, time, urllib.request
url, every, ok, samples = sys.argv[1], float(sys.argv[2]), 0, 0
try:
    while True:
        time.sleep(every)
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                body = reply.read().decode()
            ok += 1
            samples = sum(line.startswith("flywheel_worker") for line in body.splitlines())
        except OSError:
            pass
except KeyboardInterrupt:
    pass
print(ok, samples, flush=True)
"""


def start_scraper(every_s: float) -> subprocess.Popen[str]:
    """Serve the worker's metrics on a free port (the worker reads the variable at start) and
    scrape them from another process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ["FLYWHEEL_WORKER_METRICS_PORT"] = str(port)
    url = f"http://127.0.0.1:{port}/metrics"
    return subprocess.Popen(
        [sys.executable, "-c", SCRAPER, url, str(every_s)], stdout=subprocess.PIPE, text=True
    )


def stop_scraper(scraper: subprocess.Popen[str]) -> tuple[int, int]:
    scraper.send_signal(signal.SIGINT)
    out, _ = scraper.communicate(timeout=30)
    ok, samples = (int(x) for x in out.split())
    return ok, samples


class Pair(NamedTuple):
    plain: Classify
    worker: Worker
    settings: WorkerSettings
    mode: str
    warmup_s: float


def steady_pair(spool_dir: Path, warmup: int, latency_ms: float) -> Pair:
    """The plain module and the worker on a fake LM, both past ``warmup`` calls (made without
    LM latency; see the module docstring), then with the LM at ``latency_ms``."""
    engine = FakeEngine(lambda _m: {"label": "billing"})
    dspy.configure(lm=make_lm(engine))
    plain = Classify()
    settings, mode = settings_for_run(spool_dir)
    worker = ClassifyWorker.create(settings=settings)
    started = time.perf_counter()
    for i in range(warmup):
        plain(text=f"warm {i}")
        worker(text=f"warm {i}")
    warmup_s = time.perf_counter() - started
    settle(worker, online=settings.kafka.bootstrap_servers != OFFLINE_BROKER)
    engine.latency_s = latency_ms / 1000
    return Pair(plain, worker, settings, mode, warmup_s)


def settle(worker: Worker, *, online: bool, timeout_s: float = 120.0) -> None:
    """Wait until the warm-up's events are out of the worker's queue (and, with a broker, out
    of its spool: 10,500 fast calls overflow the in-memory buffer). Otherwise the IO thread
    replays that backlog during the measured blocks, holding the GIL for whichever variant
    runs then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = worker.stats()
        if stats["queued"] == 0 and (not online or stats["spool_pending"] == 0):
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"warm-up events still pending after {timeout_s:.0f} s: {stats}")
    time.sleep(1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=8000, help="calls per variant")
    parser.add_argument("--block", type=int, default=50, help="calls per alternating block")
    parser.add_argument("--latency-ms", type=float, default=1.0, help="fake LM latency")
    parser.add_argument(
        "--warmup", type=int, default=10_500, help="calls per variant before measuring"
    )
    parser.add_argument(
        "--scrape-every",
        type=float,
        default=0,
        help="serve the SDK metrics and scrape them every S seconds (0: metrics off)",
    )
    args = parser.parse_args()
    scraper = start_scraper(args.scrape_every) if args.scrape_every > 0 else None

    with tempfile.TemporaryDirectory() as spool_dir:
        plain, worker, settings, mode, warmup_s = steady_pair(
            Path(spool_dir), args.warmup, args.latency_ms
        )
        io_thread = next(t for t in threading.enumerate() if t.name.startswith("flywheel-"))
        io_cpu_before = thread_cpu_s(io_thread)
        plain_times: list[float] = []
        wrapped_times: list[float] = []
        perf = time.perf_counter
        done = 0
        variants = [(plain, plain_times), (worker, wrapped_times)]
        while done < args.calls:
            n = min(args.block, args.calls - done)
            for call, times in variants:
                for i in range(n):
                    t0 = perf()
                    call(text=f"ticket {done + i}")
                    times.append(perf() - t0)
            variants.reverse()
            done += n
        time.sleep(0.5)  # let the last events go out before reading the IO thread's CPU
        io_cpu_us = (thread_cpu_s(io_thread) - io_cpu_before) / args.calls * 1e6
        scraped = stop_scraper(scraper) if scraper is not None else None
        worker.close(10)
        stats = worker.stats()

    plain_us = statistics.fmean(plain_times) * 1e6
    wrapped_us = statistics.fmean(wrapped_times) * 1e6
    print(
        f"mode: {mode}; fake LM latency {args.latency_ms} ms; {args.calls} calls per variant "
        f"in blocks of {args.block} after {args.warmup} warm-up calls each ({warmup_s:.0f} s); "
        f"event batching {settings.linger_ms} ms; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"plain   mean {plain_us:8.1f} us  p50 {percentile(plain_times, 0.5) * 1e6:8.1f} us  "
        f"p99 {percentile(plain_times, 0.99) * 1e6:8.1f} us"
    )
    print(
        f"wrapped mean {wrapped_us:8.1f} us  p50 {percentile(wrapped_times, 0.5) * 1e6:8.1f} us  "
        f"p99 {percentile(wrapped_times, 0.99) * 1e6:8.1f} us"
    )
    print(
        "events: "
        + " ".join(
            f"{k}={stats.get(k)}"
            for k in ("enqueued", "sent", "spooled", "replayed", "overflow_dropped")
        )
    )
    if scraped is None:
        print("SDK metrics: off")
    else:
        print(
            f"SDK metrics: on, /metrics scraped every {args.scrape_every:g} s by another "
            f"process: {scraped[0]} scrapes answered, {scraped[1]} worker samples in the last"
        )
        if scraped[0] == 0 or scraped[1] == 0:
            raise SystemExit("the worker's /metrics did not answer: metrics were not on")
    print(f"worker IO thread: {io_cpu_us:.0f} us CPU per event (encode, send; off the call path)")
    print(
        "ratio if the IO thread's CPU were all on the call path (pessimistic: it mostly runs "
        f"while calls wait for the LM): {(wrapped_us + io_cpu_us) / plain_us:.3f}"
    )
    p50_ratio = percentile(wrapped_times, 0.5) / percentile(plain_times, 0.5)
    print(f"median-based ratio {p50_ratio:.3f} (less sensitive to load spikes on a shared machine)")
    p99_wrapped_us = percentile(wrapped_times, 0.99) * 1e6
    print(
        f"worker_overhead plain_us={plain_us:.1f} wrapped_us={wrapped_us:.1f} "
        f"ratio={wrapped_us / plain_us:.3f} p99_wrapped_us={p99_wrapped_us:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
