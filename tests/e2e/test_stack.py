"""Both tiers for real, over gRPC and over REST between them (the ``logic`` fixture's params)."""

from __future__ import annotations

import re
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from support.ctr_artifacts import synthetic_records
from support.ctr_versions import publish_version, reference_scores
from support.graph_tier import GraphTier
from support.waiting import wait_until

from logic_service.features import ctr

from .stack import MODEL, LogicTier

PREDICT = f"/v1/models/{MODEL}/predict"


def test_demo_request_scores_like_the_model_in_process(logic: LogicTier, graph: GraphTier) -> None:
    response = httpx.post(logic.url + PREDICT, json=ctr.EXAMPLE_REQUEST, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"request_id", "model", "version", "prediction"}
    assert body["model"] == MODEL
    assert body["request_id"] == response.headers["x-request-id"]
    expected = reference_scores(graph.repo / MODEL / str(body["version"]), [ctr.EXAMPLE_REQUEST])
    assert set(body["prediction"]) == {"score"}
    assert abs(body["prediction"]["score"] - float(expected[0])) <= 1e-5
    timing = dict(part.split(";dur=") for part in response.headers["server-timing"].split(", "))
    assert set(timing) == {"validate", "features", "graph", "total"}
    assert float(timing["graph"]) > 0


