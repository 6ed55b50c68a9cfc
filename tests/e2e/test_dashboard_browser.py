"""The operator's dashboard in a real browser (Debian's headless Chromium), RBAC on.

After the observed lifecycle (fake LM): a viewer signs in with a token, the page shows each
version's live and holdout accuracy and ROI exactly as ``/api/v1/dashboard`` reports them, the
live chart has a point per bucket and a marker per version change, the page reloads itself,
the job's page shows its status history and the lifecycle's trace id, and its trace page shows
the span tree exactly as Jaeger's query API returns it (services, durations, attributes).
Screenshots go to a temporary folder, or with FLYWHEEL_UPDATE_SCREENSHOTS=1 to the committed
examples in tests/bench/results/ (tests/e2e/screenshots.py); each must show a non-blank page.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dspy_flywheel.dashboard.charts import num, pct
from tests.e2e.jaeger import JAEGER, lifecycle_trace, needs_jaeger
from tests.e2e.observed_loop import DASHBOARD_REFRESH_S, Observed
from tests.e2e.screenshots import assert_readable, screenshot_dir
from tests.e2e.webdriver import Browser

pytestmark = pytest.mark.timeout(600)

WORKER = "loop-bfs"
WIDTH = 1280


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser.headless(width=WIDTH) as found:
        yield found


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory.mktemp("screenshots"))


def _screenshot(browser: Browser, folder: Path, name: str) -> None:
    browser.screenshot(folder / name)
    assert_readable(folder / name, WIDTH)


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


def test_numbers_on_the_page_match_the_api(
    browser: Browser, observed: Observed, shots: Path
) -> None:
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
    _screenshot(browser, shots, "dashboard.png")


def test_the_page_reloads_itself(browser: Browser, observed: Observed) -> None:
    _signed_in(browser, observed)
    browser.script("window.flywheelMark = 1;")
    deadline = time.monotonic() + DASHBOARD_REFRESH_S + 30  # slack for a loaded machine
    while browser.script("return window.flywheelMark === 1;"):
        assert time.monotonic() < deadline, "the dashboard did not reload itself"
        time.sleep(0.3)


def test_job_page_shows_history_and_trace(
    browser: Browser, observed: Observed, shots: Path
) -> None:
    _signed_in(browser, observed)
    browser.click(browser.find(f"a[href='/dashboard/jobs/{observed.job_id}']"))
    job = observed.get(f"/api/v1/dashboard/jobs/{observed.job_id}")
    assert _field(browser, "trace-id") == job["trace_id"] == observed.trace_id
    assert observed.get(f"/api/v1/jobs/{observed.job_id}")["trace_id"] == observed.trace_id
    steps = browser.find_all("[data-field='status-step']")
    assert len(steps) == len(job["history"])
    statuses = [s["status"] for s in job["history"]]
    assert statuses[0] == "queued"
    assert statuses[-1] == "succeeded"
    assert "running" in statuses
    assert _field(browser, "job-status") == job["job"]["status"] == "succeeded"
    link = browser.attribute(browser.find("[data-field='trace-link']"), "href") or ""
    assert link.endswith(f"/dashboard/traces/{observed.trace_id}"), link
    _screenshot(browser, shots, "dashboard_job.png")


@needs_jaeger
def test_trace_page_shows_what_jaeger_holds(
    browser: Browser, observed: Observed, shots: Path
) -> None:
    expected = {s["spanID"]: s for s in lifecycle_trace(observed.trace_id)["spans"]}
    _signed_in(browser, observed)
    browser.go(f"{observed.api}/dashboard/jobs/{observed.job_id}")
    browser.click(browser.find("[data-field='trace-link']"))
    assert browser.url.endswith(f"/dashboard/traces/{observed.trace_id}")
    rows = browser.find_all("[data-field='span']")
    assert len(rows) == len(expected), (len(rows), len(expected))
    assert _field(browser, "span-count") == str(len(expected))
    for row in rows:
        span = expected[browser.attribute(row, "data-span") or ""]
        cells = {
            name: browser.text(
                browser.find(f"[data-span='{span['spanID']}'] [data-field='{name}']")
            )
            for name in ("span-name", "span-duration")
        }
        assert cells["span-name"] == span["operationName"]
        assert cells["span-duration"] == f"{span['duration'] / 1000:.1f}"
        shown = {
            browser.attribute(a, "data-key"): browser.text(a)
            for a in browser.find_all(f"[data-span='{span['spanID']}'] [data-field='span-attr']")
        }
        for tag in span["tags"]:
            value = str(tag["value"]).lower() if tag["type"] == "bool" else str(tag["value"])
            assert shown[tag["key"]] == f"{tag['key']}={value}"
    reloads = browser.find_all("[data-field='span'] [data-key='flywheel.reload.outcome']")
    assert reloads
    assert all(browser.text(r) == "flywheel.reload.outcome=serving" for r in reloads)
    services = {browser.text(s) for s in browser.find_all("[data-field='span-service']")}
    assert {"dspy-flywheel-trigger", "dspy-flywheel-optimizer", "dspy-flywheel-worker"} <= services
    # The decision's links lead to the calls' own traces, drawn the same way.
    link = browser.find("[data-field='span-link']")
    browser.click(link)
    assert "/dashboard/traces/" in browser.url
    assert observed.trace_id not in browser.url
    assert browser.find_all("[data-field='span-name']"), "a linked call's trace page is empty"
    browser.go(f"{observed.api}/dashboard/traces/{observed.trace_id}")
    _screenshot(browser, shots, "dashboard_trace.png")


def test_trace_api_answers_why_not(observed: Observed) -> None:
    """The JSON twin of the page: 400 for a malformed id, 404 for one Jaeger does not know."""
    for trace_id, status in (("not-a-trace", 400), ("0" * 31 + "1", 404)):
        reply = httpx.get(
            f"{observed.api}/api/v1/dashboard/traces/{trace_id}",
            headers={"Authorization": f"Bearer {observed.viewer_token}"},
            timeout=10,
        )
        if status == 404 and not JAEGER:
            status = 503
        assert reply.status_code == status, reply.text
        assert reply.json()["problem"]
