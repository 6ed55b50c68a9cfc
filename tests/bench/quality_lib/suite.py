"""Task definitions for ``quality.py --suite``: one ``<name>.json`` per task.

    {"name": "telecom_routing", "shape": "routing", "data": "telecom_routing.jsonl",
     "signature": "ticket: str -> queue: Literal['billing', 'technical']",
     "instructions": "...", "metric": "exact",
     "split": {"seed": 0, "train": 98, "dev": 12, "test": 50}}

``data`` is relative to the definition's folder. The split is part of the task (fixed), not of
the command line.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .options import Options, OptionsError

_REQUIRED = ("name", "data", "signature", "metric", "split")


def definition_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise OptionsError(f"--suite: {text} is neither a task definition nor a folder")
    if not files:
        raise OptionsError(f"--suite {' '.join(paths)}: no task definitions (*.json) found")
    return files


def _read(path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OptionsError(f"{path}: cannot read the task definition: {exc}") from exc
    if not isinstance(spec, dict):
        raise OptionsError(f"{path}: a task definition is a JSON object")
    missing = [key for key in _REQUIRED if key not in spec]
    split = spec.get("split")
    if missing or not isinstance(split, dict) or not {"seed", "train", "dev"} <= set(split):
        raise OptionsError(
            f"{path}: needs {', '.join(_REQUIRED)} and split.seed/train/dev (missing: "
            f"{', '.join(missing) or 'split fields'})"
        )
    return spec


def task_options(path: Path, base: Options) -> Options:
    """The run's options for the task defined in ``path`` (its data, signature, split)."""
    spec = _read(path)
    split = spec["split"]
    return dataclasses.replace(
        base,
        task=None,
        dataset=str(path.parent / spec["data"]),
        signature=spec["signature"],
        instructions=spec.get("instructions"),
        metric=spec["metric"],
        seed=int(split["seed"]),
        train=int(split["train"]),
        dev=int(split["dev"]),
        test=int(split["test"]) if split.get("test") is not None else None,
        name=spec["name"],
        suite=(),
    )


def suite_options(base: Options) -> list[Options]:
    tasks = [task_options(path, base) for path in definition_files(base.suite)]
    if base.only:
        unknown = sorted(set(base.only) - {t.task_label for t in tasks})
        if unknown:
            raise OptionsError(f"--only names unknown task(s): {', '.join(unknown)}")
        tasks = [t for t in tasks if t.task_label in base.only]
    return tasks
