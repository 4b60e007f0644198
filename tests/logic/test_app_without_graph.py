"""The HTTP surface when no graph tier answers: errors, headers, probes, metrics.

The graph address is a loopback port nobody listens on, so every graph call
meets a real connection refusal.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.ports import free_port

from logic_service.app import create_app
from logic_service.features import ctr
from logic_service.settings import LogicSettings


@pytest.fixture(scope="module", params=["grpc", "rest"])
def client(request, tmp_path_factory) -> TestClient:
    port = free_port()
    settings = LogicSettings(
        graph={
            "protocol": request.param,
            "grpc_address": f"127.0.0.1:{port}",
            "rest_url": f"http://127.0.0.1:{port}",
            "deadline_ms": 500,
        },
        model_repository=tmp_path_factory.mktemp("models"),
        storage={"database_url": f"sqlite:///{tmp_path_factory.mktemp('db') / 'tierkit.db'}"},
        limits={"max_body_bytes": 2000, "max_records": 3},
        status_refresh_s=0.2,
    )
    with TestClient(create_app(settings, configure_logs=False)) as test_client:
        yield test_client


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]["message"]


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    message = _error(client.get("/readyz"), 503, "not_ready")
    assert "graph tier unreachable" in message


def test_graph_down_is_503_with_retry_after(client: TestClient) -> None:
    response = client.post("/v1/models/ctr/predict", json=ctr.EXAMPLE_REQUEST)
    _error(response, 503, "unavailable")
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        (
            {"content": b"<a/>", "headers": {"content-type": "application/xml"}},
            415,
            "unsupported_media_type",
        ),
        (
            {
                "content": b"[" + b"1," * 2000 + b"1]",
                "headers": {"content-type": "application/json"},
            },
            413,
            "payload_too_large",
        ),
    ],
)
def test_bodies_that_are_not_usable_json(client: TestClient, kwargs, status, code) -> None:
    _error(client.post("/v1/models/ctr/predict", **kwargs), status, code)


def test_unknown_model_route_and_method(client: TestClient) -> None:
    assert "unknown model 'nope'" in _error(
        client.post("/v1/models/nope/predict", json={}), 404, "unknown_model"
    )
    _error(client.get("/v2/nothing"), 404, "not_found")
    _error(client.get("/v1/models/ctr/predict"), 405, "method_not_allowed")


def test_request_id_is_echoed_or_made_and_timing_is_reported(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad\tid"}).headers["x-request-id"]
    assert made != "bad\tid" and len(made) == 32
    timing = response.headers["server-timing"]
    assert [part.split(";")[0] for part in timing.split(", ")] == [
        "validate",
        "features",
        "graph",
        "total",
    ]


def test_metrics_count_requests_by_model_version_status(client: TestClient) -> None:
    client.post("/v1/models/ctr/predict", json=ctr.EXAMPLE_REQUEST)
    text = client.get("/metrics").text
    assert 'tierkit_requests_total{arm="",model="ctr",status="503",version=""}' in text
    assert "tierkit_request_latency_seconds_bucket" in text


def test_docs_describe_predict_with_the_demo_example(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    predict = spec["paths"]["/v1/models/{name}/predict"]["post"]
    examples = predict["requestBody"]["content"]["application/json"]["examples"]
    assert examples["ctr"]["value"] == ctr.EXAMPLE_REQUEST
    assert "PredictResponse" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_grpc_client_does_not_import_tensorflow() -> None:
    code = "import sys, logic_service.graph.grpc_client; print('tensorflow.python' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.stdout.strip() == "False", result.stderr
