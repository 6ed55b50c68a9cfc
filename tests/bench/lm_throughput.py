"""LM throughput: completed calls/s through the shared LM server vs the in-process engine.

    python tests/bench/lm_throughput.py [--model qwen1.5b] [--calls 8] [--levels 1,2,4]
                                        [--slots 4] [--threads N] [--demos 4]

Prompts are the built-in classification task's as DSPy's ChatAdapter writes them: the same
instruction and ``--demos`` demos (one trial of an optimizer) before each test ticket. At each
concurrency level both engines get the same ``--calls`` prompts (fresh tickets per level, so no
level finds its whole prompts cached by an earlier one), run by that many threads; levels
alternate between engines. The server is a private one (own state dir, stopped at the end), so
other users of the machine's shared server neither slow it nor are slowed. One warm-up call per
engine first (model pages, the shared prefix). Last line:
``lm_throughput serial_cps=… best_cps=… ratio=… best_concurrency=…`` where serial is today's
in-process engine at concurrency 1 and best the server's best level.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import repo_root  # noqa: F401  (puts the repository on sys.path)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen1.5b")
    parser.add_argument("--calls", type=int, default=8, help="calls per engine and level")
    parser.add_argument("--levels", default="1,2,4", help="concurrency levels")
    parser.add_argument("--slots", type=int, default=4, help="server slots")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp CPU threads")
    parser.add_argument("--demos", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    return parser.parse_args(argv)


def build_requests(demos: int, count: int, max_tokens: int) -> list[Any]:
    """``count`` classification requests sharing the instruction and the first ``demos`` demos."""
    import dspy
    from dspy.lm15 import Config, Message, Request, TextPart
    from tests.fixtures.tasks import get_task

    task = get_task("classification")
    split = task.split(0, train=98, dev=20)
    signature = task.dspy_signature()
    shots = [example for example in split.train[:demos]]
    tickets = [*split.test, *split.dev][:count]
    if len(tickets) < count:
        raise SystemExit(f"only {len(tickets)} distinct tickets; ask for fewer calls")
    requests = []
    for ticket in tickets:
        chat = dspy.ChatAdapter().format(signature, demos=shots, inputs=ticket.inputs().toDict())
        system = "\n".join(m["content"] for m in chat if m["role"] == "system") or None
        messages = tuple(
            Message.user([TextPart(m["content"])])
            if m["role"] == "user"
            else Message.assistant([TextPart(m["content"])])
            for m in chat
            if m["role"] != "system"
        )
        config = Config(max_tokens=max_tokens, temperature=0.0)
        requests.append(Request(model="bench", messages=messages, system=system, config=config))
    return requests


def run_level(engine: Any, requests: list[Any], concurrency: int) -> tuple[float, int, int]:
    """(calls/s, prompt tokens, completion tokens) for ``requests`` on ``concurrency`` threads."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        responses = list(pool.map(engine.complete, requests))
    elapsed = time.perf_counter() - started
    prompt = sum(r.usage.input_tokens for r in responses)
    completion = sum(r.usage.output_tokens for r in responses)
    return len(requests) / elapsed, prompt, completion


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    from dspy_flywheel.lm import LMSettings
    from dspy_flywheel.lm.embedded import load_engine
    from dspy_flywheel.lm.launcher import embedded_config, rss_mb, server_config, stop_server
    from dspy_flywheel.lm.served import connect

    levels = [int(level) for level in args.levels.split(",")]
    home = tempfile.mkdtemp(prefix="lm-throughput-")
    overrides: dict[str, Any] = {
        "model": args.model,
        "slots": args.slots,
        "server_idle_s": 0,
        "server_dir": home,
    }
    if args.threads is not None:
        overrides["threads"] = args.threads
    settings = LMSettings(**overrides)
    per_level = {level: args.calls for level in levels}
    requests = build_requests(args.demos, 1 + sum(per_level.values()), args.max_tokens)
    warmup, rest = requests[0], requests[1:]
    batches = {}
    for level in levels:
        batches[level], rest = rest[: per_level[level]], rest[per_level[level] :]

    config = server_config(settings)
    started = time.perf_counter()
    served = connect(config)
    print(
        f"server: {served.address} slots={args.slots} started in "
        f"{time.perf_counter() - started:.1f}s"
    )
    inprocess = load_engine(embedded_config(settings))
    try:
        for engine in (inprocess, served):
            engine.complete(warmup)
        results: dict[tuple[str, int], float] = {}
        print(
            f"model={args.model} threads={settings.threads} demos={args.demos} "
            f"calls/level={args.calls} load={os.getloadavg()[0]:.2f}"
        )
        print(
            f"{'engine':<10} {'conc':>4} {'calls/s':>8} {'s/call':>7} {'prompt tok':>10} "
            f"{'compl tok':>9} {'load':>5}"
        )
        for level in levels:
            for name, engine in (("inprocess", inprocess), ("server", served)):
                cps, prompt, completion = run_level(engine, batches[level], level)
                results[(name, level)] = cps
                print(
                    f"{name:<10} {level:>4} {cps:>8.3f} {1 / cps:>7.2f} {prompt:>10} "
                    f"{completion:>9} {os.getloadavg()[0]:>5.2f}",
                    flush=True,
                )
        print(
            f"server rss_mb={rss_mb(served.info.pid):.0f} (bench process, with its own "
            f"in-process copy, {rss_mb(os.getpid()):.0f})"
        )
    finally:
        stop_server(config)
        shutil.rmtree(home, ignore_errors=True)
    serial = results[("inprocess", 1)]
    best_level = max(levels, key=lambda level: results[("server", level)])
    best = results[("server", best_level)]
    print(
        f"lm_throughput serial_cps={serial:.3f} best_cps={best:.3f} ratio={best / serial:.2f} "
        f"best_concurrency={best_level}"
    )


if __name__ == "__main__":
    main()
