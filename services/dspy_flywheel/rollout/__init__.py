"""Safe rollout: the statistics that decide whether a program version ships and stays.

``paired``: the offline gate on a shared holdout. ``sequential``: the always-valid live test
(canary promote / rollback / keep, and the guard after a promotion). Both are pure (no IO).
"""
