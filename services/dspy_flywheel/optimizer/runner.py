"""Parent side of the compile child: start it, read its reports, enforce wall time and cancel.

``run_child`` never raises for a failed compile; it returns a ``ChildOutcome`` whose ``kind``
names what happened: ``ok``, ``error``, ``config``, ``budget``, ``memory``, ``timeout``,
``cancelled``, ``crashed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dspy_flywheel.optimizer.spec import (
    EXIT_BUDGET,
    EXIT_MEMORY,
    EXIT_ORPHANED,
    CompileResult,
    JobSpec,
)

log = logging.getLogger(__name__)

OnMessage = Callable[[dict[str, Any]], Awaitable[None]]
_STDERR_TAIL = 2000


@dataclass
class ChildOutcome:
    kind: str
    message: str
    wall_s: float
    result: CompileResult | None = None
    returncode: int | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def last(self, message_type: str) -> dict[str, Any] | None:
        return next((m for m in reversed(self.messages) if m.get("type") == message_type), None)


async def _read_reports(
    stream: asyncio.StreamReader, messages: list[dict[str, Any]], on_message: OnMessage
) -> None:
    async for raw in stream:
        line = raw.decode(errors="replace").strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            log.debug("child wrote a non-JSON line: %s", line[:200])
            continue
        messages.append(message)
        try:
            await on_message(message)
        except Exception:  # a reporting hiccup must not lose the job
            log.exception("progress handler failed")


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - _STDERR_TAIL))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _classify(
    returncode: int, messages: list[dict[str, Any]], stderr: str, spec: JobSpec
) -> tuple[str, str]:
    error = next((m for m in reversed(messages) if m.get("type") == "error"), None)
    if error is not None:
        return str(error.get("kind", "error")), str(error.get("message", "compile failed"))
    if returncode == EXIT_BUDGET:
        return "budget", "LM budget exhausted"
    if returncode == EXIT_MEMORY or "MemoryError" in stderr:
        return "memory", f"memory limit of {spec.memory_mb} MB exceeded"
    if returncode == EXIT_ORPHANED:
        return "crashed", "compile child lost its parent"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return "crashed", f"compile child killed by signal {name}"
    last_line = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    return "crashed", f"compile child exited with code {returncode}: {last_line}"


async def run_child(
    spec: JobSpec,
    workdir: Path,
    *,
    wall_time_s: float | None,
    on_message: OnMessage,
    cancel: asyncio.Event,
    env: Mapping[str, str] | None = None,
) -> ChildOutcome:
    """Run ``python -m dspy_flywheel.optimizer.job`` for ``spec`` and wait for its outcome."""
    spec_path = workdir / "spec.json"
    stderr_path = workdir / "stderr.log"
    spec.write(spec_path)
    child_env = {**os.environ, **(env or {})}
    started = time.monotonic()
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dspy_flywheel.optimizer.job",
            "--spec",
            str(spec_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=child_env,
            start_new_session=True,
        )
    log.info("job %s: compile child pid %s started", spec.job_id, proc.pid)
    assert proc.stdout is not None
    messages: list[dict[str, Any]] = []
    reader = asyncio.create_task(_read_reports(proc.stdout, messages, on_message))
    exited = asyncio.create_task(proc.wait())
    cancelled = asyncio.create_task(cancel.wait())
    stopped_by: str | None = None
    try:
        done, _ = await asyncio.wait(
            {exited, cancelled}, timeout=wall_time_s, return_when=asyncio.FIRST_COMPLETED
        )
        if exited not in done:
            stopped_by = "cancelled" if cancelled in done else "timeout"
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await exited
        await reader
    finally:
        cancelled.cancel()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        if not reader.done():
            reader.cancel()
    wall_s = time.monotonic() - started
    stderr_tail = _tail(stderr_path)
    returncode = proc.returncode
    assert returncode is not None
    if stopped_by == "timeout":
        kind, message = "timeout", f"wall-time limit of {wall_time_s:g} s exceeded"
    elif stopped_by == "cancelled":
        kind, message = "cancelled", "cancelled on request"
    elif returncode == 0 and os.path.exists(spec.result_path):  # noqa: ASYNC240  # tiny, local
        result = CompileResult.read(Path(spec.result_path))
        return ChildOutcome("ok", "compiled", wall_s, result, returncode, messages, stderr_tail)
    else:
        kind, message = _classify(returncode, messages, stderr_tail, spec)
    log.info("job %s: compile child ended: %s (%s)", spec.job_id, kind, message)
    return ChildOutcome(kind, message, wall_s, None, returncode, messages, stderr_tail)
