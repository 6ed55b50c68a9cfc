"""Operator dashboard: per-worker before/after, ROI, accuracy trend and alerts (HTML + JSON)."""

from dspy_flywheel.dashboard.data import WorkerCard, collect_cards
from dspy_flywheel.dashboard.routes import dashboard_routes

__all__ = ["WorkerCard", "collect_cards", "dashboard_routes"]
