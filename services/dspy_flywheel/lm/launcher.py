"""Find the shared LM server, or start it on demand (the first user starts it).

``ensure_server`` takes a file lock so that processes arriving together start one server, not
several; the server process is detached (its own session) and outlives the process that
started it until it has been idle for ``idle_s``.
"""

from __future__ import annotations

import fcntl
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from dspy_flywheel.lm.embedded import EmbeddedConfig
from dspy_flywheel.lm.errors import LMSetupError
from dspy_flywheel.lm.server import ServerConfig, ServerInfo
from dspy_flywheel.lm.settings import LMSettings

START_TIMEOUT_S = 300.0  # the 1.5B model loads in ~5 s on free cores, far slower under load


def embedded_config(settings: LMSettings) -> EmbeddedConfig:
    """The model ``settings`` name; raises ``ModelNotFoundError`` naming the fix."""
    return EmbeddedConfig(
        model_path=str(settings.model_path()),
        n_ctx=settings.ctx,
        threads=settings.threads,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
    )


def server_config(settings: LMSettings | None = None) -> ServerConfig:
    """The shared server that ``settings`` (default: the ``FLYWHEEL_LM_*`` env) asks for."""
    settings = settings or LMSettings()
    return ServerConfig(
        model=embedded_config(settings),
        slots=settings.slots,
        run_dir=str(settings.run_dir),
        idle_s=settings.server_idle_s,
    )


def _alive(pid: int) -> bool:
    try:  # a server this process started and that has exited is reaped, not left a zombie
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def healthy(info: ServerInfo, timeout_s: float = 5.0) -> bool:
    """The server's process lives and answers ``/health`` with its model loaded."""
    if not _alive(info.pid):
        return False
    try:
        response = httpx.get(f"{info.address}/health", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def running_server(config: ServerConfig) -> ServerInfo | None:
    info = ServerInfo.read(config.state_path)
    return info if info is not None and healthy(info) else None


def ensure_server(config: ServerConfig, timeout_s: float = START_TIMEOUT_S) -> ServerInfo:
    """The running server for ``config.model``, started (once, under a lock) if there is none."""
    info = running_server(config)
    if info is not None:
        return info
    config.lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(config.lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = running_server(config)
        if info is None:
            info = _start(config, timeout_s)
        return info


def shared_server(settings: LMSettings | None = None) -> ServerInfo | None:
    """The machine's shared server for the ``FLYWHEEL_LM_*`` settings, started if needed; None
    when they select no shared server (a hosted model, ``FLYWHEEL_LM_SERVER=inprocess``)."""
    settings = settings or LMSettings()
    return ensure_server(server_config(settings)) if settings.is_shared else None


def _start(config: ServerConfig, timeout_s: float) -> ServerInfo:
    config.state_path.unlink(missing_ok=True)
    env = {
        **os.environ,
        "FLYWHEEL_LM_MODEL": config.model.model_path,
        "FLYWHEEL_LM_CTX": str(config.model.n_ctx),
        "FLYWHEEL_LM_THREADS": str(config.model.threads),
        "FLYWHEEL_LM_MAX_TOKENS": str(config.model.max_tokens),
        "FLYWHEEL_LM_TEMPERATURE": str(config.model.temperature),
        "FLYWHEEL_LM_SLOTS": str(config.slots),
        "FLYWHEEL_LM_SERVER_IDLE_S": str(config.idle_s),
        "FLYWHEEL_LM_SERVER_DIR": config.run_dir,
        "PYTHONPATH": os.pathsep.join(
            p for p in (_package_root(), os.environ.get("PYTHONPATH")) if p
        ),
    }
    with open(config.log_path, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "dspy_flywheel.lm", "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped with the process group that started it
            preexec_fn=lift_memory_limit,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise LMSetupError(
                f"the LM server exited with code {child.returncode} while starting; "
                f"see {config.log_path}"
            )
        info = ServerInfo.read(config.state_path)
        if info is not None and info.pid == child.pid and healthy(info):
            return info
        time.sleep(0.2)
    child.terminate()
    raise LMSetupError(
        f"the LM server did not start within {timeout_s:.0f}s; see {config.log_path}"
    )


def lift_memory_limit() -> None:
    """The server is the machine's, not the starting job's: drop an inherited RLIMIT_AS (the
    optimizer caps its job's address space) as far as this user may."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of ``pid`` in MB (0 when it cannot be read); ``field="VmHWM"``: its peak
    so far, which sampling VmRSS can miss."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def status_line(config: ServerConfig) -> str | None:
    info = running_server(config)
    if info is None:
        return None
    return (
        f"LM server {Path(info.model_path).stem} at {info.address} pid={info.pid} "
        f"slots={info.slots} ctx={info.n_ctx} threads={info.threads} rss_mb={rss_mb(info.pid):.0f}"
    )


def stop_server(config: ServerConfig, timeout_s: float = 30.0) -> bool:
    """SIGTERM the running server and wait for it to go; False when none was running."""
    return _stop(config.state_path, timeout_s)


def stop_all(run_dir: Path, timeout_s: float = 30.0) -> int:
    """Stop the server of every model with a state file in ``run_dir``; returns how many were
    running and stopped."""
    return sum(_stop(path, timeout_s) for path in sorted(run_dir.glob("lmserver-*.json")))


def _stop(state_path: Path, timeout_s: float) -> bool:
    info = ServerInfo.read(state_path)
    if info is None or not _alive(info.pid):
        return False
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(info.pid)
