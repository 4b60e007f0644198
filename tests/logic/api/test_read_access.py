"""One rule for who may read the prediction log's numbers, endpoint by endpoint.

The dashboard page, its JSON feed and the evaluation endpoint need the ``read``
scope: a plain API key, a key listing ``read``, or the admin token. Predict and
feedback need their own scopes. With no key configured everything is open (the
local default). A real app on a real SQLite file; no graph tier answers, which
the read endpoints do not need.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.ports import free_port

from logic_service.app import create_app
from logic_service.features import ctr
from logic_service.settings import LogicSettings

FULL = "full-key-0123456789"
READER = "reader-key-0123456789"
PREDICTOR = "predict-key-0123456789"
ADMIN = "admin-token-0123456789"
METRICS = "metrics-token-0123456789"
READS = ("/dashboard", "/dashboard/api/summary", "/v1/models/ctr/evaluation?window=1h")


def _app(tmp_path: Path, keys: list, **security) -> Iterator[TestClient]:
    settings = LogicSettings(
        graph={"grpc_address": f"127.0.0.1:{free_port()}", "deadline_ms": 300},
        model_repository=tmp_path / "models",
        admin_token=ADMIN,
        security={"api_keys": keys} | security,
        storage={"database_url": f"sqlite:///{tmp_path / 'log.db'}"},
    )
    with TestClient(create_app(settings, configure_logs=False)) as client:
        yield client


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[TestClient]:
    keys = [
        FULL,
        {"key": READER, "scopes": ["read"]},
        {"key": PREDICTOR, "scopes": ["predict", "feedback"]},
    ]
    token_file = tmp_path_factory.mktemp("secrets") / "metrics-token"
    token_file.write_text(METRICS + "\n")  # as a compose or Kubernetes secret arrives
    yield from _app(tmp_path_factory.mktemp("secured"), keys, metrics_token_file=str(token_file))


@pytest.fixture(scope="module")
def open_app(tmp_path_factory) -> Iterator[TestClient]:
    yield from _app(tmp_path_factory.mktemp("open"), [])


def _basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"viewer:{secret}".encode()).decode()}


@pytest.mark.parametrize("path", READS)
def test_without_keys_configured_every_read_is_open(open_app: TestClient, path: str) -> None:
    assert open_app.get(path).status_code == 200


@pytest.mark.parametrize("path", READS)
def test_a_read_without_a_credential_is_refused(secured: TestClient, path: str) -> None:
    answer = secured.get(path)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    expected = "Bearer" if path.startswith("/v1/") else 'Basic realm="tierkit", charset="UTF-8"'
    assert answer.headers["www-authenticate"] == expected  # a browser asks for the key


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {FULL}"},
        {"X-API-Key": READER},
        {"Authorization": f"Bearer {ADMIN}"},
        _basic(READER),
        _basic(ADMIN),
    ],
    ids=["full-key", "read-key", "admin-token", "basic-read-key", "basic-admin-token"],
)
def test_a_key_with_read_or_the_admin_token_reads(
    secured: TestClient, path: str, headers: dict[str, str]
) -> None:
    assert secured.get(path, headers=headers).status_code == 200


@pytest.mark.parametrize("path", READS)
def test_a_key_without_read_is_forbidden_and_a_wrong_one_unknown(
    secured: TestClient, path: str
) -> None:
    forbidden = secured.get(path, headers={"X-API-Key": PREDICTOR})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    assert "read" in forbidden.json()["error"]["message"]
    for wrong in ("nope", READER + "x", _basic("nope")["Authorization"], "Basic !!!"):
        headers = {"Authorization": wrong} if wrong.startswith("Basic") else {"X-API-Key": wrong}
        assert secured.get(path, headers=headers).status_code == 401


def test_predict_and_feedback_keep_their_own_scopes(secured: TestClient) -> None:
    predict = "/v1/models/ctr/predict"
    # a read-only key and the admin token may not predict or send feedback
    for secret in (READER, ADMIN):
        headers = {"X-API-Key": secret}
        refused = secured.post(predict, json=ctr.EXAMPLE_REQUEST, headers=headers)
        assert refused.status_code == (403 if secret == READER else 401)
        feedback = secured.post(
            "/v1/feedback", json={"request_id": "x", "label": 1}, headers=headers
        )
        assert feedback.status_code == (403 if secret == READER else 401)
    # the predict key gets past authentication (the graph tier is down: 503)
    answer = secured.post(predict, json=ctr.EXAMPLE_REQUEST, headers={"X-API-Key": PREDICTOR})
    assert answer.status_code == 503
    feedback = secured.post(
        "/v1/feedback", json={"request_id": "unknown", "label": 1}, headers={"X-API-Key": FULL}
    )
    assert feedback.status_code == 404  # authenticated; the id is not in the log


def test_the_page_assets_hold_no_data_and_stay_open(secured: TestClient) -> None:
    assert secured.get("/dashboard/static/dashboard.js").status_code == 200
    assert secured.get("/healthz").status_code == 200


def test_metrics_ask_for_their_own_token_when_one_is_set(
    secured: TestClient, open_app: TestClient
) -> None:
    assert open_app.get("/metrics").status_code == 200  # no token set: open to the scraper
    for headers in ({}, {"Authorization": f"Bearer {FULL}"}, {"Authorization": f"Bearer {ADMIN}"}):
        refused = secured.get("/metrics", headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    scraped = secured.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"})
    assert scraped.status_code == 200
    assert "tierkit_prediction_log_spilled_total" in scraped.text
    # the token opens nothing else
    assert secured.get("/dashboard/api/summary", headers={"X-API-Key": METRICS}).status_code == 401
