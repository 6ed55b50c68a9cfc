"""Dashboard over the real registry tables: before/after, ROI, trend and alerts."""

from __future__ import annotations

import socket

import asyncpg
import httpx
from starlette.applications import Starlette

from dspy_flywheel.contracts.events import Alert
from dspy_flywheel.dashboard import collect_cards, dashboard_routes

_PROGRAM = """
INSERT INTO programs (worker_id, version, state, signature, optimizer, holdout_before,
                      holdout_after, lm_calls, tokens, wall_s, size_bytes)
VALUES ($1, $2, '{}'::jsonb, '{}'::jsonb, 'BootstrapFewShot', $3, $4, 40, $5, 12.5, 100)"""
_JOB = """
INSERT INTO optimization_jobs (job_id, worker_id, status, optimizer, message)
VALUES ($1, $2, $3, 'BootstrapFewShot', $4)"""
_ALERT = """
INSERT INTO trigger_outbox (event_id, scope, worker_id, job_id, topic, record, event_type)
VALUES ($1, 'dash', $2, $3, 'alerts', $4, 'Alert')"""


async def test_dashboard_shows_gain_roi_and_alerts(db_pool: asyncpg.Pool, unique: str) -> None:
    worker = f"dash-{unique}"
    await db_pool.execute(_PROGRAM, worker, 1, 0.25, 0.60, 4000)
    await db_pool.execute(_PROGRAM, worker, 2, 0.60, 0.85, 6000)
    await db_pool.execute(_JOB, f"j1-{unique}", worker, "succeeded", None)
    await db_pool.execute(_JOB, f"j2-{unique}", worker, "rejected", "candidate 0.5 <= current 0.85")
    alert = Alert(
        alert_id=f"a1-{unique}",
        worker_id=worker,
        severity="warning",
        kind="accuracy_below_threshold",
        message="rolling accuracy 40.0% is below 75.0%",
        timestamp_ms=1_700_000_000_000,
    )
    await db_pool.execute(_ALERT, alert.alert_id, worker, f"j2-{unique}", alert.to_record())

    card = next(c for c in await collect_cards(db_pool) if c.worker_id == worker)
    assert card.first_score == 0.25
    assert card.latest_score == 0.85
    assert round(card.gain_points or 0, 6) == 60.0
    assert card.optimization_tokens == 10_000
    assert round(card.roi_points_per_1k_tokens or 0, 6) == 6.0
    assert card.jobs == {"succeeded": 1, "rejected": 1}
    assert any("rejected" in a and "0.85" in a for a in card.alerts)
    assert card.alerts[0] == "warning: rolling accuracy 40.0% is below 75.0%"  # alerts first

    app = Starlette(routes=dashboard_routes(lambda: db_pool))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        page = await c.get("/dashboard")
        data = await c.get("/api/v1/dashboard")
    assert page.status_code == 200
    for expected in (
        worker,
        "25.0% → 85.0%",
        "+60.0 points",
        "<polyline",
        "candidate 0.5",
        "40.0%",
    ):
        assert expected in page.text
    assert any(w["worker_id"] == worker for w in data.json()["workers"])


async def test_jobs_in_flight_show_with_progress(db_pool: asyncpg.Pool, unique: str) -> None:
    worker, job_id = f"flight-{unique}", f"jr-{unique}"
    await db_pool.execute(_JOB, job_id, worker, "running", "compile: 42%")
    await db_pool.execute("UPDATE optimization_jobs SET progress = 0.42 WHERE job_id = $1", job_id)
    app = Starlette(routes=dashboard_routes(lambda: db_pool))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        page = await c.get("/dashboard")
        data = (await c.get("/api/v1/dashboard")).json()
        job_page = await c.get(f"/dashboard/jobs/{job_id}")
        missing = await c.get("/dashboard/jobs/no-such-job")
    (flying,) = [j for j in data["in_flight"] if j["job_id"] == job_id]
    assert flying["progress"] == 0.42
    assert flying["status"] == "running"
    assert f"href='/dashboard/jobs/{job_id}'" in page.text
    assert f"data-job='{job_id}'>42.0%</span>" in page.text
    assert "http-equiv='refresh' content='10'" in page.text
    assert job_page.status_code == 200
    assert "compile: 42%" in job_page.text
    assert missing.status_code == 404


async def test_trace_page_says_when_jaeger_is_away(db_pool: asyncpg.Pool) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        away = f"http://127.0.0.1:{s.getsockname()[1]}"
    app = Starlette(routes=dashboard_routes(lambda: db_pool, jaeger_url=away))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        page = await c.get(f"/dashboard/traces/{trace_id}")
        data = await c.get(f"/api/v1/dashboard/traces/{trace_id}")
    assert page.status_code == data.status_code == 502
    assert "Jaeger did not answer" in page.text
    assert data.json()["spans"] == []
