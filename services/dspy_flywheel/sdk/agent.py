"""``DSPyAgent``: optimize DSPy programs locally, save and load them — no services needed.

    agent = DSPyAgent()                                   # uses dspy.settings.lm, or lm=...
    optimizer = agent.create_optimizer("BootstrapFewShot", max_bootstrapped_demos=4)
    compiled = agent.compile_with_optimizer(program, trainset, optimizer)
    agent.save_optimized_program(compiled, "ticket-router")
    program = agent.load_optimized_program("ticket-router", program=TicketRouter())

Programs are saved as JSON (state + signature + class path) under ``$FLYWHEEL_HOME/programs``
(``FLYWHEEL_HOME`` defaults to ``~/.cache/dspy-flywheel``, as in ``ops/``). The optimizer service
compiles through the same ``compile`` layer in its child process. ``asave_to_registry`` /
``aload_from_registry`` use a program registry instead of local files:
``store.programs.Registry(pool)`` for PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from dspy_flywheel.compile.catalog import DSPyOptimizer, create_optimizer, using_lm
from dspy_flywheel.compile.compiler import compile_program, load_state_into
from dspy_flywheel.compile.errors import ProgramNotFound
from dspy_flywheel.compile.evaluation import EvalResult, evaluate
from dspy_flywheel.compile.examples import LocalExample, to_examples
from dspy_flywheel.compile.judge import exact_match
from dspy_flywheel.compile.refs import load_ref
from dspy_flywheel.compile.signature import input_fields, signature_of
from dspy_flywheel.sdk.settings import flywheel_home

__all__ = ["DSPyAgent", "DSPyOptimizer", "LocalExample", "ProgramRegistry"]

_PROGRAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class ProgramRegistry(Protocol):
    """Registered program versions (``store.programs.Registry`` keeps them in PostgreSQL)."""

    async def find(
        self, worker_id: str, version: int | None
    ) -> tuple[int, dict[str, Any], dict[str, Any]] | None:
        """(version, state, signature) of the latest (or given) version; None if there is none."""

    async def register(
        self,
        worker_id: str,
        state: dict[str, Any],
        signature: dict[str, Any],
        *,
        optimizer: str,
        requested_by: str,
    ) -> int:
        """Store the worker's next version (not published to workers); returns its number."""


class DSPyAgent:
    """Optimizer factory, compiler and program store for DSPy programs.

    ``lm``: the LM used for compiling (default: ``dspy.settings.lm``). ``metric``: default metric
    (normalized exact match over output fields). ``home``: where programs are saved.
    """

    def __init__(
        self,
        lm: Any = None,
        *,
        metric: Callable[..., Any] | None = None,
        home: str | Path | None = None,
    ) -> None:
        self.lm = lm
        self.metric = metric or exact_match
        self.home = Path(home) if home is not None else flywheel_home()
        self.training_examples: list[LocalExample] = []

    # -- optimizers -----------------------------------------------------------------------

    def create_optimizer(
        self, optimizer_type: str, *, metric: Callable[..., Any] | None = None, **kwargs: Any
    ) -> DSPyOptimizer:
        """A configured optimizer; unknown names or parameters raise OptimizerConfigError."""
        return create_optimizer(
            optimizer_type, metric=metric or self.metric, lm=self._lm(), **kwargs
        )

    def compile_with_optimizer(
        self,
        program: Any,
        training_data: Sequence[Any],
        optimizer: DSPyOptimizer | str,
        valset: Sequence[Any] | None = None,
    ) -> Any:
        """Compile ``program`` on ``training_data``; returns the optimized program.

        ``training_data``/``valset`` items: ``dspy.Example`` (inputs marked), ``LocalExample``,
        ``{"inputs": {...}, "outputs": {...}}`` or flat dicts keyed by the program's fields.
        ``valset`` is used by optimizers that score candidates (random search, MIPROv2) and
        ignored by the others; without it they hold out part of ``training_data`` themselves.
        """
        if isinstance(optimizer, str):
            optimizer = self.create_optimizer(optimizer)
        return compile_program(program, training_data, optimizer, valset=valset, lm=self._lm())

    def evaluate(
        self,
        program: Any,
        examples: Sequence[Any],
        metric: Callable[..., Any] | None = None,
        *,
        num_threads: int = 1,
    ) -> EvalResult:
        """Mean metric in [0, 1] over ``examples`` (failed calls score 0 and are counted)."""
        data = to_examples(examples, input_fields(signature_of(program)))
        with using_lm(self._lm()):
            return evaluate(program, data, metric or self.metric, num_threads=num_threads)

    # -- training data --------------------------------------------------------------------

    def collect_training_example(
        self,
        inputs: dict[str, Any],
        outputs: dict[str, Any],
        metadata: dict[str, Any] | None = None,
    ) -> LocalExample:
        """Keep an example in memory (``self.training_examples``) for a later local compile."""
        example = LocalExample(dict(inputs), dict(outputs), dict(metadata or {}))
        self.training_examples.append(example)
        return example

    # -- local program store --------------------------------------------------------------

    def _path(self, program_id: str) -> Path:
        if not _PROGRAM_ID.match(program_id):
            raise ValueError(
                f"program_id {program_id!r}: use letters, digits, '.', '_' or '-' (max 200)"
            )
        return self.home / "programs" / f"{program_id}.json"

    def save_optimized_program(self, program: Any, program_id: str) -> bool:
        """Write the program's state, signature and class path as JSON (atomically)."""
        path = self._path(program_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "program_id": program_id,
            "class": f"{type(program).__module__}:{type(program).__qualname__}",
            "signature": signature_of(program),
            "state": program.dump_state(),
            "saved_at": datetime.now(UTC).isoformat(),
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{program_id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(document, fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    def load_optimized_program(self, program_id: str, program: Any = None) -> Any:
        """A **new** module instance with the saved state loaded.

        ``program`` is a template (not modified); without it the saved class is imported and
        built with no arguments. The saved signature must match the program's field names.
        """
        path = self._path(program_id)
        if not path.exists():
            raise ProgramNotFound(f"no saved program {program_id!r} under {path.parent}")
        document = json.loads(path.read_text())
        return load_state_into(
            document["state"],
            document["signature"],
            program if program is not None else load_ref(document["class"])(),
        )

    # -- program registry -----------------------------------------------------------------

    async def aload_from_registry(
        self, registry: ProgramRegistry, worker_id: str, program: Any, version: int | None = None
    ) -> tuple[int, Any]:
        """(version, new program) for the worker's latest (or given) registered version."""
        found = await registry.find(worker_id, version)
        if found is None:
            raise ProgramNotFound(f"no registered program for {worker_id!r} (version {version})")
        number, state, signature = found
        return number, load_state_into(state, signature, program)

    async def asave_to_registry(
        self,
        registry: ProgramRegistry,
        worker_id: str,
        program: Any,
        *,
        optimizer: str = "manual",
        requested_by: str = "sdk",
    ) -> int:
        """Register ``program`` as the worker's next version (not published to workers)."""
        return await registry.register(
            worker_id,
            program.dump_state(),
            signature_of(program),
            optimizer=optimizer,
            requested_by=requested_by,
        )

    def _lm(self) -> Any:
        import dspy

        return self.lm if self.lm is not None else dspy.settings.lm
