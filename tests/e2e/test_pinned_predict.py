"""A caller pins the version or the label, on both real tiers (the ``logic`` fixture: gRPC, REST).

``labelled`` serves versions 1 and 2 with ``stable`` on 1, so routed requests
go to 1 and a pin to 2 must bypass that; ``ctr`` checks that a pinned version
runs its own feature processing (same score as the SavedModel and
transformer in-process). Pinned requests are logged, counted and shown with
arm and strategy ``pinned``.
"""

from __future__ import annotations

import sqlite3

import httpx
from support.ctr_artifacts import synthetic_records
from support.ctr_versions import reference_scores
from support.graph_tier import GraphTier
from support.waiting import wait_until

from logic_service.features import ctr

from .stack import LABELLED_MODEL, MODEL, LogicTier

X = [1.0, 2.0, 4.0]


def _post(logic: LogicTier, path: str, body: object) -> httpx.Response:
    return httpx.post(logic.url + path, json=body, timeout=15)


def test_a_pinned_version_answers_even_where_routing_would_not(logic: LogicTier) -> None:
    routed = _post(logic, f"/v1/models/{LABELLED_MODEL}/predict", {"x": X})
    assert routed.status_code == 200 and routed.json()["version"] == 1  # stable
    for version in (2, 1):
        pinned = _post(logic, f"/v1/models/{LABELLED_MODEL}/versions/{version}/predict", {"x": X})
        assert pinned.status_code == 200, pinned.text
        assert pinned.json()["version"] == version
        assert pinned.json()["prediction"]["y"] == sum(X)
    by_label = _post(logic, f"/v1/models/{LABELLED_MODEL}/labels/stable/predict", {"x": X})
    assert by_label.status_code == 200 and by_label.json()["version"] == 1


def test_a_pinned_version_runs_its_own_features(logic: LogicTier, graph: GraphTier) -> None:
    version = max(graph.available_versions(MODEL))
    records = synthetic_records(5, seed=21)
    answer = _post(logic, f"/v1/models/{MODEL}/versions/{version}/predict", {"records": records})
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == version
    expected = reference_scores(graph.repo / MODEL / str(version), records)
    got = [p["score"] for p in answer.json()["predictions"]]
    assert max(abs(g - float(e)) for g, e in zip(got, expected, strict=True)) <= 1e-5
    bad = _post(logic, f"/v1/models/{MODEL}/versions/{version}/predict", {"userId": 1})
    assert bad.status_code == 422 and "birthday: is required" in bad.json()["error"]["message"]


def test_what_is_not_loaded_is_404_naming_what_is(logic: LogicTier) -> None:
    for path, code, start in (
        (f"/v1/models/{LABELLED_MODEL}/versions/3/predict", "version_not_found", "version 3 is"),
        (f"/v1/models/{LABELLED_MODEL}/labels/nightly/predict", "label_not_found", "has no label"),
    ):
        response = _post(logic, path, {"x": X})
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert error["code"] == code and error["request_id"] == response.headers["x-request-id"]
        assert start in error["message"]
        assert "served versions: 1, 2; labels: stable=1;" in error["message"], error["message"]
    bad = _post(logic, f"/v1/models/{LABELLED_MODEL}/versions/two/predict", {"x": X})
    assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("path.version:")


def test_pinned_requests_are_logged_counted_and_shown_as_pinned(logic: LogicTier) -> None:
    answer = _post(logic, f"/v1/models/{LABELLED_MODEL}/versions/2/predict", {"x": X})
    request_id = answer.json()["request_id"]
    database = logic.log_dir.parent / f"tierkit-{logic.protocol}-1.db"

    def logged() -> list[tuple]:
        with sqlite3.connect(database) as connection:
            return connection.execute(
                "SELECT version, arm, strategy, api_version, status FROM predictions "
                "WHERE request_id = ?",
                (request_id,),
            ).fetchall()

    assert wait_until(logged, 10, "the pinned request in the prediction log") == [
        (2, "pinned", "pinned", "v1", 200)
    ]
    metrics = httpx.get(f"{logic.url}/metrics", timeout=5).text
    labels = f'arm="pinned",model="{LABELLED_MODEL}",status="200",version="2"'
    assert f"tierkit_requests_total{{{labels}}}" in metrics
    summary = httpx.get(
        f"{logic.url}/dashboard/api/summary?model={LABELLED_MODEL}", timeout=5
    ).json()
    traffic = summary["models"][0]["apis"]["traffic"]
    row = next(t for t in traffic if t["api_version"] == "v1" and t["version"] == 2)
    assert row["pinned"] >= 1


def test_openapi_documents_the_pinned_paths(logic: LogicTier) -> None:
    paths = httpx.get(f"{logic.url}/openapi.json", timeout=5).json()["paths"]
    for tail in ("versions/{version}/predict", "labels/{label}/predict"):
        operation = paths[f"/v1/models/{{name}}/{tail}"]["post"]
        assert "rollout is bypassed" in operation["summary"]
        assert "404" in operation["responses"]
        examples = operation["requestBody"]["content"]["application/json"]["examples"]
        assert examples["ctr"]["value"] == ctr.EXAMPLE_REQUEST  # as on the routed path
