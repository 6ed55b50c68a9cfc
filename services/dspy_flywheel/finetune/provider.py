"""DSPy's fine-tuning provider for the embedded LM: LoRA on the CPU, served by llama.cpp.

``BootstrapFinetune`` runs unchanged: it hands ``finetune`` chat-format data; a trainer child
(``finetune.train``) trains a LoRA adapter on the base GGUF's dequantized weights and writes a
llama.cpp adapter GGUF; it is stored by hash (``finetune.artifacts``) and the returned model
name ``<base>@lora-<sha256>`` makes the embedded engine serve it (``lm.embedded``).

The parent watches the child: wall time and resident memory over their budgets, or ``cancel``,
kill it and raise; each optimizer step's loss goes to ``on_progress`` listeners (the optimizer's
job status events). Nothing of the serving program changes until a new LM name is returned.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dspy.clients.provider import Provider, TrainingJob
from dspy.clients.utils_finetune import TrainDataFormat

from dspy_flywheel.finetune.artifacts import (
    AdapterArtifact,
    adapter_model,
    base_model_sha256,
    flywheel_home,
    sha256_of,
    store,
)
from dspy_flywheel.finetune.errors import (
    TrainingBudgetExceeded,
    TrainingCancelled,
    TrainingFailed,
    TrainingStackMissing,
)
from dspy_flywheel.finetune.params import TrainParams
from dspy_flywheel.lm.launcher import lift_memory_limit, rss_mb

log = logging.getLogger(__name__)

STACK = ("torch", "transformers", "peft", "gguf")
ProgressListener = Callable[[dict[str, Any]], None]
_listeners: list[ProgressListener] = []
_POLL_S = 0.25


def add_progress_listener(listener: ProgressListener) -> None:
    """Call ``listener`` with every trainer report (``loaded``, ``step``, ``done``)."""
    _listeners.append(listener)


def remove_progress_listener(listener: ProgressListener) -> None:
    with contextlib.suppress(ValueError):
        _listeners.remove(listener)


def check_training_stack() -> None:
    """Raise TrainingStackMissing naming the install command unless the extra is installed."""
    missing = [name for name in STACK if importlib.util.find_spec(name) is None]
    if missing:
        raise TrainingStackMissing(
            f"BootstrapFinetune needs the training stack; missing: {', '.join(missing)}. "
            "Install it with: pip install 'dspy-flywheel[finetune]' (see README, Fine-tuning)"
        )


class EmbeddedTrainingJob(TrainingJob):  # type: ignore[misc]  # dspy is untyped
    """DSPy's training future, with the trainer's progress and a cancel that kills it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.process: subprocess.Popen[bytes] | None = None
        self.cancelled_by_user = threading.Event()
        self.last: dict[str, Any] = {}
        self.artifact: AdapterArtifact | None = None

    def cancel(self) -> bool:
        self.cancelled_by_user.set()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        return True

    def status(self) -> dict[str, Any]:
        return dict(self.last)


def train_cache(base: Path) -> Path:
    """Where the trainer keeps ``base`` dequantized (safetensors), by the base's sha256: beside
    the model in ``$FLYWHEEL_HOME``, a local cache even where the artifact store is shared."""
    return flywheel_home() / "train-cache" / base_model_sha256(base)[:16]


