"""The optimizer service: optimization requests in, gated program versions out.

``consumer`` (requests → queued jobs, acks → registry; consumer groups), ``executor`` (claims
queued jobs from PostgreSQL), ``pipeline`` (one job: snapshot → compile child → holdout gate →
publish or reject), ``runner`` + ``job`` (the compile child process and its limits),
``reaper`` (jobs whose optimizer died). Events are committed with their rows in the
optimizer's outbox (``store.outbox``) and relayed by ``bus.OutboxRelay``. The child compiles
and scores through ``dspy_flywheel.compile`` (as ``DSPyAgent`` does). Importing this package
stays light.
"""
