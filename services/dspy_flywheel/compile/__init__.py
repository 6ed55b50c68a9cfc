"""The compile layer: DSPy programs optimized, scored, saved and loaded, with no Kafka or
PostgreSQL. ``sdk`` (``DSPyAgent``, workers) and ``optimizer`` (the compile child, the gate)
both build on it and never import each other.

* ``catalog``: the optimizers offered (names, presets) and ``create_optimizer``.
* ``compiler``: ``compile_program`` and ``load_state_into`` (field names checked first).
* ``examples``: training data in user and store shapes -> ``dspy.Example``.
* ``judge``: was a call correct (normalization, labels, scores, the default metric), the one
  answer for the SDK, the trigger, the optimizer and the benchmark tasks.
* ``evaluation`` (mean metric, errors counted), ``gate`` (ship when the paired holdout
  evidence proves the candidate better; statistics in ``rollout.paired``).
* ``signature``: ``signature_of`` and the checks a published program must pass.
* ``refs``: ``module:attr`` references, made (``ref_of``) and loaded (``load_ref``); ``errors``.

Importing this package (or ``catalog``, ``gate``, ``judge``, ``errors``) does not import DSPy.
"""
