"""Operator dashboard: live accuracy, versions with ROI, jobs in flight, alerts (HTML + JSON)."""

from dspy_flywheel.dashboard.data import collect_cards, overview
from dspy_flywheel.dashboard.routes import dashboard_routes

__all__ = ["collect_cards", "dashboard_routes", "overview"]
