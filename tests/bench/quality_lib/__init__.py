"""Pieces of ``tests/bench/quality.py``: options and split checks, one row per child process,
the table and the result line."""
