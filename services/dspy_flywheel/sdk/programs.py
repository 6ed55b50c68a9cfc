"""Which program a worker serves: the code's own or a published version; swaps are atomic.

A published program is checked (signature field names and order, state structure), loaded into
a **new** module instance, and only then swapped in by replacing one reference. A call reads
that reference once, so calls in flight finish on the program they started with: nobody ever
sees half of one version and half of another (in-place ``load_state`` on a live module would).

The LM stays the worker's: a published state brings instructions and demos, not an LM.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import dspy

from dspy_flywheel.compile.retrieval import load_program_state
from dspy_flywheel.compile.signature import signature_mismatch, signature_of, state_mismatch
from dspy_flywheel.sdk.errors import CorruptProgram, SignatureMismatch, UnknownVersion

log = logging.getLogger(__name__)

CODE: Literal["code"] = "code"  # pin target: the program as written in code


class Serving(NamedTuple):
    program: dspy.Module
    version: int | None


class Outcome(NamedTuple):
    """What an offer / pin / rollback did; becomes a ProgramAcknowledged event."""

    status: str  # serving | refused | pinned | unpinned | rolled_back
    version: int | None
    reason: str | None = None


class _Published(NamedTuple):
    state: dict[str, Any]


class ProgramSlot:
    def __init__(self, factory: Callable[[], dspy.Module], history_size: int) -> None:
        self._factory = factory
        base = factory()
        self.signature = signature_of(base)
        self.current = Serving(base, None)
        self._base = base
        self._history_size = max(1, history_size)
        self._known: OrderedDict[int, _Published] = OrderedDict()
        self._latest: int | None = None
        self._pinned: int | Literal["code"] | None = None
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------------------------

    @property
    def pinned(self) -> int | Literal["code"] | None:
        return self._pinned

    def known_versions(self) -> list[int]:
        return list(self._known)

    # -- published programs -------------------------------------------------------------------

    def check(self, state_json: str, signature_json: str) -> dict[str, Any]:
        """The parsed state when it fits this worker; raises SignatureMismatch / CorruptProgram."""
        try:
            published_sig = json.loads(signature_json)
        except (TypeError, ValueError) as exc:
            raise CorruptProgram(f"signature_json is not JSON: {exc}") from exc
        why = signature_mismatch(self.signature, published_sig)
        if why is not None:
            raise SignatureMismatch(why)
        try:
            state = json.loads(state_json)
        except (TypeError, ValueError) as exc:
            raise CorruptProgram(f"program_state_json is not JSON: {exc}") from exc
        why = state_mismatch(self.signature, state)
        if why is not None:
            raise CorruptProgram(why)
        if not isinstance(state, dict):  # state_mismatch checked; narrows the type
            raise CorruptProgram("program state is not a JSON object")
        return state

    def build(self, state: dict[str, Any]) -> dspy.Module:
        """A new module instance with ``state`` loaded, keeping the worker's own LMs."""
        program = self._factory()
        own_lms = {name: p.lm for name, p in program.named_predictors()}
        state = copy.deepcopy(state)
        for name in own_lms:
            state[name]["lm"] = None
        try:
            load_program_state(program, state)
        except Exception as exc:
            raise CorruptProgram(f"state does not load: {type(exc).__name__}: {exc}") from exc
        for name, predictor in program.named_predictors():
            predictor.lm = own_lms.get(name)
        return program

    def offer(self, version: int, state_json: str, signature_json: str) -> Outcome:
        """A program-updated event for this worker: check, build, swap (unless pinned)."""
        state = self.check(state_json, signature_json)
        program = self.build(state)
        with self._lock:
            self._remember(version, state)
            self._latest = version
            if self._pinned is not None:
                held = None if self._pinned == CODE else self._pinned
                return Outcome("pinned", held, f"pinned; version {version} held back")
            self._serve(program, version)
        return Outcome("serving", version)

    # -- operator actions ---------------------------------------------------------------------

    def pin(self, version: int | Literal["code"] | None = None) -> Outcome:
        """Serve ``version`` (None: the current one; "code": the code's own) until ``unpin``."""
        with self._lock:
            target: int | Literal["code"] | None = (
                self.current.version if version is None else version
            )
            if target is None:
                target = CODE
            self._switch_to(None if target == CODE else target)
            self._pinned = target
            return Outcome("pinned", self.current.version)

    def unpin(self) -> Outcome:
        """Follow published programs again (switching to the latest one seen, if different)."""
        with self._lock:
            self._pinned = None
            if self._latest is not None and self._latest != self.current.version:
                self._switch_to(self._latest)
            return Outcome("unpinned", self.current.version)

    def rollback(self) -> Outcome:
        """Serve the version published before the current one (the code's own program before
        the oldest one this instance knows), and pin it."""
        with self._lock:
            current = self.current.version
            if current is None:
                raise UnknownVersion("nothing to roll back to: serving the code's own program")
            versions = list(self._known)  # in publish order
            index = versions.index(current) if current in versions else len(versions)
            target = versions[index - 1] if index > 0 else None
            self._switch_to(target)
            self._pinned = CODE if target is None else target
            return Outcome("rolled_back", target)

    # -- internals (lock held) ----------------------------------------------------------------

    def _switch_to(self, version: int | None) -> None:
        if version == self.current.version:
            return
        if version is None:
            self._serve(self._base, None)  # never modified: loads always go to new instances
            return
        published = self._known.get(version)
        if published is None:
            raise UnknownVersion(
                f"version {version} is not among the versions this instance loaded "
                f"({self.known_versions() or 'none'}); 'code' is the code's own program"
            )
        self._serve(self.build(published.state), version)

    def _serve(self, program: dspy.Module, version: int | None) -> None:
        self.current = Serving(program, version)  # the atomic swap

    def _remember(self, version: int, state: dict[str, Any]) -> None:
        self._known.pop(version, None)
        self._known[version] = _Published(state)
        while len(self._known) > self._history_size:
            self._known.popitem(last=False)

    def remember_unloaded(self, version: int, state_json: str, signature_json: str) -> bool:
        """Keep an older published version for pin/rollback without serving it (catch-up)."""
        try:
            state = self.check(state_json, signature_json)
        except (SignatureMismatch, CorruptProgram):
            return False
        with self._lock:
            self._remember(version, state)
        return True
