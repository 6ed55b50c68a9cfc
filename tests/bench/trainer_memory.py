"""Benchmark: the LoRA trainer's peak RSS and time on the CPU, through the real provider.

    python tests/bench/trainer_memory.py [--model smollm2] [--examples 13] [--epochs 3]
                                         [--batch-size 4] [--fresh]

Training data: the first ``--examples`` of the built-in classification task, in the chat format
DSPy's ``BootstrapFinetune`` hands the provider (``ChatAdapter.format_finetune_data``, no demos,
the gold label as the answer). ``EmbeddedProvider.finetune`` runs the trainer child and watches
its peak RSS (VmHWM, what the ``memory_mb`` budget checks). ``--fresh``: an empty
``$FLYWHEEL_HOME`` so the run dequantizes the GGUF first, as the first job on a machine does.
Last line: ``trainer_memory model=… examples=… epochs=… fresh=… peak_rss_mb=… train_s=…
wall_s=… loss_first=… loss_last=… adapter_mb=…``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import repo_root  # noqa: F401  # first: the repository root on sys.path


def chat_data(n: int) -> list[dict[str, Any]]:
    import dspy
    from tests.fixtures.tasks import get_task

    task = get_task("classification")
    signature = dspy.Signature(task.signature, task.instructions)
    adapter = dspy.ChatAdapter()
    return [
        adapter.format_finetune_data(
            signature=signature,
            demos=[],
            inputs=example.inputs().toDict(),
            outputs=example.labels().toDict(),
        )
        for example in list(task.examples)[:n]
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--examples", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--fresh", action="store_true", help="dequantize the GGUF first")
    args = parser.parse_args()

    from dspy_flywheel.lm import LMSettings

    base = str(LMSettings(model=args.model).model_path())
    with tempfile.TemporaryDirectory(prefix="trainer-memory-") as tmp:
        os.environ["FLYWHEEL_ARTIFACTS_DIR"] = os.path.join(tmp, "artifacts")
        if args.fresh:
            os.environ["FLYWHEEL_HOME"] = tmp
        from dspy_flywheel.finetune.provider import EmbeddedProvider, EmbeddedTrainingJob

        data = chat_data(args.examples)
        kwargs = {"epochs": args.epochs, "batch_size": args.batch_size}
        job = EmbeddedTrainingJob(model=base, train_data=data, train_kwargs=kwargs)
        started = time.perf_counter()
        EmbeddedProvider(base).finetune(job, "embedded/" + args.model, data, "chat", kwargs)
        wall = time.perf_counter() - started
    artifact = job.artifact
    assert artifact is not None
    curve = artifact.loss_curve
    print(f"loss curve: {curve}")
    print(
        f"trainer_memory model={args.model} examples={artifact.examples} epochs={args.epochs} "
        f"fresh={int(args.fresh)} peak_rss_mb={artifact.peak_rss_mb:.0f} "
        f"train_s={artifact.train_s:.1f} wall_s={wall:.1f} loss_first={curve[0]} "
        f"loss_last={curve[-1]} adapter_mb={artifact.size / 1e6:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
