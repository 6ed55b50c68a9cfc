"""Which ``package.module:attr`` references a job may name: never a code path from the network.

The optimizer imports a job's ``program_ref`` and calls it, and calls its ``metric_ref`` with
``(example, pred, trace)``. So a reference is accepted only when

* the worker registered it for itself: the ``program_ref`` / ``metric_ref`` of the worker's
  ``TriggerConfig``, which its SDK publishes from the decorator (operators cannot change them
  to anything outside the allow-list), or
* it is on the allow-list ``FLYWHEEL_OPTIMIZER_ALLOWED_REFS``: comma-separated entries, each a
  reference (``pkg.tasks:build``) or a whole module (``pkg.tasks:*``).

The manager API refuses anything else with 400 (audited); ``flywheel trigger set`` refuses it;
the optimizer checks again before its compile child imports anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from dspy_flywheel.contracts.validate import MAX_NAME_CHARS, InvalidInput, check_text

ALLOWED_REFS_ENV = "FLYWHEEL_OPTIMIZER_ALLOWED_REFS"
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_REF = re.compile(rf"{_DOTTED}:{_DOTTED}", re.ASCII)
_MODULE_ENTRY = re.compile(rf"{_DOTTED}:\*", re.ASCII)


class RefNotAllowed(InvalidInput):
    def __init__(self, message: str) -> None:
        super().__init__("ref_not_allowed", message)


def check_ref_syntax(value: object, field: str) -> str:
    """``package.module:attr.sub`` made of Python identifiers (nothing else is importable)."""
    ref = check_text(value, field, MAX_NAME_CHARS)
    if not _REF.fullmatch(ref):
        raise InvalidInput("bad_ref", f"{field} {ref!r} must look like 'package.module:attr'")
    return ref


@dataclass(frozen=True)
class RefAllowList:
    refs: frozenset[str] = frozenset()
    modules: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> RefAllowList:
        items = spec.split(",") if isinstance(spec, str) else spec
        refs, modules = set(), set()
        for item in (i.strip() for i in items):
            if not item:
                continue
            if _MODULE_ENTRY.fullmatch(item):
                modules.add(item[:-2])
            else:
                refs.add(check_ref_syntax(item, ALLOWED_REFS_ENV))
        return cls(frozenset(refs), frozenset(modules))

    def allows(self, ref: str) -> bool:
        return ref in self.refs or ref.partition(":")[0] in self.modules


@dataclass(frozen=True)
class WorkerRefs:
    """What a worker registered for itself (from its TriggerConfig); None fields: nothing."""

    program_ref: str | None = None
    metric_ref: str | None = None


def check_job_refs(
    worker_id: str,
    program_ref: str | None,
    metric_ref: str | None,
    registered: WorkerRefs,
    allowed: RefAllowList,
) -> None:
    """RefNotAllowed unless each reference given is the worker's own or allow-listed."""
    for field, ref, own in (
        ("program_ref", program_ref, registered.program_ref),
        ("metric_ref", metric_ref, registered.metric_ref),
    ):
        if ref is None:
            continue
        check_ref_syntax(ref, field)
        if ref != own and not allowed.allows(ref):
            theirs = f"its registered {field} is {own!r}" if own else f"it registered no {field}"
            raise RefNotAllowed(
                f"{field} {ref!r} is not registered for worker {worker_id!r} ({theirs}) and is "
                f"not on {ALLOWED_REFS_ENV}; a job may only run code its worker registered"
            )
