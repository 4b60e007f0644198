"""Several models at once: each its own feature function and transformer, or tensors directly."""

from __future__ import annotations

import re

import httpx
import numpy as np
from support.ctr_artifacts import synthetic_records
from support.ctr_versions import reference_scores
from support.graph_tier import GraphTier
from support.waiting import wait_until

from logic_service.features import ctr

from . import alt_features
from .stack import ALT_MODEL, LABELLED_MODEL, MODEL, SCALAR_MODEL, TENSOR_MODEL, LogicTier


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


def test_a_non_finite_output_is_never_a_200(logic: LogicTier) -> None:
    """x sums past float32's largest value: the SavedModel answers inf for that record.

    JSON has no inf: orjson would write null and the caller would read a 200 with no
    score. The answer is 422 non_finite_output naming the record; /metrics counts it
    and the log names the record (not its fields).
    """
    overflow = {"x": [3e38, 3e38, 0.0]}
    response = _predict(logic, TENSOR_MODEL, {"records": [{"x": [1, 1, 1]}, overflow]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "non_finite_output"
    assert error["message"].startswith("records[1]: the model's output 'y' is inf"), error
    assert "records[0]" not in error["message"]

    single = _predict(logic, TENSOR_MODEL, overflow)
    assert single.status_code == 422, single.text
    assert single.json()["error"]["message"].startswith("<record>: the model's output 'y' is inf")

    metrics = httpx.get(f"{logic.url}/metrics", timeout=5).text
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("tierkit_non_finite_outputs_total{")
        and f'model="{TENSOR_MODEL}"' in line
        and 'output="y"' in line
    ]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 2, counted
    log_text = (logic.log_dir / "logic.log").read_text()
    assert f"model {TENSOR_MODEL}/1: non-finite output for records[1]: y (inf)" in log_text
    # the fields stay out of the log (request ids are hex: "3e38" may occur inside one)
    without_ids = re.sub(r"\[[0-9a-f]{32}\]", "[id]", log_text)
    assert "3e+38" not in without_ids and "3e38" not in without_ids

    def evaluated() -> dict | None:  # the prediction log is written off the request path
        answer = httpx.get(f"{logic.url}/v1/models/{TENSOR_MODEL}/evaluation", timeout=5)
        versions = answer.json()["versions"] if answer.status_code == 200 else []
        return next((v for v in versions if v["errors"] >= 2), None)

    version = wait_until(evaluated, 30, "the non-finite answers in the evaluation numbers")
    assert version["version"] == 1  # the version's error, as a 5xx would be


def test_an_integer_valued_number_is_scored_as_the_integer(logic: LogicTier) -> None:
    """JSON Schema takes 20000.0 as an integer; ctr's features do str(appId): they must get
    "20000", what training saw, not "20000.0" (an unseen category, another score)."""
    floats = ctr.EXAMPLE_REQUEST | {"appId": 20000.0, "channel": 1.0, "countryId": 182.0}
    response = _predict(logic, MODEL, {"records": [ctr.EXAMPLE_REQUEST, floats]})
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert first == second
    refused = _predict(logic, MODEL, ctr.EXAMPLE_REQUEST | {"appId": 20000.5})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["message"] == "appId: must be integer, got number"
