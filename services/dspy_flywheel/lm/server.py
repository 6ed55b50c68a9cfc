"""The shared local LM server: one llama.cpp model per machine, OpenAI-compatible, loopback only.

    python -m dspy_flywheel.lm start     # start it unless running; prints its address
    python -m dspy_flywheel.lm status    # address, pid, slots, RSS (exit 1 when down)
    python -m dspy_flywheel.lm stop
    python -m dspy_flywheel.lm serve     # run in the foreground (what ``start`` spawns)

The first process that needs the embedded model starts it (``launcher.ensure_server``); later
ones find it through a state file in ``$FLYWHEEL_STATE/lm/`` (address, pid, API key; mode 0600).
It listens on 127.0.0.1 with a random API key and exits after ``FLYWHEEL_LM_SERVER_IDLE_S``
seconds without a request (default 900; 0 = never). Settings are the ``FLYWHEEL_LM_*`` ones
(``dspy_flywheel.lm.settings``); ``FLYWHEEL_LM_SLOTS`` sets the parallel sequences.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dspy_flywheel.lm.embedded import EmbeddedConfig, server_params

logger = logging.getLogger(__name__)

_METRIC = re.compile(r"^llamacpp:(\w+)\s+(\S+)", re.M)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One shared server: the model config, its slots, where its state lives, idle exit."""

    model: EmbeddedConfig
    slots: int
    run_dir: str
    idle_s: float = 900.0

    @property
    def state_path(self) -> Path:
        return Path(self.run_dir) / f"lmserver-{self.model.model_name}.json"

    @property
    def log_path(self) -> Path:
        return self.state_path.with_suffix(".log")

    @property
    def lock_path(self) -> Path:
        return self.state_path.with_suffix(".lock")


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a client reads from the state file to reach a running server."""

    address: str
    pid: int
    api_key: str
    model_path: str
    slots: int
    n_ctx: int
    threads: int

    @classmethod
    def read(cls, path: Path) -> ServerInfo | None:
        try:
            data = json.loads(path.read_text())
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            return None


def write_state(path: Path, info: ServerInfo) -> None:
    """Atomically, readable by this user only (the file holds the API key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(info), out)
    os.replace(temp, path)


def activity(metrics: str) -> tuple[float, float] | None:
    """(requests in flight or waiting, tokens done so far) from llama.cpp's Prometheus text;
    None when the text has neither (then the server never counts as idle)."""
    values = {name: float(value) for name, value in _METRIC.findall(metrics)}
    if "requests_processing" not in values or "prompt_tokens_total" not in values:
        return None
    busy = values["requests_processing"] + values.get("requests_deferred", 0.0)
    return busy, values["prompt_tokens_total"] + values.get("tokens_predicted_total", 0.0)


def serve(config: ServerConfig) -> None:
    """Load the model, publish the state file, and run until idle for ``idle_s`` or SIGTERM."""
    import xllamacpp

    params = server_params(config.model, slots=config.slots)
    params.api_keys = [secrets.token_hex(16)]
    params.endpoint_metrics = True
    started = time.perf_counter()
    server = xllamacpp.Server(params)
    info = ServerInfo(
        address=server.listening_address,
        pid=os.getpid(),
        api_key=params.api_keys[0],
        model_path=config.model.model_path,
        slots=config.slots,
        n_ctx=config.model.n_ctx,
        threads=config.model.threads,
    )
    write_state(config.state_path, info)
    logger.info(
        "LM server %s on %s: %d slots, ctx %d, %d threads, loaded in %.1fs",
        config.model.model_name,
        info.address,
        config.slots,
        config.model.n_ctx,
        config.model.threads,
        time.perf_counter() - started,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    last, idle_since = activity(server.handle_metrics()), time.monotonic()
    poll_s = min(5.0, config.idle_s / 2) if config.idle_s else 5.0
    while not stop.wait(poll_s):
        now = activity(server.handle_metrics())
        if now is None or now != last or now[0] > 0:
            last, idle_since = now, time.monotonic()
        elif config.idle_s and time.monotonic() - idle_since >= config.idle_s:
            logger.info("LM server idle for %.0fs; exiting", config.idle_s)
            break
    if ServerInfo.read(config.state_path) == info:
        config.state_path.unlink(missing_ok=True)
    logging.shutdown()
    os._exit(0)  # llama.cpp's HTTP threads do not join on interpreter exit
