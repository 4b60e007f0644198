"""TF Serving's own end-to-end suite, ported to run against ``python -m graph_service``.

Port of tensorflow_serving/model_servers/tensorflow_model_server_test.py (and the
helpers of test_util/tensorflow_model_server_test_base.py): same requests, same
assertions, same expected JSON, so a conformance suite written for
``tensorflow_model_server`` finds nothing new here. Each test names the original
it ports. The models are rebuilt by real TensorFlow from TF Serving's testdata
scripts (saved_model_half_plus_two.py; ``half_plus_three`` is the same graph with
b = 3), in version directories named ``00000123`` as in testdata.

Two servers, as the original's ``RunServer`` would start them:

* ``tf_serving`` -- single-model mode (``--model_name=default
  --model_base_path=...``) over saved_model_half_plus_two_cpu with the flags the
  original passes (``--rest_api_timeout_in_ms``, ``--grpc_socket_path``), plus the
  ones of testPredictBatching, testGoodGrpcChannelArgs and testPrometheusEndpoint.
* ``config_server`` -- ``--model_config_file`` (good_model_config.txt, plus the TF2
  exports of the test_tf_saved_model_save* tests), polled every second
  (testModelConfigReload).

The TF Lite, TF Text and profiler tests are in test_tf_serving_conformance_extras.py.
Not ported: tf.distribute and SessionBundle tests (no such models here),
_TestBadModel (disabled upstream) and testModelConfigReloadWithZeroPollPeriod
(needs a third server; poll 0 is the default and
``--model_config_file_poll_wait_seconds=0`` never starts the poller).
``--host=127.0.0.1`` (tierkit's one extra flag) keeps the servers on loopback.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from support.graph_tier import ROOT, GraphServer, graph_env, run_graph_cli, start_graph_server
from support.ports import free_port
from support.waiting import wait_for
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from graph_service.command import graph_service_command

RPC_TIMEOUT = 20.0
HTTP_REST_TIMEOUT_MS = 5000
WAIT_FOR_SERVER_READY_INT_SECS = 120
DEFAULT_SERVING_SIGNATURE_DEF_KEY = "serving_default"
VERSION_DIR = "00000123"

# testdata/monitoring_config.txt
MONITORING_CONFIG = (
    'prometheus_config: {\n  enable: true,\n  path: "/monitoring/prometheus/metrics"\n}\n'
)
# A BatchingParameters file in the syntax of testdata/batching_config.txt.
BATCHING_CONFIG = """
max_batch_size { value: 128 }
batch_timeout_micros { value: 0 }
max_enqueued_batches { value: 1000000 }
num_batch_threads { value: 8 }
"""
# testdata/good_model_config.txt (+ the TF2 exports, which the original serves one by one).
GOOD_MODEL_CONFIG = """model_config_list: {{

  config: {{
    name: "half_plus_two",
    base_path: "{half_plus_two}",
    model_platform: "tensorflow"
  }},
  config: {{
    name: "half_plus_three",
    base_path: "{half_plus_three}",
    model_platform: "tensorflow"
  }}
{tf2_models}
}}"""
TF2_MODEL_CONFIG = """  config: {{
    name: "{name}",
    base_path: "{path}",
    model_platform: "tensorflow"
  }}"""
# testModelConfigReload's template.
BASE_CONFIG_PROTO = """
    model_config_list: {{
      config: {{
        name: "{name}",
        base_path: "{model_path}",
        model_platform: "tensorflow"
      }}
    }}
    """


# ================================================================ testdata builders
def build_half_plus_two_tf2(export_dir: Path) -> Path:
    """saved_model_half_plus_two_tf2_cpu: tf.saved_model.save with every signature.

    As in testdata, the signatures keep their TF1 names and I/O aliases, but
    tf.saved_model.save writes method_name tensorflow/serving/predict for all, and
    each signature gets its own input placeholder (classify_x_to_y_inputs:0, ...).
    """
    import tensorflow as tf

    class HalfPlusTwo(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(0.5, name="a")
            self.b = tf.Variable(2.0, name="b")
            self.c = tf.Variable(3.0, name="c")

        def _x(self, serialized):
            features = tf.io.parse_example(
                serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)}
            )
            return features["x"]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress_x_to_y(self, inputs):
            return {"outputs": self.a * self._x(inputs) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress_x_to_y2(self, inputs):
            return {"outputs": self.a * self._x(inputs) + self.c}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify_x_to_y(self, inputs):
            return {"scores": self.a * self._x(inputs) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32, name="x")])
        def predict(self, x):
            return {"y": self.a * x + self.b}

    module = HalfPlusTwo()
    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={
            DEFAULT_SERVING_SIGNATURE_DEF_KEY: module.predict,
            "regress_x_to_y": module.regress_x_to_y,
            "regress_x_to_y2": module.regress_x_to_y2,
            "classify_x_to_y": module.classify_x_to_y,
        },
    )
    return export_dir


def build_tf_saved_model_save(export_path: Path) -> None:
    """test_tf_saved_model_save's export (tf.saved_model.experimental.save is now .save)."""
    import tensorflow as tf

    root = tf.train.Checkpoint()
    root.v1 = tf.Variable(3.0)
    root.v2 = tf.Variable(2.0)
    root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
    to_save = root.f.get_concrete_function(tf.TensorSpec(None, tf.float32))
    tf.saved_model.save(root, str(export_path), to_save)


