"""The dashboard in a real browser: Debian's chromium driven by Playwright, on the real stack.

The session's graph tier, and a logic tier of its own with an admin token and
a canary (with a shadow) on the two-version model, under light load from a
background thread. Checks that both charts draw points, that the Promote and
Roll back buttons move the rollout (read back through the admin API, not the
page), and saves a screenshot (README's, with TIERKIT_UPDATE_SCREENSHOT=1).

Never runs ``playwright install``: the browser is /usr/bin/chromium (apt
package ``chromium``, installed by scripts/lib/apt_tool.sh via scripts/test); without it or
the ``playwright`` package the test skips and says which is missing.
"""

from __future__ import annotations

import os
import random
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.graph_tier import GraphTier
from support.ports import free_port
from support.processes import ROOT, Process
from support.waiting import wait_until

from logic_service.features import ctr

from .stack import LABELLED_MODEL, MODEL, MODELS, LogicTier

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The screenshot README shows is refreshed only when asked
# (TIERKIT_UPDATE_SCREENSHOT=1 ./scripts/test -k dashboard_browser), so a test
# run never edits a tracked file; otherwise it goes to the test's tmp dir.
README_SCREENSHOT = ROOT / "docs" / "img" / "dashboard.png"
TOKEN = "browser-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CANARY = {
    "strategy": "canary",
    "baseline": "1",
    "candidate": "2",
    "stages": [10, 50, 100],
    "shadow": {"target": "2", "output": "y", "threshold": 5.0},
}


@pytest.fixture(scope="module")
def browser_path() -> Path:
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: scripts/test installs it")
    return CHROMIUM


@pytest.fixture(scope="module")
def operated(graph: GraphTier, stack_dir: Path, browser_path: Path) -> Iterator[LogicTier]:
    """A logic tier with admin API and prediction log, a canary set, and light load on it."""
    port = free_port()
    config = stack_dir / "logic-dashboard.yaml"
    ordered = [LABELLED_MODEL, MODEL] + [m for m in MODELS if m not in (LABELLED_MODEL, MODEL)]
    config.write_text(
        f"port: {port}\n"
        f"model_repository: {graph.repo}\n"
        f"models: [{', '.join(f'{{name: {m}}}' for m in ordered)}]\n"
        f"admin_token: {TOKEN}\n"
        "rollout_refresh_s: 0.2\n"
        "graph:\n"
        f"  grpc_address: 127.0.0.1:{graph.grpc_port}\n"
        f"  rest_url: {graph.rest_url}\n"
        f"log:\n  dir: {stack_dir / 'logs-dashboard'}\n"
        "storage:\n"
        f"  database_url: sqlite:///{stack_dir / 'dashboard' / 'log.db'}\n"
        "  flush_interval_ms: 100\n"
    )
    process = Process(
        [sys.executable, "-m", "logic_service", "serve", "--config", str(config)],
        stack_dir / "logic-dashboard.out",
        env={"PYTHONPATH": str(ROOT / "tests")},
    )
    process.start()
    tier = LogicTier(process, f"http://127.0.0.1:{port}", "grpc", stack_dir / "logs-dashboard")
    stop = threading.Event()
    try:
        wait_until(tier.ready, 90, "dashboard logic tier /readyz")
        put = httpx.put(f"{tier.url}/admin/rollouts/{LABELLED_MODEL}", json=CANARY, headers=AUTH)
        assert put.status_code == 200, put.text
        load = threading.Thread(target=_light_load, args=(tier.url, stop), daemon=True)
        load.start()
        yield tier
    finally:
        stop.set()
        process.stop()


def _light_load(url: str, stop: threading.Event) -> None:
    """About 30 predictions a second over both models; ``ctr``'s get 0/1 click feedback.

    (``labelled`` answers two outputs, y and z: no single score to evaluate.)
    """
    rng = random.Random(6)
    answered = 0
    with httpx.Client(base_url=url, timeout=5) as client:
        while not stop.is_set():
            x = [rng.uniform(0, 3) for _ in range(3)]
            try:
                client.post(f"/v1/models/{LABELLED_MODEL}/predict", json={"x": x})
                if answered % 4 == 0:  # a caller pinning version 2, past the canary
                    client.post(f"/v1/models/{LABELLED_MODEL}/versions/2/predict", json={"x": x})
                answer = client.post(f"/v1/models/{MODEL}/predict", json=ctr.EXAMPLE_REQUEST)
                if answer.status_code == 200:
                    # every third answer is a click: both classes early, so AUC is defined
                    click = 1 if answered % 3 == 0 else 0
                    answered += 1
                    client.post("/v1/feedback", json={**_id(answer), "label": click})
            except httpx.HTTPError:
                pass  # the test's assertions say what went wrong; the load just goes on
            stop.wait(0.05)


def _id(answer: httpx.Response) -> dict[str, str]:
    return {"request_id": answer.json()["request_id"]}


