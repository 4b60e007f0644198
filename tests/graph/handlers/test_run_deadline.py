"""``--enforce_session_run_timeout``: a run is cancelled at its caller's deadline.

Private servers over the read-only zoo's ``slow`` model (a request busy-waits
``seconds`` inside the graph). The caller gives up after 0.5 s; what is checked is
that TensorFlow stopped the run too, read from the server's own
``tfserving_runtime_latency_seconds`` (the session run's duration): about 0.5 s
when the run was cancelled, the full 6 s when the flag is off.
"""

from __future__ import annotations

import json

import grpc
import httpx
import numpy as np
import pytest
from support.graph_tier import METRICS_PATH, start_graph_server
from support.waiting import wait_for
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from graph_service.inference.tensor_proto import to_proto

CONFIG = """
model_config_list {{
  config {{ name: "slow" base_path: "{base}" model_platform: "tensorflow" }}
}}
"""
BUSY_SECONDS = 6.0
CALLER_DEADLINE_S = 0.5


def _server(model_zoo, tmp_path_factory, name: str, *flags: str):
    return start_graph_server(
        tmp_path_factory.mktemp(name),
        model_zoo.repo,
        CONFIG.format(base=model_zoo.repo / "slow"),
        "--rest_api_timeout_in_ms=500",
        *flags,
        wait_models=["slow"],
    )


@pytest.fixture(scope="module")
def enforcing_server(model_zoo, tmp_path_factory):
    server = _server(model_zoo, tmp_path_factory, "run_deadline")
    yield server
    server.stop()


def _run_seconds(server) -> tuple[float, float]:
    """(count, sum) of the slow model's session-run histogram."""
    text = httpx.get(server.rest_url + METRICS_PATH, timeout=10).text
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith("tfserving_runtime_latency_seconds_") and 'model_name="slow"' in line:
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith("tfserving_runtime_latency_seconds_count"):
                count += value
            elif line.startswith("tfserving_runtime_latency_seconds_sum"):
                total += value
    return count, total


def _grpc_slow_call(server) -> grpc.StatusCode:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "slow"
    request.inputs["seconds"].CopyFrom(to_proto(np.array([BUSY_SECONDS], np.float64)))
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=CALLER_DEADLINE_S)
    return caught.value.code()


def _finished_run(server, before: float) -> float:
    """Wait until the server recorded one more run of ``slow``; its duration in seconds."""
    wait_for(
        lambda: _run_seconds(server)[0] > before,
        timeout=BUSY_SECONDS + 20,
        message="the server to record the slow model's run",
    )
    return _run_seconds(server)[1]


def test_grpc_deadline_cancels_the_session_run(enforcing_server) -> None:
    count, total = _run_seconds(enforcing_server)
    assert _grpc_slow_call(enforcing_server) == grpc.StatusCode.DEADLINE_EXCEEDED
    seconds = _finished_run(enforcing_server, count) - total
    assert seconds < BUSY_SECONDS / 2, f"the run went on for {seconds:.2f} s after the deadline"


def test_rest_timeout_cancels_the_session_run(enforcing_server) -> None:
    count, total = _run_seconds(enforcing_server)
    body = json.dumps({"instances": [BUSY_SECONDS]})
    response = httpx.post(
        enforcing_server.rest_url + "/v1/models/slow:predict", content=body, timeout=30
    )
    assert response.status_code == 504, response.text
    assert "Deadline Exceeded" in response.json()["error"]
    seconds = _finished_run(enforcing_server, count) - total
    assert seconds < BUSY_SECONDS / 2, f"the run went on for {seconds:.2f} s after the deadline"


def test_with_the_flag_off_the_run_goes_on_to_the_end(model_zoo, tmp_path_factory) -> None:
    server = _server(
        model_zoo, tmp_path_factory, "run_no_deadline", "--enforce_session_run_timeout=false"
    )
    try:
        count, total = _run_seconds(server)
        assert _grpc_slow_call(server) == grpc.StatusCode.DEADLINE_EXCEEDED
        seconds = _finished_run(server, count) - total
        assert seconds >= BUSY_SECONDS * 0.9
    finally:
        server.stop()
