"""A program's signature as field names in order, per predictor (the ProgramUpdated contract)."""

from __future__ import annotations

from typing import Any

Signature = dict[str, dict[str, list[str]]]


def signature_of(program: Any) -> Signature:
    """``{predictor_name: {"inputs": [...], "outputs": [...]}}`` for a ``dspy.Module``.

    Uses the SDK's implementation when present so both sides compare the same thing.
    """
    try:
        from dspy_flywheel.sdk.signature import signature_of as sdk_signature_of
    except ImportError:
        pass
    else:
        result: Signature = sdk_signature_of(program)
        return result
    return {
        name: {
            "inputs": list(predictor.signature.input_fields),
            "outputs": list(predictor.signature.output_fields),
        }
        for name, predictor in program.named_predictors()
    }


def output_fields(signature: Signature) -> list[str]:
    """Output field names of the program's last predictor (what a worker returns)."""
    if not signature:
        return []
    return list(signature[list(signature)[-1]]["outputs"])


def input_fields(signature: Signature) -> list[str]:
    """Input field names of the program's first predictor."""
    if not signature:
        return []
    return list(signature[next(iter(signature))]["inputs"])
