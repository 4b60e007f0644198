"""TF Serving's TF Lite, TF Text and profiler tests, ported like test_tf_serving_conformance.py.

From tensorflow_serving/model_servers/tensorflow_model_server_test.py:
``testPredictOnTfLite`` and ``testPredictWithSignatureDefOnTfLite`` (RunServer
with ``model_type='tflite'``, which passes ``--prefer_tflite_model=true``; the
older test base passes ``--use_tflite_model=true``, accepted too) and
``test_tf_text`` (a SavedModel full of TF Text ops; tensorflow_model_server links
them in, graph_service loads them from ``tensorflow-text``) and
``test_profiler_service_with_valid_trace_request`` (TF's profiler client traces
the server through its gRPC port while three REST predicts run). Same requests
and assertions; the TF Lite and TF Text testdata is rebuilt by
tests/support/lite_text_testdata.py.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from support.lite_text_testdata import build_tf_text_regression, build_tflite

from .test_tf_serving_conformance import (
    _get_model_version,
    run_server,
    testdata,  # noqa: F401 - the fixture, shared with the first port
    verify_predict_request,
)


@pytest.fixture(scope="module")
def tflite_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_tflite(tmp_path_factory.mktemp("tflite_testdata"))


def test_predict_on_tflite(tflite_paths, tmp_path) -> None:
    """testPredictOnTfLite."""
    model_path = str(tflite_paths[0])
    server = run_server(
        tmp_path, "--model_name=default", f"--model_base_path={model_path}",
        "--prefer_tflite_model=true",
    )
    try:
        verify_predict_request(
            server.grpc_address, expected_output=3.0, specify_output=False,
            expected_version=_get_model_version(model_path),
        )
    finally:
        server.stop()


def test_predict_with_signature_def_on_tflite(tflite_paths, tmp_path) -> None:
    """testPredictWithSignatureDefOnTfLite (here with the older flag name)."""
    model_path = str(tflite_paths[1])
    server = run_server(
        tmp_path, "--model_name=default", f"--model_base_path={model_path}",
        "--use_tflite_model=true",
    )
    try:
        verify_predict_request(
            server.grpc_address, expected_output=3.0, specify_output=False,
            expected_version=_get_model_version(str(tflite_paths[0])),
        )
        # The legacy SignatureDef names the aliases; the rest of the request API agrees.
        verify_predict_request(
            server.grpc_address, expected_output=3.0,
            expected_version=_get_model_version(model_path),
        )
    finally:
        server.stop()


def test_tf_text(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> None:
    """test_tf_text: the server loads a graph of TF Text ops and answers y = x + 1."""
    pytest.importorskip(
        "tensorflow_text", reason="tensorflow-text is not installed (./scripts/test installs it)"
    )
    model_path = str(build_tf_text_regression(tmp_path_factory.mktemp("tf_text")))
    server = run_server(tmp_path, "--model_name=default", f"--model_base_path={model_path}")
    try:
        verify_predict_request(
            server.grpc_address, expected_output=3.0,
            expected_version=_get_model_version(model_path),
        )
    finally:
        server.stop()


def test_profiler_service_with_valid_trace_request(testdata, tmp_path) -> None:  # noqa: F811
    """test_profiler_service_with_valid_trace_request: a trace while predicts run."""
    from tensorflow.python.profiler import profiler_client

    model_path = testdata.path("saved_model_half_plus_two_cpu")
    server = run_server(
        tmp_path / "server", "--model_name=default", f"--model_base_path={model_path}"
    )
    answers: list[bytes] = []

    def predicts() -> None:  # the original's wget loop: one REST predict a second, three
        url = f"http://{server.rest_address}/v1/models/default:predict"
        body = json.dumps({"instances": [2.0, 3.0, 4.0]}).encode()
        for _ in range(3):
            with urllib.request.urlopen(urllib.request.Request(url, data=body)) as answer:
                answers.append(answer.read())
            time.sleep(1)

    try:
        load = threading.Thread(target=predicts)
        load.start()
        logdir = tmp_path / "logs"
        logdir.mkdir()
        profiler_client.trace(server.grpc_address, str(logdir), 1000, "", 10)
        load.join()
    finally:
        server.stop()
    assert [json.loads(a) for a in answers] == [{"predictions": [3.0, 3.5, 4.0]}] * 3
    traces = list(logdir.rglob("*.xplane.pb"))
    assert traces and traces[0].stat().st_size > 0  # TF wrote a real trace of the server
