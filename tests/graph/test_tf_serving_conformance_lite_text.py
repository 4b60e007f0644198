"""TF Serving's TF Lite and TF Text tests, ported like test_tf_serving_conformance.py.

From tensorflow_serving/model_servers/tensorflow_model_server_test.py:
``testPredictOnTfLite`` and ``testPredictWithSignatureDefOnTfLite`` (RunServer
with ``model_type='tflite'``, which passes ``--prefer_tflite_model=true``; the
older test base passes ``--use_tflite_model=true``, accepted too) and
``test_tf_text`` (a SavedModel full of TF Text ops; tensorflow_model_server links
them in, graph_service loads them from ``tensorflow-text``). Same requests and
assertions through the original's VerifyPredictRequest; the testdata is rebuilt
by tests/support/lite_text_testdata.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.lite_text_testdata import build_tf_text_regression, build_tflite

from .test_tf_serving_conformance import _get_model_version, run_server, verify_predict_request


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