class EmbeddedProvider(Provider):  # type: ignore[misc]  # dspy is untyped
    """Fine-tunes the GGUF at ``base_gguf`` (the embedded engine's model)."""

    def __init__(self, base_gguf: str, *, python: str | None = None) -> None:
        super().__init__()
        self.finetunable = True
        self.TrainingJob = EmbeddedTrainingJob
        self.base_gguf = base_gguf
        self.python = python or sys.executable

    def ready(self) -> None:
        """Raise TrainingStackMissing now rather than after bootstrapping traces."""
        check_training_stack()

    def finetune(  # dspy declares it static; ours needs the base model's path
        self,
        job: EmbeddedTrainingJob,
        model: str,
        train_data: list[dict[str, Any]],
        train_data_format: TrainDataFormat | str | None,
        train_kwargs: dict[str, Any] | None = None,
    ) -> str:
        check_training_stack()
        params = TrainParams.from_kwargs(train_kwargs)
        if train_data_format not in (TrainDataFormat.CHAT, "chat"):
            raise TrainingFailed(
                f"the embedded provider trains on chat data, not {train_data_format}"
            )
        if not train_data:
            raise TrainingFailed(
                "no training data: no bootstrapped trace passed the metric (a teacher with demos "
                "helps; see README, Fine-tuning)"
            )
        with tempfile.TemporaryDirectory(prefix="flywheel-lora-") as tmp:
            work = Path(tmp)
            done = self._train(job, work, train_data, params)
            adapter = Path(done["adapter"])
            base = Path(self.base_gguf)
            artifact = AdapterArtifact(
                sha256=sha256_of(adapter),
                size=adapter.stat().st_size,
                base_model=base.stem,
                base_sha256=base_model_sha256(base),
                architecture=str(done.get("architecture", "")),
                params=params.as_dict(),
                loss_curve=list(done.get("loss_curve", [])),
                examples=int(done.get("examples", 0)),
                train_s=float(done.get("train_s", 0.0)),
                peak_rss_mb=done.get("peak_rss_mb"),
            )
            store(adapter, artifact)
        job.artifact = artifact
        log.info("adapter %s stored (%d bytes)", artifact.sha256[:12], artifact.size)
        return adapter_model(model, artifact.sha256)

    def _train(
        self,
        job: EmbeddedTrainingJob,
        work: Path,
        train_data: list[dict[str, Any]],
        params: TrainParams,
    ) -> dict[str, Any]:
        data = work / "data.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in train_data))
        spec = work / "spec.json"
        spec.write_text(
            json.dumps(
                {
                    "base_gguf": self.base_gguf,
                    "data": str(data),
                    "out": str(work / "adapter.gguf"),
                    "cache": str(train_cache(Path(self.base_gguf))),
                    "params": params.as_dict(),
                }
            )
        )
        with (work / "stderr.log").open("wb") as stderr:
            process = subprocess.Popen(  # our own module, fixed arguments
                [self.python, "-m", "dspy_flywheel.finetune.train", "--spec", str(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                # Idle OpenMP threads sleep instead of spinning: on 2 shared cores, spinning
                # made a step 5x slower (5.1 vs 0.9 CPU s at load 13).
                env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
                # The compile child caps its address space; torch maps ~4.4 GB of it just to
                # load. The trainer is held to its own RSS budget (memory_mb) instead.
                preexec_fn=lift_memory_limit,
            )
        job.process = process
        reports: list[dict[str, Any]] = []
        reader = threading.Thread(target=self._read, args=(process, job, reports), daemon=True)
        reader.start()
        started, peak = time.monotonic(), 0.0
        try:
            while process.poll() is None:
                peak = max(peak, rss_mb(process.pid, "VmHWM"))
                where = _where(job.last)
                if job.cancelled_by_user.is_set():
                    raise TrainingCancelled(f"fine-tuning cancelled{where}")
                if peak > params.memory_mb:
                    raise TrainingBudgetExceeded(
                        f"trainer memory {peak:.0f} MB is over the budget of {params.memory_mb} "
                        f"MB{where}; nothing was published"
                    )
                if time.monotonic() - started > params.wall_time_s:
                    raise TrainingBudgetExceeded(
                        f"training took longer than the wall-time budget of "
                        f"{params.wall_time_s:g} s{where}; nothing was published"
                    )
                time.sleep(_POLL_S)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            reader.join(timeout=5)
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
        if job.cancelled_by_user.is_set():
            raise TrainingCancelled(f"fine-tuning cancelled{_where(job.last)}")
        return self._outcome(process.returncode, reports, work, peak)

    @staticmethod
    def _read(
        process: subprocess.Popen[bytes], job: EmbeddedTrainingJob, reports: list[dict[str, Any]]
    ) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            reports.append(message)
            job.last = message
            for listener in list(_listeners):
                try:
                    listener(message)
                except Exception:  # a reporting hiccup must not stop training
                    log.exception("progress listener failed")

    @staticmethod
    def _outcome(
        returncode: int, reports: list[dict[str, Any]], work: Path, peak: float
    ) -> dict[str, Any]:
        last = reports[-1] if reports else {}
        if returncode == 0 and last.get("type") == "done":
            return {**last, "peak_rss_mb": round(peak, 1)}
        if last.get("type") == "error":
            error = TrainingStackMissing if last.get("kind") == "stack" else TrainingFailed
            raise error(f"training failed: {last.get('message')}")
        tail = (work / "stderr.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise TrainingFailed(
            f"trainer exited with code {returncode}: {' | '.join(tail) or 'no output'}"
        )


def _where(last: dict[str, Any]) -> str:
    if last.get("type") == "step":
        return f" at step {last['step']}/{last['steps']} (loss {last['loss']})"
    return " while loading the base model" if not last else ""
