"""Which LM every service and the SDK use, from one setting.

    FLYWHEEL_LM=embedded                 (default) llama.cpp on this machine, offline
        FLYWHEEL_LM_MODEL=qwen1.5b       qwen1.5b (default) | smollm2 | /path/to/model.gguf
        FLYWHEEL_LM_THREADS=2            CPU threads (default: min(4, cores))
        FLYWHEEL_LM_CTX=8192             context window in tokens (shared by the slots)
        FLYWHEEL_LM_SERVER=shared        shared (default): one local server per machine and
                                         model, started by its first user | inprocess
        FLYWHEEL_LM_SLOTS=4              calls the shared server runs at once
        FLYWHEEL_LM_SERVER_IDLE_S=900    the shared server exits after this long unused (0: never)
        FLYWHEEL_LM_SERVER_DIR=          its state file and log (default $FLYWHEEL_STATE/lm,
                                         ops/lib.sh's runtime state: $FLYWHEEL_HOME/run)
    FLYWHEEL_LM=openai/gpt-4o-mini       any DSPy model string (ollama_chat/llama3, ...)
        FLYWHEEL_LM_API_BASE=http://localhost:11434
        FLYWHEEL_LM_API_KEY=...
    Both: FLYWHEEL_LM_MAX_TOKENS=512, FLYWHEEL_LM_TEMPERATURE=0, FLYWHEEL_LM_CACHE=false
    (DSPy's response cache), FLYWHEEL_LM_NUM_RETRIES=3.

Embedded weights live in $FLYWHEEL_HOME/model (default ~/.cache/dspy-flywheel), put there and
verified by ``ops/model.sh fetch``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dspy_flywheel.lm.errors import ModelNotFoundError, UnknownModelError

EMBEDDED = "embedded"
SHARED: Final = "shared"
INPROCESS: Final = "inprocess"


@dataclass(frozen=True, slots=True)
class KnownModel:
    file_name: str
    size: int
    fetch_command: str


KNOWN_MODELS: dict[str, KnownModel] = {
    "qwen1.5b": KnownModel(
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1_117_320_768, "ops/model.sh fetch"
    ),
    "smollm2": KnownModel(
        "smollm2-135m-instruct-q4_1.gguf", 98_362_432, "ops/model.sh fetch --small"
    ),
}


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _default_home() -> Path:
    return Path.home() / ".cache" / "dspy-flywheel"


class LMSettings(BaseSettings):
    # Aliases name env vars exactly; populate_by_name keeps LMSettings(backend=..., home=...).
    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_LM_", extra="ignore", populate_by_name=True
    )

    backend: str = Field(default=EMBEDDED, validation_alias="FLYWHEEL_LM")
    model: str = "qwen1.5b"
    threads: int = Field(default_factory=_default_threads, ge=1)
    ctx: int = Field(default=8192, ge=256)
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    server: Literal["shared", "inprocess"] = SHARED
    slots: int = Field(default=4, ge=1, le=64)
    server_idle_s: float = Field(default=900.0, ge=0.0)
    server_dir: Path | None = None
    cache: bool = False
    num_retries: int = Field(default=3, ge=0)
    api_base: str | None = None
    api_key: SecretStr | None = None
    home: Path = Field(default_factory=_default_home, validation_alias="FLYWHEEL_HOME")
    state: Path | None = Field(default=None, validation_alias="FLYWHEEL_STATE")

    @field_validator("state", mode="before")
    @classmethod
    def _blank_state_is_default(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def state_dir(self) -> Path:
        """Runtime state (ops/lib.sh's ``$FLYWHEEL_STATE``, default ``$FLYWHEEL_HOME/run``)."""
        return (self.state or self.home / "run").expanduser()

    @property
    def run_dir(self) -> Path:
        """The shared server's state file and log. Under the state dir: a CI run with a state dir
        of its own starts a server of its own, with its own settings, and stops it at the end."""
        return (self.server_dir or self.state_dir / "lm").expanduser()

    @field_validator("backend")
    @classmethod
    def _backend_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError(
                "FLYWHEEL_LM is 'embedded' or a DSPy model string such as openai/gpt-4o-mini"
            )
        return value

    @property
    def is_embedded(self) -> bool:
        return self.backend == EMBEDDED

    @property
    def is_shared(self) -> bool:
        """The embedded model runs in the machine's shared server, not in this process."""
        return self.is_embedded and self.server == SHARED

    def model_path(self) -> Path:
        """The gguf file for the embedded LM; raises naming the fix when it is absent."""
        known = KNOWN_MODELS.get(self.model)
        if known is None:
            path = Path(self.model).expanduser()
            if path.suffix != ".gguf" and not path.exists():
                raise UnknownModelError(
                    f"FLYWHEEL_LM_MODEL={self.model!r} is neither a known model "
                    f"({', '.join(KNOWN_MODELS)}) nor a .gguf file"
                )
            if not path.is_file():
                raise ModelNotFoundError(f"model file {path} does not exist")
            return path
        path = self.home.expanduser() / "model" / known.file_name
        stamp = path.with_name(path.name + ".sha256")
        if not path.is_file() or path.stat().st_size != known.size or not stamp.is_file():
            raise ModelNotFoundError(
                f"embedded model {self.model!r} is not installed or not verified at {path}. "
                f"Run: {known.fetch_command}"
            )
        return path