def test_a_batch_of_100_records_scores_each_record(logic: LogicTier, graph: GraphTier) -> None:
    records = synthetic_records(100, seed=5)
    response = httpx.post(logic.url + PREDICT, json={"records": records}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "prediction" not in body and len(body["predictions"]) == 100
    got = np.array([p["score"] for p in body["predictions"]])
    expected = reference_scores(graph.repo / MODEL / str(body["version"]), records)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert len(set(np.round(got, 6))) > 10  # distinct records really got distinct scores


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert error["code"] and error["message"]
    return error["message"]


def test_each_bad_input_answers_its_4xx(logic: LogicTier) -> None:
    url = logic.url + PREDICT
    bad_birthday = ctr.EXAMPLE_REQUEST | {"birthday": "29.04.1995"}
    no_user = {k: v for k, v in ctr.EXAMPLE_REQUEST.items() if k != "userId"}
    records = [ctr.EXAMPLE_REQUEST] * 3 + [bad_birthday]

    message = _error(httpx.post(url, json=bad_birthday), 422)
    assert message.startswith("birthday: does not match pattern")
    assert _error(httpx.post(url, json=no_user), 422) == "userId: is required"
    message = _error(httpx.post(url, json=ctr.EXAMPLE_REQUEST | {"appId": "x"}), 422)
    assert message == "appId: must be integer, got string"
    message = _error(httpx.post(url, json={"records": records}), 422)
    assert message.startswith("records[3].birthday: does not match pattern")
    month_13 = ctr.EXAMPLE_REQUEST | {"createTime": "2020-13-02T02:51:19.000+0000"}
    message = _error(httpx.post(url, json=month_13), 422)
    assert message.startswith("<record>: rejected by the feature function: ValueError")
    assert _error(httpx.post(url, json={"records": {}}), 422).startswith("records: must be")
    assert _error(httpx.post(url, json={"records": []}), 422).startswith("records: must")
    _error(httpx.post(url, json={"records": [{}] * 1001}), 413)
    _error(httpx.post(url, content=b"x" * (1_048_576 + 1), headers=JSON), 413)
    _error(httpx.post(url, content=b'{"userId": ', headers=JSON), 400)
    _error(httpx.post(url, content=b"userId=1", headers={"content-type": "text/plain"}), 415)
    _error(httpx.post(logic.url + "/v1/models/nope/predict", json=ctr.EXAMPLE_REQUEST), 404)


JSON = {"content-type": "application/json"}


class Client:
    """Sends the demo request back to back in a thread, recording every answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[float, int, int | None]] = []  # (time, status, version)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set() and len(self.answers) < 20_000:
                response = http.post(self.url, json=ctr.EXAMPLE_REQUEST)
                version = response.json().get("version") if response.status_code == 200 else None
                self.answers.append((time.monotonic(), response.status_code, version))

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def first_time_serving(self, version: int) -> float | None:
        return next((t for t, _s, v in self.answers if v == version), None)


def test_a_new_version_serves_within_3s_and_no_request_fails(
    logic: LogicTier, graph: GraphTier, transformer
) -> None:
    current = max(graph.available_versions())
    new = current + 1
    with Client(logic.url + PREDICT) as client:
        wait_until(lambda: len(client.answers) >= 5, 30, "the client's first answers")
        publish_version(graph.repo, MODEL, new, transformer, seed=new)
        published = time.monotonic()
        wait_until(lambda: client.first_time_serving(new), 60, f"version {new} to serve")
        time.sleep(1.0)  # and keep sending while the old version is unloaded
    failures = [(s, v) for _t, s, v in client.answers if s != 200]
    assert failures == [], failures
    took = client.first_time_serving(new) - published
    assert took <= 3.0, f"version {new} served {took:.2f}s after it was published"
    last = [v for _t, _s, v in client.answers[-5:]]
    assert last == [new] * 5
    answer = httpx.post(logic.url + PREDICT, json=ctr.EXAMPLE_REQUEST).json()
    expected = reference_scores(graph.repo / MODEL / str(new), [ctr.EXAMPLE_REQUEST])
    assert abs(answer["prediction"]["score"] - float(expected[0])) <= 1e-5


def _copy_version(model_dir: Path, current: int, new: int, extra_file: str | None = None) -> None:
    """What ``cp -r`` does, published in one rename so the graph tier never sees half of it."""
    staging = model_dir / f".copy-{new}"
    shutil.copytree(model_dir / str(current), staging)
    if extra_file is not None:
        (staging / extra_file).write_text("not part of the export\n")
    staging.rename(model_dir / str(new))


def test_a_version_copied_by_hand_takes_over_with_no_failed_request(
    logic: LogicTier, graph: GraphTier
) -> None:
    """``cp -r ctr/N ctr/N+1``: the graph tier swaps to the copy, so the logic tier must too."""
    current = max(graph.available_versions())
    new = current + 1
    model_dir = graph.repo / MODEL
    with Client(logic.url + PREDICT) as client:
        wait_until(lambda: len(client.answers) >= 5, 30, "the client's first answers")
        _copy_version(model_dir, current, new)
        wait_until(lambda: client.first_time_serving(new), 60, f"version {new} to serve")
        time.sleep(1.0)  # and keep sending while the original is unloaded
    failures = [(s, v) for _t, s, v in client.answers if s != 200]
    assert failures == [], failures
    assert [v for _t, _s, v in client.answers[-5:]] == [new] * 5
    answer = httpx.post(logic.url + PREDICT, json=ctr.EXAMPLE_REQUEST).json()
    expected = reference_scores(model_dir / str(current), [ctr.EXAMPLE_REQUEST])
    assert abs(answer["prediction"]["score"] - float(expected[0])) <= 1e-5
    assert answer["version"] == new


def test_a_folder_its_manifest_does_not_describe_is_a_named_503_until_removed(
    logic: LogicTier, graph: GraphTier
) -> None:
    current = max(graph.available_versions())
    new = current + 1
    model_dir = graph.repo / MODEL
    _copy_version(model_dir, current, new, extra_file="NOTES.txt")
    try:
        wait_until(lambda: graph.available_versions() == [new], 60, f"the graph tier on {new}")
        answer = wait_until(
            lambda: (
                (r := httpx.post(logic.url + PREDICT, json=ctr.EXAMPLE_REQUEST)).status_code == 503
                and r
            ),
            30,
            "the logic tier to refuse the folder",
        )
        message = answer.json()["error"]["message"]
        assert f"refused: version {new}" in message, message
        ready = httpx.get(logic.url + "/readyz")
        assert ready.status_code == 503
        assert "its files differ (not listed NOTES.txt)" in ready.text, ready.text
    finally:
        shutil.rmtree(model_dir / str(new))
    wait_until(
        lambda: (
            httpx.post(logic.url + PREDICT, json=ctr.EXAMPLE_REQUEST).json().get("version")
            == current
        ),
        60,
        f"version {current} to serve again",
    )


def test_a_hung_graph_tier_is_504_at_the_deadline(logic: LogicTier, graph: GraphTier) -> None:
    url = logic.url + PREDICT
    assert httpx.post(url, json=ctr.EXAMPLE_REQUEST, timeout=10).status_code == 200
    graph.process.popen.send_signal(signal.SIGSTOP)  # alive, connected, never answering
    try:
        started = time.monotonic()
        response = httpx.post(url, json=ctr.EXAMPLE_REQUEST, timeout=20)
        took = time.monotonic() - started
    finally:
        graph.process.popen.send_signal(signal.SIGCONT)
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "graph_timeout"
    assert 1.9 <= took < 6.0  # the 2 s default deadline, not the client's 20 s
    wait_until(
        lambda: httpx.post(url, json=ctr.EXAMPLE_REQUEST, timeout=10).status_code == 200,
        30,
        "serving again after the graph tier resumed",
    )


def test_graph_tier_down_is_503_fast_and_service_resumes(
    logic: LogicTier, graph: GraphTier
) -> None:
    url = logic.url + PREDICT
    graph.stop()
    try:

        def refused() -> httpx.Response | None:
            response = httpx.post(url, json=ctr.EXAMPLE_REQUEST, timeout=10)
            return response if response.status_code == 503 else None

        response = wait_until(refused, 30, "503 while the graph tier is down")
        assert response.headers["retry-after"]
        started = time.monotonic()
        response = httpx.post(url, json=ctr.EXAMPLE_REQUEST, timeout=10)
        assert response.status_code == 503 and time.monotonic() - started < 1.0
        assert response.json()["error"]["code"] in ("graph_unavailable", "unavailable")
        wait_until(lambda: not logic.ready(), 10, "/readyz to turn false")
    finally:
        graph.start()
    wait_until(
        lambda: httpx.post(url, json=ctr.EXAMPLE_REQUEST, timeout=10).status_code == 200,
        30,
        "the logic tier to serve again",
    )
    wait_until(logic.ready, 10, "/readyz to turn true again")
    assert logic.process.alive()


def test_one_log_line_per_request_carrying_its_id(logic: LogicTier) -> None:
    request_id = f"trace-{logic.protocol}-{time.monotonic_ns()}"
    response = httpx.post(
        logic.url + PREDICT, json=ctr.EXAMPLE_REQUEST, headers={"X-Request-ID": request_id}
    )
    assert response.headers["x-request-id"] == request_id
    version = response.json()["version"]

    def lines() -> list[str]:
        text = (logic.log_dir / "logic.log").read_text()
        return [line for line in text.splitlines() if f"[{request_id}]" in line]

    (line,) = wait_until(lines, 10, "the request's log line")
    pattern = (
        rf"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z - INFO - \[{request_id}\] "
        rf"POST {PREDICT} model={MODEL} version={version} status=200 latency_ms=\d+\.\d+$"
    )
    assert re.match(pattern, line), line


def test_readyz_says_what_the_prediction_log_writer_does(logic: LogicTier) -> None:
    assert httpx.post(logic.url + PREDICT, json=ctr.EXAMPLE_REQUEST).status_code == 200
    ready = httpx.get(logic.url + "/readyz")
    assert ready.status_code == 200
    writer = ready.json()["prediction_log"]
    assert writer["state"] == "writing" and writer["database_down_since"] is None
    assert writer["spill_max_bytes"] == 1 << 30  # the default cap
    assert writer["dropped_at_cap_rows"] == 0
