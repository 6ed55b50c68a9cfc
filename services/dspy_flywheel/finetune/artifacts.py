"""LoRA adapters as content-addressed artifacts: ``<store>/<sha256>.gguf`` plus what they are.

An ``AdapterArtifact`` is what the program version stores and ``program-updated`` names: the
adapter's sha256 and size, the base model's name and sha256, the training parameters and the
loss curve. The bytes live in the artifact store, a directory shared by the optimizer and the
workers of one host (``FLYWHEEL_ARTIFACTS_DIR``, default ``$FLYWHEEL_HOME/artifacts``; a shared
mount for several hosts). ``fetch`` hands out a path only after re-hashing the file, so a
truncated or altered adapter never reaches llama.cpp.

An LM serving an adapter is named ``<base>@lora-<sha256>``: the name alone says which file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dspy_flywheel.finetune.errors import CorruptAdapter

MAX_ADAPTER_BYTES = 100 * 1024 * 1024  # the spec's ceiling per optimized worker configuration
_GGUF_MAGIC = b"GGUF"
_SUFFIX = re.compile(r"@lora-(?P<sha>[0-9a-f]{64})$")


def flywheel_home() -> Path:
    return Path(os.environ.get("FLYWHEEL_HOME") or Path.home() / ".cache" / "dspy-flywheel")


def artifacts_dir() -> Path:
    explicit = os.environ.get("FLYWHEEL_ARTIFACTS_DIR")
    if explicit:
        return Path(explicit)
    return flywheel_home() / "artifacts"


def adapter_model(base: str, sha256: str) -> str:
    """The LM model name that serves adapter ``sha256`` on ``base``."""
    return f"{_SUFFIX.sub('', base)}@lora-{sha256}"


def adapter_sha(model: str) -> str | None:
    """The adapter's sha256 named by an LM model name, or None for a plain model."""
    match = _SUFFIX.search(model)
    return match["sha"] if match else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_base_hashes: dict[tuple[str, int, float], str] = {}
_base_lock = threading.Lock()


def base_model_sha256(path: Path) -> str:
    """The base GGUF's sha256: from ``ops/model.sh``'s stamp when it vouches for the file as it
    is now (sha, size, mtime), else hashed once per process."""
    stat = path.stat()
    stamp = path.with_name(path.name + ".sha256")
    if stamp.is_file():
        parts = stamp.read_text().split()
        if (
            len(parts) == 3
            and parts[1] == str(stat.st_size)
            and parts[2] == str(int(stat.st_mtime))
        ):
            return parts[0]
    key = (str(path), stat.st_size, stat.st_mtime)
    with _base_lock:
        if key not in _base_hashes:
            _base_hashes[key] = sha256_of(path)
        return _base_hashes[key]


@dataclass(frozen=True)
class AdapterArtifact:
    sha256: str
    size: int
    base_model: str
    base_sha256: str
    architecture: str
    params: dict[str, Any] = field(default_factory=dict)
    loss_curve: list[float] = field(default_factory=list)
    examples: int = 0
    train_s: float = 0.0
    peak_rss_mb: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> AdapterArtifact:
        """Parsed and checked; raises CorruptAdapter naming what is wrong."""
        if not isinstance(data, dict):
            raise CorruptAdapter(f"adapter description is not an object: {data!r:.80}")
        try:
            artifact = cls(**data)
        except TypeError as exc:
            raise CorruptAdapter(f"adapter description: {exc}") from exc
        if not re.fullmatch(r"[0-9a-f]{64}", str(artifact.sha256)):
            raise CorruptAdapter(f"adapter sha256 {artifact.sha256!r} is not a sha256")
        if not isinstance(artifact.size, int) or not 0 < artifact.size <= MAX_ADAPTER_BYTES:
            raise CorruptAdapter(f"adapter size {artifact.size!r} is not in 1..{MAX_ADAPTER_BYTES}")
        return artifact

    @classmethod
    def from_json(cls, text: str) -> AdapterArtifact:
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise CorruptAdapter(f"adapter description is not JSON: {exc}") from exc
        return cls.from_dict(data)


def store(source: Path, artifact: AdapterArtifact, directory: Path | None = None) -> Path:
    """Put ``source`` in the store under its hash (atomic rename) with its description."""
    directory = directory or artifacts_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{artifact.sha256}.gguf"
    if not target.is_file() or target.stat().st_size != artifact.size:
        partial = target.with_suffix(f".partial-{os.getpid()}")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    (directory / f"{artifact.sha256}.json").write_text(artifact.to_json())
    return target


def describe(sha256: str, directory: Path | None = None) -> AdapterArtifact:
    """The stored description of adapter ``sha256``."""
    path = (directory or artifacts_dir()) / f"{sha256}.json"
    try:
        return AdapterArtifact.from_json(path.read_text())
    except OSError as exc:
        raise CorruptAdapter(f"adapter {sha256[:12]} has no description in {path.parent}") from exc


def fetch(artifact: AdapterArtifact, directory: Path | None = None) -> Path:
    """The verified path of ``artifact``'s file; raises CorruptAdapter when it is missing,
    truncated, altered or not a GGUF."""
    path = (directory or artifacts_dir()) / f"{artifact.sha256}.gguf"
    if not path.is_file():
        raise CorruptAdapter(f"adapter {artifact.sha256[:12]} is not in the store {path.parent}")
    size = path.stat().st_size
    if size != artifact.size:
        raise CorruptAdapter(
            f"adapter {artifact.sha256[:12]} is {size} bytes, expected {artifact.size} (truncated?)"
        )
    with path.open("rb") as fh:
        if fh.read(4) != _GGUF_MAGIC:
            raise CorruptAdapter(f"adapter {artifact.sha256[:12]} is not a GGUF file")
    actual = sha256_of(path)
    if actual != artifact.sha256:
        raise CorruptAdapter(
            f"adapter {artifact.sha256[:12]} hashes to {actual[:12]}: the file was altered"
        )
    return path