def _share(tier: LogicTier) -> float:
    rollout = httpx.get(f"{tier.url}/admin/rollouts/{LABELLED_MODEL}", headers=AUTH).json()
    stages = rollout["spec"]["stages"]
    canary = rollout["state"]["canary"]
    if canary["status"] == "rolled_back":
        return 0.0
    return stages[min(canary["stage"], len(stages) - 1)]


def test_dashboard_shows_live_data_and_drives_the_rollout(
    operated: LogicTier, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    update = os.environ.get("TIERKIT_UPDATE_SCREENSHOT") == "1"
    screenshot = README_SCREENSHOT if update else tmp_path / "dashboard.png"

    # both versions have answered before the page opens: the charts have something to draw
    def both_versions_logged() -> bool:
        summary = httpx.get(f"{operated.url}/dashboard/api/summary", timeout=5).json()
        model = next(m for m in summary["models"] if m["name"] == LABELLED_MODEL)
        return {s["version"] for s in model["live"]} == {1, 2}

    wait_until(both_versions_logged, 30, "requests on versions 1 and 2 in the prediction log")

    def half_a_minute_of_traffic() -> bool:  # so the charts (30 s shown) are not mostly empty
        feed = httpx.get(f"{operated.url}/dashboard/api/summary?history_s=30", timeout=5).json()
        model = next(m for m in feed["models"] if m["name"] == LABELLED_MODEL)
        # three 10-second buckets (the log's aggregates): traffic in two of them
        return sum(1 for n in model["history"]["versions"]["1"] if n) >= 2

    wait_until(half_a_minute_of_traffic, 30, "traffic in two of the chart's 10 s buckets")

    def ctr_evaluated() -> bool:  # clicks and non-clicks joined: the page can show an AUC
        summary = httpx.get(f"{operated.url}/dashboard/api/summary", timeout=5).json()
        model = next(m for m in summary["models"] if m["name"] == MODEL)
        return any(v.get("auc") is not None for v in model["evaluation"].get("versions", []))

    wait_until(ctr_evaluated, 30, "an AUC for ctr from click feedback")
    assert _share(operated) == 10

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{operated.url}/dashboard?history=30")  # a short test fills half a minute
            section = page.locator(f'section[data-model="{LABELLED_MODEL}"]')
            for chart in (".rps-chart", ".split-chart"):
                expect(section.locator(f"{chart}[data-points]")).to_have_count(1, timeout=10_000)
                points = int(section.locator(chart).get_attribute("data-points") or 0)
                assert points > 0, f"{chart} drew no points"
            expect(section.locator(".live table tr")).to_have_count(3)  # header + v1 + v2
            # the graph tier's own counters, or why there are none (issue 28)
            expect(section.locator(".graph-metrics")).to_contain_text(
                re.compile(r"req/s|--monitoring_config_file"), timeout=10_000
            )
            # requests per API and version, pinned ones apart: v2 was also called pinned
            pinned_v2 = section.locator('.apis tr[data-api="v1"][data-version="2"]')
            expect(pinned_v2).to_have_count(1, timeout=10_000)
            assert int(pinned_v2.get_attribute("data-pinned") or 0) > 0
            expect(section.locator(".apis .api-list")).to_contain_text("serving")
            # ctr's click feedback reached its online evaluation: accuracy and AUC are numbers
            ctr_row = page.locator(f'section[data-model="{MODEL}"] .evaluation tr:nth-child(2)')
            accuracy, auc = ctr_row.locator("td:nth-child(7)"), ctr_row.locator("td:nth-child(8)")
            expect(accuracy).to_have_text(re.compile(r"^\d+\.\d %$"), timeout=10_000)
            expect(auc).to_have_text(re.compile(r"^[01]\.\d{3}$"), timeout=10_000)

            # without a token the buttons stay disabled
            promote = section.locator('button[data-action="promote"]')
            expect(promote).to_be_disabled()
            page.fill("#admin-token", TOKEN)
            page.click('#token-form button[type="submit"]')
            expect(promote).to_be_enabled()

            promote.click()
            expect(section).to_have_attribute("data-canary-share", "50", timeout=10_000)
            assert _share(operated) == 50
            expect(section.locator(".shadow table")).to_have_count(1, timeout=10_000)
            page.wait_for_timeout(2500)  # one more refresh: the chart shows the new split
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))

            section.locator('button[data-action="rollback"]').click()
            expect(section).to_have_attribute("data-canary-share", "0", timeout=10_000)
            assert _share(operated) == 0
            expect(section.locator(".history li").first).to_contain_text("rollback")
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
    # the same traffic in Prometheus terms: requests by arm, the stage after the rollback
    metrics = httpx.get(f"{operated.url}/metrics").text
    for arm in ("baseline", "candidate"):
        assert f'tierkit_requests_total{{arm="{arm}",model="{LABELLED_MODEL}"' in metrics
    assert f'tierkit_rollout_stage{{model="{LABELLED_MODEL}",strategy="canary"}} -1.0' in metrics
