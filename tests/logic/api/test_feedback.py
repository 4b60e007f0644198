"""``POST /v1/feedback`` against a real SQLite log: joins, last write wins, errors.

Predictions are put in the app's own recorder (as the predict path does),
with a flush interval far longer than the test, so every join also proves
that feedback flushes what is still queued instead of answering 404.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from logic_service.app import create_app
from logic_service.observability.request_context import RequestContext
from logic_service.services import services_of
from logic_service.settings import LogicSettings
from logic_service.storage.prediction_log import predictions


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    tmp = tmp_path_factory.mktemp("feedback")
    settings = LogicSettings(
        graph={"grpc_address": "127.0.0.1:9", "deadline_ms": 200},
        model_repository=tmp / "models",
        storage={
            "database_url": f"sqlite:///{tmp / 'log.db'}",
            "flush_interval_ms": 600_000,
            "feedback_wait_ms": 100,
        },
        status_refresh_s=5,
    )
    with TestClient(create_app(settings, configure_logs=False)) as test_client:
        yield test_client


def _predicted(client: TestClient, request_id: str, records: int = 1, version: int = 2) -> None:
    context = RequestContext(request_id)
    context.model, context.version = "ctr", version
    if records == 1:
        body, answer = {"userId": 1}, {"prediction": {"score": 0.4}}
    else:
        body = {"records": [{"userId": i} for i in range(records)]}
        answer = {"predictions": [{"score": i / records} for i in range(records)]}
    assert services_of(client.app).prediction_log.record(context, body, answer, 200)


def _stored(client: TestClient, request_id: str) -> list:
    with services_of(client.app).database.connect() as connection:
        return connection.execute(
            sa.select(predictions)
            .where(predictions.c.request_id == request_id)
            .order_by(predictions.c.record_index)
        ).all()


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    return error["message"]


def test_feedback_joins_a_prediction_not_yet_flushed(client: TestClient) -> None:
    _predicted(client, "fresh-1")
    response = client.post("/v1/feedback", json={"request_id": "fresh-1", "label": 1})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "request_id": "fresh-1",
        "index": 0,
        "model": "ctr",
        "version": 2,
        "label": 1.0,
        "reward": None,
        "updates": 1,
    }
    (row,) = _stored(client, "fresh-1")
    assert (row.label, row.feedback_updates) == (1.0, 1)
    assert row.feedback_at is not None


def test_repeated_and_late_feedback_last_write_wins_and_is_counted(client: TestClient) -> None:
    _predicted(client, "again")
    for label in (1, 0, 1, 0):
        response = client.post("/v1/feedback", json={"request_id": "again", "label": label})
        assert response.status_code == 200
    assert response.json()["updates"] == 4
    (row,) = _stored(client, "again")
    assert (row.label, row.feedback_updates) == (0.0, 4)
    first_at = row.feedback_at
    client.post("/v1/feedback", json={"request_id": "again", "reward": 2.5})
    (row,) = _stored(client, "again")
    assert (row.label, row.reward, row.feedback_updates) == (None, 2.5, 5)
    assert row.feedback_at >= first_at


def test_batch_requests_join_by_index(client: TestClient) -> None:
    _predicted(client, "batch", records=3)
    message = _error(
        client.post("/v1/feedback", json={"request_id": "batch", "label": 1}), 422, "invalid_input"
    )
    assert message.startswith("index: required") and "0..2" in message
    message = _error(
        client.post("/v1/feedback", json={"request_id": "batch", "index": 3, "label": 1}),
        422,
        "invalid_input",
    )
    assert message.startswith("index: 3 out of range")
    response = client.post("/v1/feedback", json={"request_id": "batch", "index": 2, "label": 0.75})
    assert response.status_code == 200 and response.json()["index"] == 2
    assert [(r.record_index, r.label) for r in _stored(client, "batch")] == [
        (0, None),
        (1, None),
        (2, 0.75),
    ]


def test_unknown_request_id_is_404(client: TestClient) -> None:
    message = _error(
        client.post("/v1/feedback", json={"request_id": "never-seen", "label": 1}),
        404,
        "not_found",
    )
    assert "never-seen" in message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"label": 1}, "request_id"),
        ({"request_id": "", "label": 1}, "request_id"),
        ({"request_id": "x"}, "label"),
        ({"request_id": "x", "label": "yes"}, "label"),
        ({"request_id": "x", "label": True}, "label"),
        ({"request_id": "x", "reward": [1]}, "reward"),
        ({"request_id": "x", "label": 1, "index": -1}, "index"),
        ({"request_id": "x", "label": 1, "colour": "red"}, "colour"),
        ([1, 2], "<body>"),
    ],
)
def test_bad_feedback_is_422_naming_the_field(client: TestClient, body, field: str) -> None:
    message = _error(client.post("/v1/feedback", json=body), 422, "invalid_input")
    assert message.startswith(f"{field}:"), message


def test_feedback_body_rules_match_predict(client: TestClient) -> None:
    _error(client.post("/v1/feedback", content=b"{nope"), 400, "invalid_json")
    response = client.post("/v1/feedback", content=b"x", headers={"content-type": "text/plain"})
    _error(response, 415, "unsupported_media_type")


def test_feedback_and_evaluation_log_lines_name_model_and_version_and_are_not_counted(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    _predicted(client, "logged", version=7)
    caplog.set_level("INFO", logger="logic_service.requests")
    metrics = services_of(client.app).metrics
    before = metrics.registry.get_sample_value(
        "tierkit_requests_total", {"model": "ctr", "version": "7", "arm": "", "status": "200"}
    )
    assert client.post("/v1/feedback", json={"request_id": "logged", "label": 1}).status_code == 200
    assert client.get("/v1/models/ctr/evaluation?window=1h").status_code == 200
    lines = [r.getMessage() for r in caplog.records if "status=200" in r.getMessage()]
    assert any(line.startswith("POST /v1/feedback model=ctr version=7 ") for line in lines)
    assert any(
        line.startswith("GET /v1/models/ctr/evaluation model=ctr version=all ") for line in lines
    )
    after = metrics.registry.get_sample_value(
        "tierkit_requests_total", {"model": "ctr", "version": "7", "arm": "", "status": "200"}
    )
    assert after == before  # a label is not a prediction
