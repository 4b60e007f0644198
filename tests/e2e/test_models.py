"""Several models at once: each its own feature function and transformer, or tensors directly."""

from __future__ import annotations

import httpx
import numpy as np
from logic.ctr_artifacts import synthetic_records

from logic_service.features import ctr

from . import alt_features
from .conftest import (
    ALT_MODEL,
    LABELLED_MODEL,
    SCALAR_MODEL,
    TENSOR_MODEL,
    GraphTier,
    LogicTier,
)
from .ctr_versions import reference_scores


def _predict(logic: LogicTier, model: str, body: object) -> httpx.Response:
    return httpx.post(f"{logic.url}/v1/models/{model}/predict", json=body, timeout=10)


def test_each_model_runs_its_own_feature_function(logic: LogicTier, graph: GraphTier) -> None:
    records = synthetic_records(20, seed=11)
    response = _predict(logic, ALT_MODEL, {"records": records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"]) == (ALT_MODEL, 7)
    got = np.array([p["score"] for p in body["predictions"]])
    version_dir = graph.repo / ALT_MODEL / "7"
    np.testing.assert_allclose(
        got, reference_scores(version_dir, records, alt_features.derive), rtol=0, atol=1e-5
    )
    # The demo's function on the same graph gives other scores: the right one really ran.
    assert np.abs(got - reference_scores(version_dir, records, ctr.derive)).max() > 1e-3


def test_a_model_without_manifest_takes_tensors(logic: LogicTier) -> None:
    response = _predict(logic, TENSOR_MODEL, {"x": [1.0, 2.0, 3.5]})
    assert response.status_code == 200, response.text
    assert response.json()["prediction"] == {"y": 6.5, "z": [2.0, 1.5]}
    response = _predict(logic, TENSOR_MODEL, {"records": [{"x": [1, 1, 1]}, {"x": [0, 0, 2]}]})
    assert [p["y"] for p in response.json()["predictions"]] == [3.0, 2.0]


def test_bad_tensors_name_the_input(logic: LogicTier) -> None:
    cases = {
        "x: is required": {"y": [1, 2, 3]},
        "x: has shape [2] per record, the model wants [3]": {"x": [1, 2]},
        "x: cannot be read as DT_FLOAT": {"x": ["a", "b", "c"]},
    }
    for message, body in cases.items():
        response = _predict(logic, TENSOR_MODEL, body)
        assert response.status_code == 422, response.text
        assert message in response.json()["error"]["message"]


def test_the_stable_label_routes_before_the_newest_version(
    logic: LogicTier, graph: GraphTier
) -> None:
    assert graph.available_versions(LABELLED_MODEL) == [1, 2]
    response = _predict(logic, LABELLED_MODEL, {"x": [1.0, 2.0, 3.0]})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 1


def test_an_answer_that_cannot_be_split_per_record_is_502(logic: LogicTier) -> None:
    response = _predict(logic, SCALAR_MODEL, {"records": [{"x": [1, 2, 3]}, {"x": [4, 5, 6]}]})
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_graph_answer"
    assert "output 'total' has shape [], expected 2 rows" in error["message"]