def build_tf_saved_model_save_multiple_signatures(export_path: Path) -> None:
    """test_tf_saved_model_save_multiple_signatures's export."""
    import tensorflow as tf

    root = tf.train.Checkpoint()
    root.f = tf.function(lambda x: {"y": 1.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    root.g = tf.function(lambda x: {"y": 2.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    tf.saved_model.save(
        root,
        str(export_path),
        signatures={DEFAULT_SERVING_SIGNATURE_DEF_KEY: root.f, "custom_signature_key": root.g},
    )


def build_sequential_keras_saved_model_save(export_path: Path) -> None:
    """test_sequential_keras_saved_model_save's export (tf.keras is Keras 2: tf_keras)."""
    import tensorflow as tf
    import tf_keras

    model = tf_keras.models.Sequential()
    model.add(tf_keras.layers.Input(dtype="float32", shape=(1,), name="x"))
    model.add(tf_keras.layers.Lambda(lambda x: x, name="y"))
    tf.saved_model.save(model, str(export_path))


@dataclass(frozen=True)
class ServingTestdata:
    """servables/tensorflow/testdata as the original's _Get*Path helpers name it."""

    root: Path

    def path(self, name: str) -> str:
        return str(self.root / name)


TF2_EXPORTS = {
    "saved_model_half_plus_two_tf2_cpu": build_half_plus_two_tf2,
    "tf_saved_model_save": build_tf_saved_model_save,
    "tf_saved_model_save_multiple_signatures": build_tf_saved_model_save_multiple_signatures,
    "keras_sequential_saved_model_save": build_sequential_keras_saved_model_save,
}


@pytest.fixture(scope="module")
def testdata(model_zoo, tmp_path_factory: pytest.TempPathFactory) -> ServingTestdata:
    root = tmp_path_factory.mktemp("testdata")
    shutil.copytree(
        model_zoo.originals / "half_plus_two_b2",
        root / "saved_model_half_plus_two_cpu" / VERSION_DIR,
    )
    shutil.copytree(
        model_zoo.originals / "half_plus_two_b3", root / "saved_model_half_plus_three" / VERSION_DIR
    )
    # The zoo's b = 3 build carries a warmup file; half_plus_three in testdata has none.
    shutil.rmtree(root / "saved_model_half_plus_three" / VERSION_DIR / "assets.extra")
    for name, build in TF2_EXPORTS.items():
        build(root / name / VERSION_DIR)
    (root / "monitoring_config.txt").write_text(MONITORING_CONFIG)
    (root / "batching_config.txt").write_text(BATCHING_CONFIG)
    (root / "bad_model_config.txt").write_text("improperly formatted file")
    return ServingTestdata(root)


def _get_model_version(model_path: str) -> int:
    """_GetModelVersion: the one integer-named directory under model_path."""
    return int(next(p.name for p in Path(model_path).iterdir() if p.name.isdigit()))


# =========================================================================== servers
@dataclass
class RunningServer:
    """What the original's RunServer returns: (proc, grpc host:port, rest host:port)."""

    proc: subprocess.Popen
    grpc_address: str
    rest_address: str
    socket_path: Path
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def wait_for_server_ready(port: int, proc: subprocess.Popen, log_path: Path) -> None:
    """WaitForServerReady: a Predict for a missing model answers 'Servable...' once up."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "intentionally_missing_model"
    deadline = time.monotonic() + WAIT_FOR_SERVER_READY_INT_SECS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        with grpc.insecure_channel(f"localhost:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            try:
                stub.Predict(request, RPC_TIMEOUT)
            except grpc.RpcError as error:
                if error.details() and "Servable" in error.details():
                    return
        time.sleep(0.5)
    raise RuntimeError(f"server not ready:\n{log_path.read_text()[-3000:]}")


def run_server(workdir: Path, *flags: str) -> RunningServer:
    """RunServer: the original's command line (plus --host), waited for like the original."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, rest_api_port = free_port(), free_port()
    while rest_api_port == port:
        rest_api_port = free_port()
    socket_path = workdir / "tf-serving.sock"
    log_path = workdir / "server.log"
    command = graph_service_command(
        port,
        rest_api_port,
        f"--rest_api_timeout_in_ms={HTTP_REST_TIMEOUT_MS}",
        f"--grpc_socket_path={socket_path}",
        *flags,
    )
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=graph_env(), stdout=log, stderr=log)
    server = RunningServer(
        proc, f"localhost:{port}", f"localhost:{rest_api_port}", socket_path, log_path
    )
    try:
        wait_for_server_ready(port, proc, log_path)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def tf_serving(testdata: ServingTestdata, tmp_path_factory: pytest.TempPathFactory):
    """RunServer('default', _GetSavedModelBundlePath(), ...) with batching, monitoring
    and channel arguments (the original starts one server per combination)."""
    server = run_server(
        tmp_path_factory.mktemp("tf_serving"),
        "--model_name=default",
        f"--model_base_path={testdata.path('saved_model_half_plus_two_cpu')}",
        f"--monitoring_config_file={testdata.path('monitoring_config.txt')}",
        "--enable_batching",
        f"--batching_parameters_file={testdata.path('batching_config.txt')}",
        "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def config_server(testdata: ServingTestdata, tmp_path_factory: pytest.TempPathFactory):
    """RunServer(None, None, model_config_file=good_model_config, poll period 1)."""
    tf2 = ",\n".join(
        TF2_MODEL_CONFIG.format(name=name, path=testdata.path(name)) for name in TF2_EXPORTS
    )
    config = GOOD_MODEL_CONFIG.format(
        half_plus_two=testdata.path("saved_model_half_plus_two_cpu"),
        half_plus_three=testdata.path("saved_model_half_plus_three"),
        tf2_models=",\n" + tf2,
    )
    server = start_graph_server(
        tmp_path_factory.mktemp("config_server"),
        testdata.root,
        config,
        wait_models=["half_plus_two", "half_plus_three", *TF2_EXPORTS],
        config_poll_seconds=1,
    )
    yield server
    server.stop()


# =========================================================================== helpers
def verify_model_spec(actual_model_spec, exp_model_name, exp_signature_name, exp_version):
    """_VerifyModelSpec."""
    assert actual_model_spec.name == exp_model_name
    assert actual_model_spec.signature_name == exp_signature_name
    assert actual_model_spec.version.value == exp_version


def verify_predict_request(
    model_server_address: str,
    expected_output: float,
    expected_version: int,
    model_name: str = "default",
    specify_output: bool = True,
    batch_input: bool = False,
    signature_name: str = DEFAULT_SERVING_SIGNATURE_DEF_KEY,
) -> None:
    """VerifyPredictRequest, request and assertions as in the original."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    dim = request.inputs["x"].tensor_shape.dim.add()
    dim.size = 1
    if batch_input:
        request.inputs["x"].tensor_shape.dim.add().size = 1
    if specify_output:
        request.output_filter.append("y")
    with grpc.insecure_channel(model_server_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.Predict(request, RPC_TIMEOUT)
    assert "y" in result.outputs
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert len(result.outputs["y"].float_val) == 1
    assert result.outputs["y"].float_val[0] == expected_output
    verify_model_spec(result.model_spec, request.model_spec.name, signature_name, expected_version)


def call_rest(url: str, req: dict | None, max_attempts: int = 3) -> bytes:
    """CallREST: POST when there is a body, GET otherwise; retried like the original."""
    for attempt in range(max_attempts):
        try:
            json_data = json.dumps(req).encode("utf-8") if req is not None else None
            with urllib.request.urlopen(urllib.request.Request(url, data=json_data)) as resp:
                return resp.read()
        except urllib.error.HTTPError:
            raise
        except Exception:
            if attempt == max_attempts - 1:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def call_rest_error(url: str, req: dict | None) -> tuple[int, dict]:
    """A REST call that must fail: (HTTP status, JSON body)."""
    data = json.dumps(req).encode("utf-8") if req is not None else None
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url, data=data))
    return info.value.code, json.loads(info.value.read().decode())


def sorted_object(obj):
    """SortedObject (tensorflow_model_server_test_base.py)."""
    if isinstance(obj, dict):
        return sorted((k, sorted_object(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return sorted(sorted_object(x) for x in obj)
    if isinstance(obj, tuple):
        return list(sorted(sorted_object(x) for x in obj))
    return obj


def _tensor_info(name: str, dtype: str, dims: list[int] | None) -> dict:
    shape = (
        {"dim": [], "unknown_rank": True}
        if dims is None
        else {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}
    )
    return {"dtype": dtype, "tensor_shape": shape, "name": name}


def _signature(inputs: dict, outputs: dict, method_name: str) -> dict:
    return {"inputs": inputs, "outputs": outputs, "method_name": method_name, "defaults": {}}


# testdata/half_plus_two_model_metadata.json, for today's saved_model_half_plus_two.py
# (tf_example has shape [None]) and today's SignatureDef (which has `defaults`).
_EXAMPLES = _tensor_info("tf_example:0", "DT_STRING", [-1])
HALF_PLUS_TWO_MODEL_METADATA = {
    "model_spec": {"name": "default", "signature_name": "", "version": "123"},
    "metadata": {
        "signature_def": {
            "signature_def": {
                "regress_x2_to_y3": _signature(
                    {"inputs": _tensor_info("x2:0", "DT_FLOAT", [-1, 1])},
                    {"outputs": _tensor_info("y3:0", "DT_FLOAT", [-1, 1])},
                    "tensorflow/serving/regress",
                ),
                "serving_default": _signature(
                    {"x": _tensor_info("x:0", "DT_FLOAT", [-1, 1])},
                    {"y": _tensor_info("y:0", "DT_FLOAT", [-1, 1])},
                    "tensorflow/serving/predict",
                ),
                "classify_x_to_y": _signature(
                    {"inputs": _EXAMPLES},
                    {"scores": _tensor_info("y:0", "DT_FLOAT", [-1, 1])},
                    "tensorflow/serving/classify",
                ),
                "regress_x_to_y2": _signature(
                    {"inputs": _EXAMPLES},
                    {"outputs": _tensor_info("y2:0", "DT_FLOAT", [-1, 1])},
                    "tensorflow/serving/regress",
                ),
                "regress_x_to_y": _signature(
                    {"inputs": _EXAMPLES},
                    {"outputs": _tensor_info("y:0", "DT_FLOAT", [-1, 1])},
                    "tensorflow/serving/regress",
                ),
            }
        }
    },
}


# ==================================================== single-model server (RunServer)
def test_get_model_status(tf_serving: RunningServer, testdata: ServingTestdata) -> None:
    """testGetModelStatus."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    with grpc.insecure_channel(tf_serving.grpc_address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        result = stub.GetModelStatus(request, RPC_TIMEOUT)
    assert len(result.model_version_status) == 1
    assert result.model_version_status[0].version == 123
    # OK error code (0) indicates no error occurred
    assert result.model_version_status[0].status.error_code == 0
    # ServerCore sets status for every version (entry.status.SetInParent() for OK).
    assert result.model_version_status[0].HasField("status")
    assert result.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def test_get_model_metadata(tf_serving: RunningServer, testdata: ServingTestdata) -> None:
    """testGetModelMetadata."""
    model_path = testdata.path("saved_model_half_plus_two_cpu")
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    request.metadata_field.append("signature_def")
    with grpc.insecure_channel(tf_serving.grpc_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.GetModelMetadata(request, RPC_TIMEOUT)
    assert result.model_spec.name == "default"
    assert result.model_spec.version.value == _get_model_version(model_path)
    assert len(result.metadata) == 1
    assert "signature_def" in result.metadata


def _classify(
    address: str, model_name: str = "default"
) -> classification_pb2.ClassificationResponse:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "classify_x_to_y"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Classify(request, RPC_TIMEOUT)


def _regress(address: str, model_name: str = "default") -> regression_pb2.RegressionResponse:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "regress_x_to_y"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Regress(request, RPC_TIMEOUT)


def _multi_inference_request(model_name: str) -> inference_pb2.MultiInferenceRequest:
    request = inference_pb2.MultiInferenceRequest()
    request.tasks.add().model_spec.name = model_name
    request.tasks[0].model_spec.signature_name = "regress_x_to_y"
    request.tasks[0].method_name = "tensorflow/serving/regress"
    request.tasks.add().model_spec.name = model_name
    request.tasks[1].model_spec.signature_name = "classify_x_to_y"
    request.tasks[1].method_name = "tensorflow/serving/classify"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    return request


def test_classify(tf_serving: RunningServer, testdata: ServingTestdata) -> None:
    """testClassify (_TestClassify on the TF1 model)."""
    result = _classify(tf_serving.grpc_address)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    expected_output = 3.0
    assert result.result.classifications[0].classes[0].score == expected_output
    verify_model_spec(
        result.model_spec,
        "default",
        "classify_x_to_y",
        _get_model_version(testdata.path("saved_model_half_plus_two_cpu")),
    )


def test_regress(tf_serving: RunningServer, testdata: ServingTestdata) -> None:
    """testRegress (_TestRegress on the TF1 model)."""
    result = _regress(tf_serving.grpc_address)
    assert len(result.result.regressions) == 1
    expected_output = 3.0
    assert result.result.regressions[0].value == expected_output
    verify_model_spec(
        result.model_spec,
        "default",
        "regress_x_to_y",
        _get_model_version(testdata.path("saved_model_half_plus_two_cpu")),
    )


def test_multi_inference(tf_serving: RunningServer, testdata: ServingTestdata) -> None:
    """testMultiInference (_TestMultiInference on the TF1 model)."""
    request = _multi_inference_request("default")
    with grpc.insecure_channel(tf_serving.grpc_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.MultiInference(request, RPC_TIMEOUT)
    assert len(result.results) == 2
    expected_output = 3.0
    assert result.results[0].regression_result.regressions[0].value == expected_output
    assert (
        result.results[1].classification_result.classifications[0].classes[0].score
        == expected_output
    )
    for i in range(2):
        verify_model_spec(
            result.results[i].model_spec,
            request.tasks[i].model_spec.name,
            request.tasks[i].model_spec.signature_name,
            _get_model_version(testdata.path("saved_model_half_plus_two_cpu")),
        )


def test_predict_batching(tf_serving: RunningServer, testdata: ServingTestdata) -> None:
    """testPredictBatching / testPredictSavedModel (_TestPredict, batching enabled)."""
    expected_version = _get_model_version(testdata.path("saved_model_half_plus_two_cpu"))
    verify_predict_request(
        tf_serving.grpc_address, expected_output=3.0, expected_version=expected_version
    )
    verify_predict_request(
        tf_serving.grpc_address,
        expected_output=3.0,
        specify_output=False,
        expected_version=expected_version,
    )


def test_good_grpc_channel_args(tf_serving: RunningServer, testdata: ServingTestdata) -> None:
    """testGoodGrpcChannelArgs: a server started with grpc_channel_arguments serves."""
    verify_predict_request(
        tf_serving.grpc_address,
        expected_output=3.0,
        specify_output=False,
        expected_version=_get_model_version(testdata.path("saved_model_half_plus_three")),
    )


def test_predict_uds(tf_serving: RunningServer, testdata: ServingTestdata) -> None:
    """testPredictUDS: the same Predict over --grpc_socket_path."""
    verify_predict_request(
        f"unix:{tf_serving.socket_path}",
        expected_output=3.0,
        specify_output=False,
        expected_version=_get_model_version(testdata.path("saved_model_half_plus_three")),
    )


def test_classify_rest(tf_serving: RunningServer) -> None:
    """testClassifyREST."""
    url = f"http://{tf_serving.rest_address}/v1/models/default:classify"
    json_req = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    resp_data = call_rest(url, json_req)
    assert json.loads(resp_data.decode()) == {"results": [[["", 3.0]]]}


def test_regress_rest(tf_serving: RunningServer) -> None:
    """testRegressREST."""
    url = f"http://{tf_serving.rest_address}/v1/models/default:regress"
    json_req = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    resp_data = call_rest(url, json_req)
    assert json.loads(resp_data.decode()) == {"results": [3.0]}


def test_predict_rest(tf_serving: RunningServer) -> None:
    """testPredictREST."""
    url = f"http://{tf_serving.rest_address}/v1/models/default:predict"
    json_req = {"instances": [2.0, 3.0, 4.0]}
    resp_data = call_rest(url, json_req)
    assert json.loads(resp_data.decode()) == {"predictions": [3.0, 3.5, 4.0]}


def test_predict_columnar_rest(tf_serving: RunningServer) -> None:
    """testPredictColumnarREST."""
    url = f"http://{tf_serving.rest_address}/v1/models/default:predict"
    json_req = {"inputs": [2.0, 3.0, 4.0]}
    resp_data = call_rest(url, json_req)
    assert json.loads(resp_data.decode()) == {"outputs": [3.0, 3.5, 4.0]}


def test_get_status_rest(tf_serving: RunningServer) -> None:
    """testGetStatusREST: the exact JSON, status included for an OK version."""
    url = f"http://{tf_serving.rest_address}/v1/models/default"
    resp_data = call_rest(url, None)
    assert json.loads(resp_data.decode()) == {
        "model_version_status": [
            {
                "version": "123",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def test_get_model_metadata_rest(tf_serving: RunningServer) -> None:
    """testGetModelMetadataREST: compared like the original, through SortedObject."""
    url = f"http://{tf_serving.rest_address}/v1/models/default/metadata"
    resp_data = call_rest(url, None)
    assert sorted_object(json.loads(resp_data.decode())) == sorted_object(
        HALF_PLUS_TWO_MODEL_METADATA
    )


def test_prometheus_endpoint(tf_serving: RunningServer) -> None:
    """testPrometheusEndpoint."""
    url = f"http://{tf_serving.rest_address}/monitoring/prometheus/metrics"
    resp_data = call_rest(url, None)
    assert "# TYPE" in resp_data.decode("utf-8")


# -------------------------------------------------- errors clients of TF Serving match on
def test_missing_model_and_signature_errors_grpc(tf_serving: RunningServer) -> None:
    """WaitForServerReady's contract, and the codes of a bad model / signature
    (predict_util.cc, classifier.cc, regressor.cc, multi_inference.cc)."""
    with grpc.insecure_channel(tf_serving.grpc_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "intentionally_missing_model"
        with pytest.raises(grpc.RpcError) as missing:
            stub.Predict(request, RPC_TIMEOUT)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert missing.value.details() == (
            "Servable not found for request: Latest(intentionally_missing_model)"
        )

        request = predict_pb2.PredictRequest()
        request.model_spec.name = "default"
        request.model_spec.version.value = 7
        with pytest.raises(grpc.RpcError) as version:
            stub.Predict(request, RPC_TIMEOUT)
        assert version.value.code() == grpc.StatusCode.NOT_FOUND
        assert version.value.details() == "Servable not found for request: Specific(default, 7)"

        request = predict_pb2.PredictRequest()
        request.model_spec.name = "default"
        request.model_spec.signature_name = "bad_signature"
        request.inputs["x"].dtype = types_pb2.DT_FLOAT
        request.inputs["x"].float_val.append(2.0)
        with pytest.raises(grpc.RpcError) as signature:
            stub.Predict(request, RPC_TIMEOUT)
        assert signature.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert signature.value.details() == 'Serving signature key "bad_signature" not found.'

        classify = classification_pb2.ClassificationRequest()
        classify.model_spec.name = "default"
        classify.model_spec.signature_name = "bad_signature"
        classify.input.example_list.examples.add().features.feature["x"].float_list.value.append(1)
        with pytest.raises(grpc.RpcError) as classify_error:
            stub.Classify(classify, RPC_TIMEOUT)
        assert classify_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert classify_error.value.details() == (
            "No signature was found with the name: bad_signature"
        )

        multi = _multi_inference_request("default")
        multi.tasks[1].model_spec.signature_name = "bad_signature"
        with pytest.raises(grpc.RpcError) as multi_error:
            stub.MultiInference(multi, RPC_TIMEOUT)
        assert multi_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert multi_error.value.details() == (
            "Requested signature not found in model graph: bad_signature"
        )

        multi = _multi_inference_request("default")
        multi.tasks[1].method_name = "tensorflow/serving/predict"
        with pytest.raises(grpc.RpcError) as method_error:
            stub.MultiInference(multi, RPC_TIMEOUT)
        assert method_error.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert method_error.value.details() == (
            "Unsupported signature method_name: tensorflow/serving/predict"
        )


def test_missing_model_and_signature_errors_rest(tf_serving: RunningServer) -> None:
    """The same failures over REST: {"error": ...} with the mapped HTTP status."""
    base = f"http://{tf_serving.rest_address}/v1/models"
    status, body = call_rest_error(f"{base}/missing_model:predict", {"instances": [1.0]})
    assert (status, body) == (
        404,
        {"error": "Servable not found for request: Latest(missing_model)"},
    )
    status, body = call_rest_error(f"{base}/default/versions/7", None)
    assert (status, body) == (404, {"error": "Could not find version 7 of model default"})
    status, body = call_rest_error(
        f"{base}/default:predict", {"signature_name": "bad_signature", "instances": [1.0]}
    )
    assert (status, body) == (
        400,
        {"error": 'Serving signature name: "bad_signature" not found in signature def'},
    )
    status, body = call_rest_error(
        f"{base}/default:classify", {"signature_name": "bad_signature", "examples": [{"x": 2.0}]}
    )
    assert (status, body) == (400, {"error": "No signature was found with the name: bad_signature"})
    status, body = call_rest_error(f"{base}/default:predict", {"instances": ["two"]})
    assert (status, body) == (
        400,
        {
            "error": "Failed to process element: 0 of 'instances' list. Error: "
            'INVALID_ARGUMENT: JSON Value: "two" Type: String is not of expected type: float'
        },
    )


def test_bad_model_config(testdata: ServingTestdata) -> None:
    """testBadModelConfig: the server fails with protobuf's text-format parse error."""
    proc = run_graph_cli(
        f"--port={free_port()}",
        f"--model_config_file={testdata.path('bad_model_config.txt')}",
        timeout=60,
    )
    error_message = "Error parsing text-format tensorflow.serving.ModelServerConfig"
    assert proc.returncode != 0
    assert proc.stderr.find(error_message) > -1


# ===================================================== config-file server (RunServer)
def test_good_model_config(config_server: GraphServer, testdata: ServingTestdata) -> None:
    """testGoodModelConfig."""
    address = config_server.grpc_target
    verify_predict_request(
        address,
        model_name="half_plus_two",
        expected_output=3.0,
        expected_version=_get_model_version(testdata.path("saved_model_half_plus_two_cpu")),
    )
    verify_predict_request(
        address,
        model_name="half_plus_two",
        expected_output=3.0,
        specify_output=False,
        expected_version=_get_model_version(testdata.path("saved_model_half_plus_two_cpu")),
    )
    verify_predict_request(
        address,
        model_name="half_plus_three",
        expected_output=4.0,
        expected_version=_get_model_version(testdata.path("saved_model_half_plus_three")),
    )
    verify_predict_request(
        address,
        model_name="half_plus_three",
        expected_output=4.0,
        specify_output=False,
        expected_version=_get_model_version(testdata.path("saved_model_half_plus_three")),
    )


def test_classify_tf2(config_server: GraphServer, testdata: ServingTestdata) -> None:
    """testClassifyTf2 (_TestClassify on saved_model_half_plus_two_tf2_cpu)."""
    name = "saved_model_half_plus_two_tf2_cpu"
    result = _classify(config_server.grpc_target, name)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    assert result.result.classifications[0].classes[0].score == 3.0
    verify_model_spec(
        result.model_spec, name, "classify_x_to_y", _get_model_version(testdata.path(name))
    )


def test_regress_tf2(config_server: GraphServer, testdata: ServingTestdata) -> None:
    """testRegressTf2 (_TestRegress on saved_model_half_plus_two_tf2_cpu)."""
    name = "saved_model_half_plus_two_tf2_cpu"
    result = _regress(config_server.grpc_target, name)
    assert len(result.result.regressions) == 1
    assert result.result.regressions[0].value == 3.0
    verify_model_spec(
        result.model_spec, name, "regress_x_to_y", _get_model_version(testdata.path(name))
    )


def test_multi_inference_tf2(config_server: GraphServer, testdata: ServingTestdata) -> None:
    """testMultiInferenceTf2 (_TestMultiInference on saved_model_half_plus_two_tf2_cpu)."""
    name = "saved_model_half_plus_two_tf2_cpu"
    request = _multi_inference_request(name)
    with grpc.insecure_channel(config_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.MultiInference(request, RPC_TIMEOUT)
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    for i in range(2):
        verify_model_spec(
            result.results[i].model_spec,
            request.tasks[i].model_spec.name,
            request.tasks[i].model_spec.signature_name,
            _get_model_version(testdata.path(name)),
        )


def test_tf_saved_model_save(config_server: GraphServer, testdata: ServingTestdata) -> None:
    """test_tf_saved_model_save."""
    name = "tf_saved_model_save"
    verify_predict_request(
        config_server.grpc_target,
        model_name=name,
        expected_output=12.0,
        specify_output=False,
        expected_version=_get_model_version(testdata.path(name)),
    )


def test_tf_saved_model_save_multiple_signatures(
    config_server: GraphServer, testdata: ServingTestdata
) -> None:
    """test_tf_saved_model_save_multiple_signatures."""
    name = "tf_saved_model_save_multiple_signatures"
    expected_version = _get_model_version(testdata.path(name))
    verify_predict_request(
        config_server.grpc_target,
        model_name=name,
        expected_output=2.0,
        expected_version=expected_version,
        signature_name="custom_signature_key",
    )
    verify_predict_request(
        config_server.grpc_target,
        model_name=name,
        expected_output=1.0,
        expected_version=expected_version,
    )


def test_sequential_keras_saved_model_save(
    config_server: GraphServer, testdata: ServingTestdata
) -> None:
    """test_sequential_keras_saved_model_save."""
    name = "keras_sequential_saved_model_save"
    verify_predict_request(
        config_server.grpc_target,
        model_name=name,
        batch_input=True,
        specify_output=False,
        expected_output=2.0,
        expected_version=_get_model_version(testdata.path(name)),
    )


def test_handle_reload_config_request_adds_and_removes(
    config_server: GraphServer, testdata: ServingTestdata
) -> None:
    """ModelService.HandleReloadConfigRequest (model_service_impl.cc): the pushed list
    is the new truth; models left out are unloaded, new ones served once it answers."""
    config = model_management_pb2.ReloadConfigRequest()
    model = config.config.model_config_list.config.add()
    model.name = "half_plus_three"
    model.base_path = testdata.path("saved_model_half_plus_three")
    model.model_platform = "tensorflow"
    with grpc.insecure_channel(config_server.grpc_target) as channel:
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        response = models.HandleReloadConfigRequest(config, RPC_TIMEOUT * 3)
        assert response.status.error_code == 0
        verify_predict_request(
            config_server.grpc_target,
            model_name="half_plus_three",
            expected_output=4.0,
            expected_version=123,
        )

        def half_plus_two_gone() -> bool:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = "half_plus_two"
            status = models.GetModelStatus(request, RPC_TIMEOUT)
            return all(
                s.state == get_model_status_pb2.ModelVersionStatus.END
                for s in status.model_version_status
            )

        wait_for(half_plus_two_gone, timeout=30, message="half_plus_two unloaded")
        with pytest.raises(grpc.RpcError) as removed:
            verify_predict_request(
                config_server.grpc_target,
                model_name="half_plus_two",
                expected_output=3.0,
                expected_version=123,
            )
        assert removed.value.code() == grpc.StatusCode.NOT_FOUND

        # Adding it back (with a version label) serves it again.
        model = config.config.model_config_list.config.add()
        model.name = "half_plus_two"
        model.base_path = testdata.path("saved_model_half_plus_two_cpu")
        model.model_platform = "tensorflow"
        response = models.HandleReloadConfigRequest(config, RPC_TIMEOUT * 3)
        assert response.status.error_code == 0
        verify_predict_request(
            config_server.grpc_target,
            model_name="half_plus_two",
            expected_output=3.0,
            expected_version=123,
        )
        model.version_labels["stable"] = 123
        response = models.HandleReloadConfigRequest(config, RPC_TIMEOUT * 3)
        assert response.status.error_code == 0
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.model_spec.version_label = "stable"
        request.inputs["x"].dtype = types_pb2.DT_FLOAT
        request.inputs["x"].float_val.append(2.0)
        request.inputs["x"].tensor_shape.dim.add().size = 1
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.Predict(request, RPC_TIMEOUT)
        assert result.outputs["y"].float_val[0] == 3.0
        assert result.model_spec.version.value == 123
    # ... and over REST (api_rest.md: /v1/models/${MODEL_NAME}/labels/${LABEL}:predict).
    url = f"{config_server.rest_url}/v1/models/half_plus_two/labels/stable:predict"
    assert json.loads(call_rest(url, {"instances": [2.0]})) == {"predictions": [3.0]}


def test_model_config_reload(config_server: GraphServer, testdata: ServingTestdata) -> None:
    """testModelConfigReload: the polled file is rewritten to half_plus_three only."""
    config_path = config_server.config_path
    poll_period = 1
    config_path.write_text(
        BASE_CONFIG_PROTO.format(
            name="half_plus_two", model_path=testdata.path("saved_model_half_plus_two_cpu")
        )
    )

    def serves(model_name: str, expected_output: float, version_path: str) -> bool:
        verify_predict_request(
            config_server.grpc_target,
            model_name=model_name,
            expected_output=expected_output,
            specify_output=False,
            expected_version=_get_model_version(version_path),
        )
        return True

    wait_for(
        lambda: serves("half_plus_two", 3.0, testdata.path("saved_model_half_plus_two_cpu")),
        timeout=30,
        message="half_plus_two from the config file",
    )
    # Rewrite the config file with half_plus_three model
    config_path.write_text(
        BASE_CONFIG_PROTO.format(
            name="half_plus_three", model_path=testdata.path("saved_model_half_plus_three")
        )
    )
    # The original sleeps poll_period + 1 s; a bounded poll is the robust equivalent.
    wait_for(
        lambda: serves("half_plus_three", 4.0, testdata.path("saved_model_half_plus_three")),
        timeout=poll_period + 30,
        message="half_plus_three from the rewritten config file",
    )
