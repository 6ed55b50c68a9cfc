"""A program's signature as field names in order, per predictor: what a published program
must match.

``signature_of(module)`` gives ``{predictor_name: {"inputs": [...], "outputs": [...]}}``; the
optimizer writes it into ``ProgramUpdated.signature_json`` and workers compare it with their own.
DSPy's saved state matches fields by position only, so this check is ours to make.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dspy

FieldNames = dict[str, list[str]]
SignatureMap = dict[str, FieldNames]

_DEMO_EXTRA_KEYS = frozenset({"augmented"})


def signature_of(module: dspy.Module) -> SignatureMap:
    """Field names in order for every named predictor of ``module``."""
    return {
        name: {
            "inputs": list(predictor.signature.input_fields),
            "outputs": list(predictor.signature.output_fields),
        }
        for name, predictor in module.named_predictors()
    }


def signature_mismatch(expected: SignatureMap, published: Any) -> str | None:
    """Why ``published`` does not fit ``expected`` (None when it fits)."""
    if not isinstance(published, dict):
        return "signature_json is not a JSON object"
    missing = sorted(set(expected) - set(published))
    extra = sorted(set(published) - set(expected))
    if missing or extra:
        return f"predictors differ: missing {missing}, unexpected {extra}"
    for name, fields in expected.items():
        theirs = published[name]
        if not isinstance(theirs, dict):
            return f"predictor {name!r}: not an object"
        for side in ("inputs", "outputs"):
            if list(theirs.get(side) or []) != fields[side]:
                return f"predictor {name!r}: {side} {theirs.get(side)} != {fields[side]}"
    return None


def state_mismatch(expected: SignatureMap, state: Any) -> str | None:
    """Structural checks on a dumped program state against our signature (None when it fits).

    Catches states whose field count differs (DSPy would silently zip them) and demos that
    name fields the signature does not have (a renamed field).
    """
    if not isinstance(state, dict):
        return "program state is not a JSON object"
    for name, fields in expected.items():
        entry = state.get(name)
        if not isinstance(entry, dict):
            return f"program state has no predictor {name!r}"
        names = fields["inputs"] + fields["outputs"]
        saved_fields = (entry.get("signature") or {}).get("fields")
        if not isinstance(saved_fields, list) or len(saved_fields) != len(names):
            count = len(saved_fields) if isinstance(saved_fields, list) else None
            return f"predictor {name!r}: state has {count} fields, signature has {len(names)}"
        allowed = set(names) | _DEMO_EXTRA_KEYS
        for demo in entry.get("demos") or []:
            if not isinstance(demo, dict):
                return f"predictor {name!r}: a demo is not an object"
            unknown = sorted(set(demo) - allowed)
            if unknown:
                return f"predictor {name!r}: demo fields {unknown} are not in the signature"
    return None


def output_fields(signature: SignatureMap) -> list[str]:
    """Output field names of the program's last predictor (what a worker returns)."""
    return list(signature[list(signature)[-1]]["outputs"]) if signature else []


def input_fields(signature: SignatureMap) -> list[str]:
    """Input field names of the program's first predictor."""
    return list(signature[next(iter(signature))]["inputs"]) if signature else []
