"""The operator's dashboard in a real browser (Debian's headless Chromium), RBAC on.

After the observed lifecycle (fake LM): a viewer signs in with a token, the page shows each
version's live and holdout accuracy and ROI exactly as ``/api/v1/dashboard`` reports them, the
live chart has a point per bucket and a marker per version change, the page reloads itself,
and the job's page shows its status history and the lifecycle's trace id (and spans, read from
Jaeger). Screenshots go to tests/bench/results/.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dspy_flywheel.dashboard.render import num, pct
from tests.e2e.observed_loop import DASHBOARD_REFRESH_S, Observed
from tests.e2e.webdriver import Browser

pytestmark = pytest.mark.timeout(600)

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
WORKER = "loop-bfs"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser.headless() as found:
        yield found


def _field(browser: Browser, name: str, **attrs: Any) -> str:
    selector = f"[data-field='{name}']" + "".join(f"[data-{k}='{v}']" for k, v in attrs.items())
    return browser.text(browser.find(selector))


def _signed_in(browser: Browser, observed: Observed) -> None:
    browser.go(f"{observed.api}/dashboard/login")
    browser.type(browser.find("#token"), observed.viewer_token)
    browser.click(browser.find("#sign-in"))
    deadline = time.monotonic() + 30
    while not browser.url.endswith("/dashboard"):
        assert time.monotonic() < deadline, browser.url
        time.sleep(0.1)


def test_without_a_token_the_dashboard_is_refused(browser: Browser, observed: Observed) -> None:
    browser.go(f"{observed.api}/dashboard")
    assert "missing or unknown API token" in browser.text(browser.find("body"))


def test_numbers_on_the_page_match_the_api(browser: Browser, observed: Observed) -> None:
    _signed_in(browser, observed)
    assert browser.title == "dspy-flywheel"
    data = observed.get("/api/v1/dashboard")
    (card,) = [w for w in data["workers"] if w["worker_id"] == WORKER]
    assert card["versions"], card
    for version in card["versions"]:
        at = {"worker": WORKER, "version": version["version"]}
        assert _field(browser, "live-accuracy", **at) == pct(version["live_accuracy"])
        assert _field(browser, "holdout-before", **at) == pct(version["holdout_before"])
        assert _field(browser, "holdout-after", **at) == pct(version["holdout_after"])
        assert _field(browser, "roi-tokens", **at) == num(version["roi_points_per_1k_tokens"])
        assert _field(browser, "roi-cpu", **at) == num(version["roi_points_per_cpu_minute"])
    code = card["live"]["by_version"]["0"]
    for version in card["versions"]:  # the published version did better, live and on holdout
        assert version["live_accuracy"] >= code["accuracy"] + 0.2
        assert version["holdout_after"] > version["holdout_before"]
        assert version["roi_points_per_1k_tokens"] > 0
    assert _field(browser, "live-accuracy", worker=WORKER, version=0) == pct(code["accuracy"])
    assert _field(browser, "roi", worker=WORKER) == num(card["roi_points_per_1k_tokens"])

    points = browser.find_all(f"[data-worker='{WORKER}'] [data-field='live-point']")
    assert len(points) == len(card["live"]["points"]) >= 2
    shown = [float(browser.attribute(p, "data-accuracy") or "nan") for p in points]
    assert shown == [round(p["accuracy"], 4) for p in card["live"]["points"]]
    markers = browser.find_all(f"[data-worker='{WORKER}'] [data-field='version-marker']")
    assert [browser.attribute(m, "data-version") for m in markers] == [
        str(c["version"]) for c in card["live"]["changes"]
    ]
    assert len(markers) >= 1
    alerts = browser.find_all("[data-field='alert']")
    assert len(alerts) == len(data["alerts"]) >= 1
    assert data["in_flight"] == []  # the job is over
    browser.find("[data-field='in-flight-none']")
    browser.screenshot(RESULTS / "dashboard.png")


def test_the_page_reloads_itself(browser: Browser, observed: Observed) -> None:
    _signed_in(browser, observed)
    browser.script("window.flywheelMark = 1;")
    deadline = time.monotonic() + DASHBOARD_REFRESH_S + 30  # slack for a loaded machine
    while browser.script("return window.flywheelMark === 1;"):
        assert time.monotonic() < deadline, "the dashboard did not reload itself"
        time.sleep(0.3)


def test_job_page_shows_history_and_trace(browser: Browser, observed: Observed) -> None:
    _signed_in(browser, observed)
    browser.click(browser.find(f"a[href='/dashboard/jobs/{observed.job_id}']"))
    job = observed.get(f"/api/v1/dashboard/jobs/{observed.job_id}")
    assert _field(browser, "trace-id") == job["trace_id"] == observed.trace_id
    steps = browser.find_all("[data-field='status-step']")
    assert len(steps) == len(job["history"])
    statuses = [s["status"] for s in job["history"]]
    assert statuses[0] == "queued"
    assert statuses[-1] == "succeeded"
    assert "running" in statuses
    assert _field(browser, "job-status") == job["job"]["status"] == "succeeded"
    if os.environ.get("FLYWHEEL_JAEGER_URL"):  # the manager draws the spans Jaeger returns
        deadline = time.monotonic() + 30
        while len(browser.find_all("[data-field='span']")) < 8:
            assert time.monotonic() < deadline, "the job page shows no trace spans"
            time.sleep(1)
            browser.go(f"{observed.api}/dashboard/jobs/{observed.job_id}")
        spans = [browser.text(s) for s in browser.find_all("[data-field='span']")]
        assert any("optimization.publish" in s for s in spans), spans
    browser.screenshot(RESULTS / "dashboard_job.png")
