"""Which program a worker serves: the code's own or a published version; swaps are atomic.

A published program is checked (signature field names and order, state structure), loaded into
a **new** module instance, and only then swapped in by replacing one reference. A call reads
that reference once, so calls in flight finish on the program they started with: nobody ever
sees half of one version and half of another (in-place ``load_state`` on a live module would).

The LM stays the worker's: a published state brings instructions and demos, not an LM. A
fine-tuned version also names a LoRA adapter (``finetune.AdapterArtifact``): the worker's own LM
then serves it through a new engine (base model checked, file re-hashed, loaded before the
swap); an adapter that cannot be served refuses the version and the current one keeps serving.

Canaries: a version published as a *candidate* is checked and kept, not served. The rollout
controller's assignments (``assign``: stable version, candidate version, share) decide what
serves; with a candidate, ``route`` holds both programs and a ``Split`` that sends each call's
routing key to one of them, the same way in every replica. An assignment naming a version this
instance has not received yet waits for it. A pinned assignment, like a local ``pin``, holds
every later published version back.
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

from dspy_flywheel.compile.program_state import load_program_state
from dspy_flywheel.compile.signature import signature_mismatch, signature_of, state_mismatch
from dspy_flywheel.finetune.artifacts import AdapterArtifact
from dspy_flywheel.finetune.errors import AdapterError
from dspy_flywheel.rollout.routing import Split
from dspy_flywheel.rollout.state import Assignment
from dspy_flywheel.sdk.errors import (
    AdapterRefused,
    CorruptProgram,
    ProgramRefused,
    SignatureMismatch,
    UnknownVersion,
)

log = logging.getLogger(__name__)

CODE: Literal["code"] = "code"  # pin target: the program as written in code


class Serving(NamedTuple):
    program: dspy.Module
    version: int | None


class Route(NamedTuple):
    """What serves calls: the stable program, and a candidate with its share of the keys."""

    stable: Serving
    candidate: Serving | None = None
    split: Split | None = None

    def choose(self, key: str) -> Serving:
        """The program for a call with routing ``key``."""
        split, candidate = self.split, self.candidate
        if split is None or candidate is None:
            return self.stable
        return candidate if split.to_candidate(key) else self.stable


class Outcome(NamedTuple):
    """What an offer / assignment / pin / rollback did; becomes a ProgramAcknowledged event."""

    # serving | canary | loaded | waiting | refused | pinned | unpinned | rolled_back
    status: str
    version: int | None
    reason: str | None = None


class _Published(NamedTuple):
    state: dict[str, Any]
    adapter: AdapterArtifact | None = None


class ProgramSlot:
    def __init__(
        self, factory: Callable[[], dspy.Module], history_size: int, worker_id: str = ""
    ) -> None:
        self._factory = factory
        self.worker_id = worker_id
        base = factory()
        self.signature = signature_of(base)
        self.route = Route(Serving(base, None))  # replaced, never modified: calls read it once
        self._assignment: Assignment | None = None  # the rollout controller's latest
        self._sequence = 0
        self._assignment_waits = False  # it names a version not received yet
        self._base = base
        self._history_size = max(1, history_size)
        self._known: OrderedDict[int, _Published] = OrderedDict()
        self._latest: int | None = None
        self._pinned: int | Literal["code"] | None = None
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------------------------

    @property
    def current(self) -> Serving:
        """The stable program (the one every call gets when there is no candidate)."""
        return self.route.stable

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

    @staticmethod
    def parse_adapter(adapter_json: str | None) -> AdapterArtifact | None:
        """The adapter a published version names (None: prompt-only); AdapterRefused if bad."""
        if not adapter_json:
            return None
        try:
            return AdapterArtifact.from_json(adapter_json)
        except AdapterError as exc:
            raise AdapterRefused(str(exc)) from exc

    def build(self, state: dict[str, Any], adapter: AdapterArtifact | None = None) -> dspy.Module:
        """A new module instance with ``state`` loaded, keeping the worker's own LMs (serving
        ``adapter`` on them when given: AdapterRefused when they cannot)."""
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
        if adapter is not None:
            self._serve_adapter(program, adapter)
        return program

    @staticmethod
    def _serve_adapter(program: dspy.Module, adapter: AdapterArtifact) -> None:
        from dspy_flywheel.finetune.tuned_lm import adapter_lm

        tuned: dict[int, Any] = {}
        for name, predictor in program.named_predictors():
            own = predictor.lm or dspy.settings.lm
            if own is None:
                raise AdapterRefused(f"predictor {name} has no LM to serve the adapter with")
            try:
                if id(own) not in tuned:
                    tuned[id(own)] = adapter_lm(own, adapter)
            except AdapterError as exc:
                raise AdapterRefused(str(exc)) from exc
            predictor.lm = tuned[id(own)]

    def offer(
        self,
        version: int,
        state_json: str,
        signature_json: str,
        rollout: str = "serve",
        adapter_json: str | None = None,
    ) -> Outcome:
        """A program-updated event for this worker: check it; a ``serve`` version is built and
        swapped in (unless pinned); a ``candidate`` is kept for the controller's assignment."""
        state = self.check(state_json, signature_json)
        adapter = self.parse_adapter(adapter_json)
        if rollout == "candidate":
            if adapter is not None:
                self.build(state, adapter)  # refused now, not when the controller assigns it
            with self._lock:
                self._remember(version, state, adapter)
                if self._assignment_waits and self._pinned is None:
                    return self._apply_assignment()
            return Outcome("loaded", version, "candidate: waiting for the rollout controller")
        program = self.build(state, adapter)
        with self._lock:
            self._remember(version, state, adapter)
            self._latest = version
            # a local pin or a pinned assignment holds new versions back
            if self._pinned is not None or (self._assignment and self._assignment.pinned):
                held = self._held_version()
                return Outcome("pinned", held, f"pinned; version {version} held back")
            self._serve(program, version)
        return Outcome("serving", version)

    def assign(self, assignment: Assignment, sequence: int) -> Outcome | None:
        """The rollout controller's assignment number ``sequence`` (None: an old one)."""
        with self._lock:
            if sequence <= self._sequence:
                return None
            self._assignment, self._sequence = assignment, sequence
            if self._pinned is not None:
                held = self._held_version()
                return Outcome("pinned", held, "instance pinned; rollout assignment held back")
            return self._apply_assignment()

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
        """Follow the rollout controller again (or, without one, the latest version seen)."""
        with self._lock:
            self._pinned = None
            if self._assignment is not None:
                self._apply_assignment()
            elif self._latest is not None and self._latest != self.current.version:
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

    def _held_version(self) -> int | None:
        if self._pinned is not None:
            return None if self._pinned == CODE else self._pinned
        return self.route.stable.version

    def _program_of(self, version: int | None) -> dspy.Module:
        route = self.route
        if version == route.stable.version:
            return route.stable.program
        if route.candidate is not None and version == route.candidate.version:
            return route.candidate.program
        return self._base if version is None else self.build(*self._known[version])

    def _apply_assignment(self) -> Outcome:
        a = self._assignment
        assert a is not None
        missing = [v for v in (a.stable, a.candidate) if v is not None and v not in self._known]
        self._assignment_waits = bool(missing)
        if missing:
            return Outcome("waiting", a.stable, f"{a.describe()}: v{missing[0]} not received yet")
        stable = Serving(self._program_of(a.stable), a.stable)
        if a.candidate is None:
            self.route = Route(stable)
            return Outcome("serving", a.stable, a.describe())
        candidate = Serving(self._program_of(a.candidate), a.candidate)
        self.route = Route(stable, candidate, Split(self.worker_id, a.candidate, a.share))
        return Outcome("canary", a.candidate, a.describe())

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
        self._serve(self.build(*published), version)

    def _serve(self, program: dspy.Module, version: int | None) -> None:
        self.route = Route(Serving(program, version))  # the atomic swap (ends any canary)

    def _remember(
        self, version: int, state: dict[str, Any], adapter: AdapterArtifact | None = None
    ) -> None:
        self._known.pop(version, None)
        self._known[version] = _Published(state, adapter)
        while len(self._known) > self._history_size:
            self._known.popitem(last=False)

    def remember_unloaded(
        self, version: int, state_json: str, signature_json: str, adapter_json: str | None = None
    ) -> bool:
        """Keep an older published version for pin/rollback without serving it (catch-up)."""
        try:
            state = self.check(state_json, signature_json)
            adapter = self.parse_adapter(adapter_json)
        except ProgramRefused:
            return False
        with self._lock:
            self._remember(version, state, adapter)
        return True
