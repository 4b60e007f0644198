"""Who gets in: API keys, the admin token, the rate limit and CORS on a real logic tier."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from support.fault_stack import CTR, EXAMPLE, PREDICT, Logic, Stack, start_logic_tier

KEYS = ("caller-key-0123456789", "second-key-9876543210")
ADMIN = "admin-token-abcdefghij"
ORIGIN = "https://dashboard.example"
SECURE_ENV = {
    "TIERKIT_SECURITY__API_KEYS": json.dumps(list(KEYS)),
    "TIERKIT_ADMIN_TOKEN": ADMIN,
    "TIERKIT_SECURITY__CORS_ORIGINS": json.dumps([ORIGIN]),
}


@pytest.fixture(scope="module")
def secure(stack: Stack) -> Iterator[Logic]:
    tier = start_logic_tier(stack, env=SECURE_ENV, name="secure")
    yield tier
    tier.stop()


@pytest.fixture(scope="module")
def limited(stack: Stack) -> Iterator[Logic]:
    env = SECURE_ENV | {
        "TIERKIT_SECURITY__RATE_LIMIT_PER_S": "1",
        "TIERKIT_SECURITY__RATE_LIMIT_BURST": "3",
    }
    tier = start_logic_tier(stack, env=env, name="limited")
    yield tier
    tier.stop()


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["request_id"]
    return error


def test_predict_feedback_and_evaluation_need_a_valid_key(secure: Logic) -> None:
    url = secure.url + PREDICT.format(CTR)
    missing = httpx.post(url, json=EXAMPLE, timeout=10)
    _error(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    for wrong in ("nope", KEYS[0][:-1], KEYS[0] + "x", ADMIN, "ключ".encode()):
        _error(
            httpx.post(url, json=EXAMPLE, headers={"X-API-Key": wrong}, timeout=10),
            401,
            "unauthorized",
        )
        bearer = {"Authorization": f"Bearer {wrong}"}
        _error(httpx.post(url, json=EXAMPLE, headers=bearer, timeout=10), 401, "unauthorized")
    _error(httpx.post(f"{secure.url}/v1/feedback", json={}, timeout=10), 401, "unauthorized")
    evaluation = f"{secure.url}/v1/models/{CTR}/evaluation?window=1h"
    _error(httpx.get(evaluation, timeout=10), 401, "unauthorized")
    # right keys, either header
    ok = httpx.post(url, json=EXAMPLE, headers={"Authorization": f"Bearer {KEYS[0]}"}, timeout=10)
    assert ok.status_code == 200, ok.text
    assert (
        httpx.post(url, json=EXAMPLE, headers={"X-API-Key": KEYS[1]}, timeout=10).status_code == 200
    )
    assert httpx.get(evaluation, headers={"X-API-Key": KEYS[0]}, timeout=10).status_code == 200
    # probes and scrapes stay open for the orchestrator
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(secure.url + path, timeout=10).status_code == 200


def test_keys_and_tokens_never_reach_logs_or_answers(secure: Logic) -> None:
    url = secure.url + PREDICT.format(CTR)
    answer = httpx.post(url, json=EXAMPLE, headers={"X-API-Key": KEYS[0]}, timeout=10)
    refused = httpx.post(url, json=EXAMPLE, headers={"X-API-Key": "guess-" + KEYS[1]}, timeout=10)
    admin = httpx.get(
        f"{secure.url}/admin/rollouts/{CTR}",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert (answer.status_code, refused.status_code, admin.status_code) == (200, 401, 200)
    logs = [p for p in secure.process.log_path.parent.rglob("*") if p.is_file()]
    logs = [p for p in logs if p.suffix in (".log", ".out") and "secure" in str(p)]
    assert logs
    for text in [p.read_text(errors="replace") for p in logs] + [answer.text, refused.text]:
        for secret in (*KEYS, ADMIN):
            assert secret not in text


def test_admin_endpoints_need_the_admin_token(secure: Logic, logic: Logic) -> None:
    url = f"{secure.url}/admin/rollouts/{CTR}"
    _error(httpx.get(url, timeout=10), 401, "unauthorized")
    for wrong in (KEYS[0], ADMIN[:-1], ADMIN + "x"):
        bearer = {"Authorization": f"Bearer {wrong}"}
        _error(httpx.get(url, headers=bearer, timeout=10), 401, "unauthorized")
    _error(httpx.get(url, headers={"X-API-Key": ADMIN}, timeout=10), 401, "unauthorized")
    ok = httpx.get(url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert ok.status_code == 200, ok.text
    # without a configured token the admin API is closed, not open
    closed = httpx.get(f"{logic.url}/admin/rollouts/{CTR}", headers={"Authorization": "Bearer x"})
    _error(closed, 403, "admin_disabled")


def test_each_key_has_its_own_rate_limit(limited: Logic) -> None:
    url = limited.url + PREDICT.format(CTR)
    first = [
        httpx.post(url, json=EXAMPLE, headers={"X-API-Key": KEYS[0]}, timeout=10) for _ in range(8)
    ]
    statuses = [r.status_code for r in first]
    assert statuses[:3] == [200, 200, 200], statuses  # the burst
    assert 429 in statuses and set(statuses) <= {200, 429}, statuses
    refused = next(r for r in first if r.status_code == 429)
    _error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    # another key is not slowed down by the first one's traffic
    other = httpx.post(url, json=EXAMPLE, headers={"X-API-Key": KEYS[1]}, timeout=10)
    assert other.status_code == 200, other.text


def test_cors_only_for_configured_origins(secure: Logic, logic: Logic) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    url = PREDICT.format(CTR)
    allowed = httpx.options(secure.url + url, headers=preflight, timeout=10)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.options(secure.url + url, headers=preflight | {"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    # default settings: no CORS headers at all, whatever the origin
    for method in ("GET", "OPTIONS"):
        response = httpx.request(method, logic.url + "/healthz", headers=preflight, timeout=10)
        assert not [h for h in response.headers if h.startswith("access-control-")], (
            response.headers
        )
