"""Collector: Kafka execution + feedback events -> anonymized, encrypted training examples.

Run: ``python -m dspy_flywheel.collector`` or ``flywheel collector run``.

Modules: ``events`` (parse/validate), ``prepare`` (PII anonymization, input hashes), ``join``
(pure join + quality filters), ``sink`` (one PostgreSQL transaction per batch), ``maintenance``
(expiry, retention, re-encryption), ``faust_app`` / ``kafka_loop`` (engines), ``app``
(composition; rejects go to the DLQ through ``bus.dlq``).
Repositories the optimizer uses live in :mod:`dspy_flywheel.store.examples` and
:mod:`dspy_flywheel.store.datasets`.
"""
