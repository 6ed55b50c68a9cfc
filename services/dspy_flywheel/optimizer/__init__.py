"""The optimizer service: optimization requests in, gated program versions out.

``consumer`` (requests → queued jobs, acks → registry; consumer groups), ``executor`` (claims
queued jobs from PostgreSQL), ``pipeline`` (one job: snapshot → compile child → holdout gate →
publish or reject), ``runner`` + ``job`` (the compile child process and its limits), ``outbox``
(events committed with their rows), ``reaper`` (jobs whose optimizer died). The child compiles
and scores through ``dspy_flywheel.compile`` (as ``DSPyAgent`` does); ``fake_task`` is a
demo-aware fake LM task for tests and benchmarks. Importing this package stays light.
"""
