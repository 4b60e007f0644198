"""The dashboard behind API keys, in a real browser (Debian's chromium driven by Playwright).

With ``security.api_keys`` set, ``/dashboard`` answers 401 with an HTTP Basic
challenge, so a browser asks for the key (user name ignored, key as password)
and then sends it with the page's feed requests too. Here a real logic tier
(its own process, no graph tier: the feed still answers, "not ready") and
chromium with and without those credentials.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.ports import free_port
from support.processes import Process
from support.waiting import wait_until

from .test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

READER = "dashboard-reader-key-0123"
PREDICTOR = "predict-only-key-0123456"


@pytest.fixture(scope="module")
def browser_path() -> Path:
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: scripts/test installs it")
    return CHROMIUM


@pytest.fixture(scope="module")
def secured_url(tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("dashboard-auth")
    port = free_port()
    keys = [{"key": READER, "scopes": ["read"]}, {"key": PREDICTOR, "scopes": ["predict"]}]
    tier = Process(
        [sys.executable, "-m", "logic_service", "serve", "--port", str(port)],
        tmp / "logic.out",
        env={
            "TIERKIT_SECURITY__API_KEYS": json.dumps(keys),
            "TIERKIT_GRAPH__GRPC_ADDRESS": f"127.0.0.1:{free_port()}",  # nobody listens
            "TIERKIT_MODEL_REPOSITORY": str(tmp / "models"),
            "TIERKIT_STORAGE__DATABASE_URL": f"sqlite:///{tmp / 'log.db'}",
            "TIERKIT_LOG__DIR": str(tmp / "logs"),
            "TIERKIT_STARTUP_WAIT_S": "0",
        },
    )
    tier.start()
    url = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(listening, 120, f"the logic tier on {url}:\n{tier.tail()}")
        yield url
    finally:
        tier.stop()


def test_a_browser_given_a_read_key_sees_the_dashboard_and_its_feed(
    secured_url: str, browser_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # without credentials: the challenge that makes a browser ask (headless chromium,
    # with no one to ask, fails the navigation with ERR_INVALID_AUTH_CREDENTIALS)
    refused = httpx.get(f"{secured_url}/dashboard", timeout=10)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith('Basic realm="tierkit"')
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(browser_path), args=CHROMIUM_ARGS)
        try:
            wrong = browser.new_context(http_credentials={"username": "ops", "password": PREDICTOR})
            assert wrong.new_page().goto(f"{secured_url}/dashboard").status == 403

            reader = browser.new_context(http_credentials={"username": "ops", "password": READER})
            page = reader.new_page()
            feeds: list[int] = []
            page.on(
                "response",
                lambda r: feeds.append(r.status) if "/dashboard/api/summary" in r.url else None,
            )
            assert page.goto(f"{secured_url}/dashboard").status == 200
            # the feed answered through the same credentials: the page shows its state
            expect(page.locator("#status")).to_contain_text("not ready", timeout=20_000)
            assert feeds and set(feeds) == {200}
        finally:
            browser.close()
