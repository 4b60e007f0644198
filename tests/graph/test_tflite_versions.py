"""Quantized versions from ``python -m export --quantize`` served by the graph tier.

One model, four versions exported by the real export tool from one Keras model:
1 float (SavedModel only), 2 float16, 3 dynamic, 4 int8. A server with
``--prefer_tflite_model=true`` and batching serves 2-4 from their ``model.tflite``
and 1 from its SavedModel; over gRPC and REST every version answers like the
float SavedModel within its mode's tolerance, warmup runs on the interpreters,
concurrent callers get their own rows back, a version published later is
picked up (hot reload) and a config reload's version policy applies.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from support.graph_tier import model_states, start_graph_server
from support.waiting import wait_for
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

MODES = {2: ("float16", 1e-3), 3: ("dynamic", 2e-2), 4: ("int8", 5e-2)}
WIDTH = 6
BATCHING = "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 500 }\n"
CONFIG = """model_config_list {{
  config {{
    name: "q"
    base_path: "{base}"
    model_platform: "tensorflow"
    model_version_policy {{ {policy} }}
  }}
}}
"""


def _export(*argv: object) -> None:
    from export.__main__ import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    assert code == 0, err.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    import keras

    work = tmp_path_factory.mktemp("tflite_versions")
    keras.utils.set_random_seed(11)
    inputs = keras.Input(shape=(WIDTH,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="score")(hidden))
    model.save(work / "model.h5")
    rows = np.random.default_rng(5).normal(size=(64, WIDTH)).astype(np.float32)
    sample = work / "sample.json"
    sample.write_text(json.dumps({"inputs": {"features": rows[:8].tolist()}}))
    calibration = work / "calibration.json"
    calibration.write_text(json.dumps({"inputs": {"features": rows.tolist()}}))
    repo = work / "repo"
    common = ("keras", work / "model.h5", "--name", "q", "--repo", repo, "--sample", sample)
    _export(*common, "--version", 1)
    for version, (mode, _) in MODES.items():
        extra = ("--calibration", calibration) if mode == "int8" else ()
        _export(*common, "--version", version, "--quantize", mode, *extra)
    return repo, rows


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory: pytest.TempPathFactory):
    repo, _ = exported
    work = tmp_path_factory.mktemp("tflite_server")
    (work / "batching.config").write_text(BATCHING)
    started = start_graph_server(
        work, repo, CONFIG.format(base=repo / "q", policy="all {}"),
        "--prefer_tflite_model=true", "--enable_batching",
        f"--batching_parameters_file={work / 'batching.config'}",
        wait_models=["q"],
    )
    wait_for(lambda: set(model_states(started.grpc_target, "q")) >= {1, 2, 3, 4}, timeout=120)
    wait_for(lambda: set(model_states(started.grpc_target, "q").values()) == {"AVAILABLE"})
    yield started
    started.stop()


@pytest.fixture(scope="module")
def float_answers(exported) -> np.ndarray:
    from export.checks.session_loader import SessionModel

    repo, rows = exported
    with SessionModel(repo / "q" / "1") as model:
        return model.run("serving_default", {"features": rows})["score"]


def _grpc_predict(target: str, version: int, rows: np.ndarray) -> np.ndarray:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "q"
    request.model_spec.version.value = version
    tensor = request.inputs["features"]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add().size = rows.shape[0]
    tensor.tensor_shape.dim.add().size = rows.shape[1]
    tensor.float_val.extend(rows.ravel().tolist())
    with grpc.insecure_channel(target) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=20
        )
    assert response.model_spec.version.value == version
    return np.array(response.outputs["score"].float_val, np.float32).reshape(-1, 1)


def _rest(url: str, body: dict | None = None) -> dict:
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=20) as answer:
        return json.loads(answer.read())


def test_quantized_versions_are_served_from_tflite(server) -> None:
    log = server.log_text()
    for version in MODES:
        assert f"Serving q version {version} from model.tflite (TF Lite" in log
    assert "Serving q version 1 from model.tflite" not in log  # no model.tflite: SavedModel
    assert log.count("Finished reading warmup data") >= 4  # warmup ran on the interpreters


@pytest.mark.parametrize("version", [1, *MODES])
def test_both_protocols_answer_like_the_float_model(
    version, server, exported, float_answers
) -> None:
    _, rows = exported
    atol = MODES[version][1] if version in MODES else 1e-6
    by_grpc = _grpc_predict(server.grpc_target, version, rows[:16])
    np.testing.assert_allclose(by_grpc, float_answers[:16], atol=atol)
    by_rest = _rest(
        f"{server.rest_url}/v1/models/q/versions/{version}:predict",
        {"instances": rows[:16].tolist()},
    )["predictions"]
    np.testing.assert_allclose(np.array(by_rest, np.float32), by_grpc, atol=1e-6)


def test_metadata_of_a_tflite_version(server) -> None:
    metadata = _rest(f"{server.rest_url}/v1/models/q/versions/4/metadata")
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    features = signature["inputs"]["features"]
    assert features["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in features["tensor_shape"]["dim"]] == ["-1", str(WIDTH)]
    assert set(signature["outputs"]) == {"score"}


def test_concurrent_callers_get_their_own_rows(server, exported) -> None:
    _, rows = exported
    expected = _grpc_predict(server.grpc_target, 4, rows)  # one batch of 64, as reference

    def one(i: int) -> bool:
        row = rows[i % len(rows)][None, :]
        return bool(np.allclose(_grpc_predict(server.grpc_target, 4, row), expected[i % 64]))

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(one, range(16 * 12)))


def test_a_new_version_is_picked_up_and_the_policy_applies(server, exported) -> None:
    repo, rows = exported
    staging = repo / "q" / ".tmp-5"
    shutil.copytree(repo / "q" / "4", staging)
    staging.rename(repo / "q" / "5")
    wait_for(lambda: model_states(server.grpc_target, "q").get(5) == "AVAILABLE", timeout=60)
    np.testing.assert_allclose(
        _grpc_predict(server.grpc_target, 5, rows[:4]),
        _grpc_predict(server.grpc_target, 4, rows[:4]),
    )
    server.config_path.write_text(
        CONFIG.format(base=repo / "q", policy="specific { versions: 1 versions: 3 }")
    )
    wait_for(
        lambda: {v for v, s in model_states(server.grpc_target, "q").items() if s == "AVAILABLE"}
        == {1, 3},
        timeout=60,
    )
