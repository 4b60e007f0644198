"""The API-versioned and pinned predict paths when no graph tier answers: errors, headers, docs.

A real app on a real SQLite prediction log; the graph address is a loopback
port nobody listens on, so no version is ever loaded and every path must
still answer in the error shape, naming what is (not) served. The
behaviour with versions loaded is in tests/e2e/test_api_versions.py and
test_pinned_predict.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.ports import free_port

from logic_service.app import create_app
from logic_service.features import ctr
from logic_service.settings import LogicSettings

TOKEN = "api-routes-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
V1_HEADERS = {
    "deprecation": "@1796083200",  # 2026-12-01T00:00:00Z
    "sunset": "Wed, 30 Jun 2027 00:00:00 GMT",
    "link": '</v2/models/ctr/predict>; rel="successor-version"',
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    port = free_port()  # nobody listens there: no graph tier
    tmp = tmp_path_factory.mktemp("api-routes")
    settings = LogicSettings(
        graph={"grpc_address": f"127.0.0.1:{port}", "deadline_ms": 300},
        model_repository=tmp / "models",
        models=[
            {
                "name": "ctr",
                "api_versions": {
                    "v1": {"deprecated": "2026-12-01", "sunset": "2027-06-30", "successor": "v2"},
                    "v2": {},
                },
            }
        ],
        admin_token=TOKEN,
        storage={"database_url": f"sqlite:///{tmp / 'log.db'}", "flush_interval_ms": 50},
        rollout_refresh_s=0.2,
        api_retire_window_s=3600,
    )
    with TestClient(create_app(settings, configure_logs=False)) as test_client:
        yield test_client


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]["message"]


def test_nothing_loaded_is_503_naming_the_api_and_what_serves_each(client: TestClient) -> None:
    for api in ("v1", "v2"):
        response = client.post(f"/{api}/models/ctr/predict", json=ctr.EXAMPLE_REQUEST)
        message = _error(response, 503, "unavailable")
        assert message.startswith(
            f"model ctr: no version accepting API {api} is ready to serve "
            "(API v1: none loaded; API v2: none loaded)"
        ), message
        assert response.headers["retry-after"] == "1"


def test_a_deprecated_api_announces_it_on_every_answer_the_successor_does_not(
    client: TestClient,
) -> None:
    paths = (
        "/v1/models/ctr/predict",
        "/v1/models/ctr/versions/7/predict",
        "/v1/models/ctr/labels/stable/predict",
    )
    for path in paths:
        response = client.post(path, json=ctr.EXAMPLE_REQUEST)
        assert response.status_code >= 400  # nothing is loaded; the headers still come
        assert {k: response.headers.get(k) for k in V1_HEADERS} == V1_HEADERS, path
    v2 = client.post("/v2/models/ctr/predict", json=ctr.EXAMPLE_REQUEST)
    assert not {"deprecation", "sunset", "link"} & set(v2.headers)


def test_unknown_api_versions_and_bad_path_parameters_are_4xx_naming_them(
    client: TestClient,
) -> None:
    message = _error(client.post("/v3/models/ctr/predict", json={}), 404, "unknown_api_version")
    assert message == "model ctr serves no API v3 (API v1: none loaded; API v2: none loaded)"
    message = _error(client.post("/beta/models/ctr/predict", json={}), 404, "not_found")
    assert "'beta' is not an API version" in message
    message = _error(
        client.post("/v1/models/ctr/versions/abc/predict", json={}), 422, "invalid_input"
    )
    assert message.startswith("path.version: Input should be a valid integer")
    message = _error(
        client.post("/v2/models/ctr/versions/-1/predict", json={}), 422, "invalid_input"
    )
    assert message.startswith("path.version: Input should be greater than or equal to 0")
    message = _error(
        client.post("/v1/models/ctr/labels/a%20b/predict", json={}), 422, "invalid_input"
    )
    assert message.startswith("path.label: String should match pattern")
    _error(client.post("/v2/models/nope/versions/1/predict", json={}), 404, "unknown_model")


def test_a_pinned_version_that_is_not_loaded_is_404_naming_what_is_served(
    client: TestClient,
) -> None:
    message = _error(
        client.post("/v1/models/ctr/versions/7/predict", json=ctr.EXAMPLE_REQUEST),
        404,
        "version_not_found",
    )
    assert message == (
        "model ctr: version 7 is not loaded (served versions: none; labels: none; by API: "
        "API v1: none loaded; API v2: none loaded)"
    )


def test_metrics_count_requests_per_api_and_pinned_ones_under_their_arm(
    client: TestClient,
) -> None:
    client.post("/v2/models/ctr/predict", json=ctr.EXAMPLE_REQUEST)
    client.post("/v2/models/ctr/versions/7/predict", json=ctr.EXAMPLE_REQUEST)
    text = client.get("/metrics").text
    assert 'tierkit_api_requests_total{api="v2",model="ctr",status="503",version=""}' in text
    assert 'tierkit_api_requests_total{api="v2",model="ctr",status="404",version=""}' in text
    assert 'tierkit_requests_total{arm="pinned",model="ctr",status="404",version=""}' in text
    client.post("/v7/models/ctr/predict", json=ctr.EXAMPLE_REQUEST)  # an API nobody serves
    assert 'api="v7"' not in client.get("/metrics").text  # probing cannot grow the label set


def test_openapi_lists_the_paths_of_every_api_and_marks_the_deprecated_one(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    for api in ("v1", "v2"):
        for tail in ("predict", "versions/{version}/predict", "labels/{label}/predict"):
            operation = spec["paths"][f"/{api}/models/{{name}}/{tail}"]["post"]
            assert operation["tags"] == [f"API {api}"]
            assert operation.get("deprecated", False) is (api == "v1")
    v1 = spec["paths"]["/v1/models/{name}/predict"]["post"]
    assert (
        "deprecated for model ctr since 2026-12-01T00:00:00+00:00, sunset 2027-06-30"
        in (v1["description"])
    )
    # the shared handlers of the other APIs stay hidden: only concrete /vN paths are listed
    assert not [p for p in spec["paths"] if p.startswith("/{api_version}")]
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_retire_is_refused_while_the_api_has_traffic_and_a_retired_api_answers_410(
    client: TestClient,
) -> None:
    client.post("/v1/models/ctr/predict", json=ctr.EXAMPLE_REQUEST)  # a v1 caller, logged
    message = _error(client.post("/admin/apis/ctr/v1/retire", headers=AUTH), 409, "api_in_use")
    assert message.startswith("API v1 of model ctr had ")
    assert "within the last 3600 s (api_retire_window_s; the last at " in message

    # v2 never answered 200 but was called above: its callers count too
    _error(client.post("/admin/apis/ctr/v2/retire", headers=AUTH), 409, "api_in_use")
    _error(client.post("/admin/apis/ctr/v9/retire", headers=AUTH), 404, "unknown_api_version")
    _error(client.post("/admin/apis/ctr/2/retire", headers=AUTH), 422, "invalid_input")
    assert client.post("/admin/apis/ctr/v1/retire").status_code == 401


def test_a_retired_api_answers_410_until_restored(tmp_path: Path) -> None:
    """A fresh app and database: an API nobody called is retired at once."""
    port = free_port()  # nobody listens there: no graph tier
    settings = LogicSettings(
        graph={"grpc_address": f"127.0.0.1:{port}", "deadline_ms": 300},
        model_repository=tmp_path / "models",
        models=[{"name": "ctr", "api_versions": {"v1": {"successor": "v2"}, "v2": {}}}],
        admin_token=TOKEN,
        storage={"database_url": f"sqlite:///{tmp_path / 'log.db'}"},
    )
    with TestClient(create_app(settings, configure_logs=False)) as client:
        retired = client.post("/admin/apis/ctr/v1/retire", headers=AUTH, json={"reason": "v2 now"})
        assert retired.status_code == 200, retired.text
        v1 = next(a for a in retired.json()["apis"] if a["api_version"] == "v1")
        assert v1["retired"]["reason"] == "v2 now" and v1["requests_in_window"] == 0
        for path in ("/v1/models/ctr/predict", "/v1/models/ctr/versions/1/predict"):
            message = _error(client.post(path, json=ctr.EXAMPLE_REQUEST), 410, "api_retired")
            assert message.startswith("API v1 of model ctr was retired at ")
            assert message.endswith("(v2 now); call /v2/models/ctr/predict")
        assert client.post("/v2/models/ctr/predict", json={}).status_code == 503
        restored = client.post("/admin/apis/ctr/v1/restore", headers=AUTH)
        assert restored.status_code == 200, restored.text
        assert client.post("/v1/models/ctr/predict", json={}).status_code == 503


def test_the_cli_refuses_a_bad_api_version_before_calling_anything() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "logic_service", "api", "--token", "t", "retire", "ctr", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == "error: '2' is not an API version: use v1, v2, ...\n"
