"""The REST API over plain HTTP against the real graph server (``graph_server``).

Request/answer pairs come from TF Serving's api_rest.md and http_rest_api_handler_test;
where an answer is computed, the same call over the official gRPC stubs is the oracle.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from graph_service.errors import ServingError

V1 = "/v1/models/half_plus_two/versions/1"  # y = 0.5 x + 2 (TF Serving's half_plus_two)


@pytest.fixture(scope="module")
def http(graph_server):
    with httpx.Client(base_url=graph_server.rest_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def channel(graph_server):
    with grpc.insecure_channel(graph_server.grpc_target) as chan:
        yield chan


@pytest.fixture(scope="module")
def predictions(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def post(http: httpx.Client, path: str, body) -> httpx.Response:
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return http.post(path, content=content)


def ok_json(response: httpx.Response):
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def grpc_predict(stub, name: str, version: int | None = None, signature: str = "", **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    response = stub.Predict(request, timeout=30)
    return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}


# ------------------------------------------------------------------ TF Serving's own examples


def test_api_rest_md_and_handler_test_examples(http):
    response = post(http, f"{V1}:predict", '{"instances": [1.0,2.0,5.0]}')
    assert ok_json(response) == {"predictions": [2.5, 3.0, 4.5]}
    regress = {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}
    assert ok_json(post(http, f"{V1}:regress", regress)) == {"results": [42]}
    classify = {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]}
    assert ok_json(post(http, f"{V1}:classify", classify)) == {"results": [[["", 12]]]}
    labelled = {"signature_name": "classify_x_to_y", "examples": [{"x": 10.0}]}
    path = "/v1/models/half_plus_two/labels/stable:classify"
    assert ok_json(post(http, path, labelled)) == {"results": [[["", 7]]]}
    columnar = {"signature_name": "serving_default", "inputs": [3.0, 4.0]}
    assert ok_json(post(http, f"{V1}:predict", columnar)) == {"outputs": [3.5, 4.0]}
    missing = post(http, "/v1/models/half:predict", '{"instances": [1.0,5.0]}')
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.json() == {"error": "Servable not found for request: Latest(half)"}


@pytest.mark.parametrize(
    ("selector", "intercept"),
    [("", 3.0), ("/versions/1", 2.0), ("/versions/2", 3.0), ("/labels/stable", 2.0),
     ("/labels/canary", 3.0)],
)
def test_versions_and_labels_pick_the_served_version(http, selector, intercept):
    body = {"instances": [[1.0], [4.0]]}
    answer = ok_json(post(http, f"/v1/models/half_plus_two{selector}:predict", body))
    assert answer == {"predictions": [[0.5 + intercept], [2.0 + intercept]]}


def test_regress_examples_and_context(http, predictions):
    plain = {"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}, {"x": 2.0}]}
    assert ok_json(post(http, f"{V1}:regress", plain)) == {"results": [2.5, 3.0]}
    # The example's own feature wins over the context's (TF Serving merges context + example).
    with_context = {
        "signature_name": "regress_x_to_y2",
        "context": {"x": 2.0},
        "examples": [{}, {"x": 4.0}],
    }
    answer = ok_json(post(http, f"{V1}:regress", with_context))
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.version.value = 1
    request.model_spec.signature_name = "regress_x_to_y2"
    examples = request.input.example_list_with_context
    examples.context.features.feature["x"].float_list.value.append(2.0)
    examples.examples.add()
    examples.examples.add().features.feature["x"].float_list.value.append(4.0)
    expected = [r.value for r in predictions.Regress(request, timeout=30).result.regressions]
    assert answer == {"results": expected} == {"results": [4.0, 5.0]}


# ------------------------------------------------------------------ parity with gRPC


def test_floats_match_grpc_bit_for_bit(http, predictions):
    rng = np.random.default_rng(5)
    x = np.concatenate([
        rng.standard_normal(40) * 1e3, rng.standard_normal(20) * 1e-20, [1 / 3, 0.1, 1e30],
    ]).astype(np.float32).reshape(-1, 1)
    expected = grpc_predict(predictions, "half_plus_two", 1, x=x)["y"]
    answer = ok_json(post(http, f"{V1}:predict", {"instances": x.tolist()}))
    np.testing.assert_array_equal(np.array(answer["predictions"], dtype=np.float32), expected)

    features = rng.standard_normal((50, 3)).astype(np.float32)
    keras_expected = grpc_predict(predictions, "keras_export", features=features)
    (values,) = keras_expected.values()
    answer = ok_json(post(http, "/v1/models/keras_export:predict", {"inputs": features.tolist()}))
    np.testing.assert_array_equal(np.array(answer["outputs"], dtype=np.float32), values)
    assert values.shape == (50, 1)


def test_named_inputs_in_both_formats_match_grpc(http, predictions):
    a = np.array([[1.5, 2.0], [3.0, -1.0], [0.1, 0.2]], dtype=np.float32)
    b = np.array([10, 20, -(2**40)], dtype=np.int64)
    expected = grpc_predict(predictions, "tf2_multi", a=a, b=b)
    rows = [{"a": ai, "b": bi} for ai, bi in zip(a.tolist(), b.tolist(), strict=True)]
    row_answer = ok_json(post(http, "/v1/models/tf2_multi:predict", {"instances": rows}))
    # float32 text reads back as the same float32 (-2**40 is written as -1.09951163e+12).
    row_sums = np.array([p["sum"] for p in row_answer["predictions"]], dtype=np.float32)
    np.testing.assert_array_equal(row_sums, expected["sum"])
    assert [p["b_times_2"] for p in row_answer["predictions"]] == expected["b_times_2"].tolist()
    assert all(set(p) == {"sum", "b_times_2"} for p in row_answer["predictions"])
    assert all(type(p["b_times_2"]) is int for p in row_answer["predictions"])
    columns = {"inputs": {"a": a.tolist(), "b": b.tolist()}}
    column_answer = ok_json(post(http, "/v1/models/tf2_multi:predict", columns))["outputs"]
    assert set(column_answer) == {"sum", "b_times_2"}
    np.testing.assert_array_equal(np.array(column_answer["sum"], np.float32), expected["sum"])
    assert column_answer["b_times_2"] == expected["b_times_2"].tolist()


def test_bytes_travel_as_b64_both_ways(http, predictions):
    texts = [b"\x00\xffbinary\x10", "héllo".encode(), b""]
    body = {
        "signature_name": "echo_bytes",
        "instances": [{"b64": base64.b64encode(t).decode()} for t in texts[:2]] + [""],
    }
    answer = ok_json(post(http, "/v1/models/tf2_multi:predict", body))["predictions"]
    assert [base64.b64decode(p["text_bytes"]["b64"]) for p in answer] == texts
    expected = grpc_predict(
        predictions, "tf2_multi", signature="echo_bytes", text=np.array(texts, dtype=object)
    )
    assert [p["length"] for p in answer] == expected["length"].tolist() == [9, 6, 0]


def test_nan_and_infinity_in_and_out(http):
    response = post(http, f"{V1}:predict", '{"instances": [NaN, Infinity, -Infinity, 2.0]}')
    assert response.status_code == 200
    assert response.text.replace(" ", "") == '{"predictions":[NaN,Infinity,-Infinity,3.0]}'
    values = response.json()["predictions"]
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == -math.inf


def test_large_request(http, predictions):
    features = np.random.default_rng(1).uniform(-5, 5, (3000, 3)).astype(np.float32)
    expected = next(iter(grpc_predict(predictions, "keras_export", features=features).values()))
    rows = {"instances": [{"features": row} for row in features.tolist()]}
    answer = ok_json(post(http, "/v1/models/keras_export:predict", rows))
    np.testing.assert_array_equal(np.array(answer["predictions"], dtype=np.float32), expected)


def test_concurrent_requests_each_get_their_own_answer(graph_server):
    async def one(client: httpx.AsyncClient, x: float) -> float:
        response = await client.post(f"{V1}:predict", json={"instances": [x]})
        assert response.status_code == 200, response.text
        return response.json()["predictions"][0]

    async def many() -> list[float]:
        async with httpx.AsyncClient(base_url=graph_server.rest_url, timeout=30) as client:
            return await asyncio.gather(*(one(client, float(i)) for i in range(32)))

    assert asyncio.run(many()) == [0.5 * i + 2.0 for i in range(32)]


# ------------------------------------------------------------------ status and metadata


def test_model_status_json_has_tf_servings_shape(http):
    expected_v1 = {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert ok_json(http.get("/v1/models/half_plus_two/versions/1")) == expected_v1
    assert ok_json(http.get("/v1/models/half_plus_two/labels/stable")) == expected_v1
    everything = ok_json(http.get("/v1/models/half_plus_two"))["model_version_status"]
    assert sorted(s["version"] for s in everything) == ["1", "2"]
    assert {s["state"] for s in everything} == {"AVAILABLE"}


def test_broken_version_status_matches_grpc(http, channel):
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "broken"
    by_grpc = {
        str(s.version): (
            get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
            s.status.error_code,
            s.status.error_message,
        )
        for s in stub.GetModelStatus(request, timeout=10).model_version_status
    }
    answer = ok_json(http.get("/v1/models/broken"))["model_version_status"]
    error_codes = {s["version"]: s["status"]["error_code"] for s in answer}
    assert error_codes["1"] == "OK" and error_codes["2"] != "OK"
    assert answer[0]["status"]["error_message"] or answer[1]["status"]["error_message"]
    from tensorflow.core.protobuf import error_codes_pb2

    by_rest = {
        s["version"]: (s["state"], error_codes_pb2.Code.Value(s["status"]["error_code"]),
                       s["status"]["error_message"])
        for s in answer
    }
    assert by_rest == by_grpc


def test_metadata_json_matches_grpc(http, predictions):
    answer = ok_json(http.get(f"{V1}/metadata"))
    assert answer["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "1"}
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "half_plus_two"
    request.model_spec.version.value = 1
    response = predictions.GetModelMetadata(request, timeout=10)
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_defs)
    expected = json_format.MessageToDict(
        signature_defs,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    assert answer["metadata"]["signature_def"] == expected
    serving = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert serving["method_name"] == "tensorflow/serving/predict"
    assert serving["inputs"]["x"] == {
        "name": "x:0",
        "dtype": "DT_FLOAT",
        "tensor_shape": {
            "dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}],
            "unknown_rank": False,
        },
    }
    assert set(answer["metadata"]["signature_def"]["signature_def"]) >= {
        "serving_default", "regress_x_to_y", "regress_x_to_y2", "regress_x2_to_y3",
        "classify_x_to_y",
    }
    labelled = ok_json(http.get("/v1/models/half_plus_two/labels/canary/metadata"))
    assert labelled["model_spec"]["version"] == "2"


# ------------------------------------------------------------------ errors

BAD_REQUESTS = [
    ("POST", f"{V1}:predict", "", 400, "JSON Parse error: The document is empty"),
    ("POST", f"{V1}:predict", "instances = [1, 2]", 400, "JSON Parse error: Invalid value."),
    ("POST", f"{V1}:predict", '{"instances": ["x", "y"]}', 400, "not of expected type: float"),
    ("POST", f"{V1}:predict", '{"signature_name": 100}', 400,
     "'signature_name' key must be a string value."),
    ("POST", f"{V1}:predict", '{"instances": [1], "inputs": [1]}', 400,
     "expecting only one of 'inputs' or 'instances' keys to exist"),
    ("POST", f"{V1}:predict", '{"instances": [[1], [2, 3]]}', 400,
     "Expecting tensor size: 1 but got: 2"),
    ("POST", f"{V1}:predict", '{"instances": [1e999]}', 400, "Number too big"),
    ("POST", f"{V1}:predict", '{"instances": [1], "signature_name": "nope"}', 400,
     'Serving signature name: "nope" not found in signature def'),
    ("POST", "/v1/models/tf2_multi:predict", '{"inputs": {"a": [[1, 2]]}}', 400,
     "Missing named input: b in 'inputs' object."),
    ("POST", "/v1/models/tf2_multi:predict",
     json.dumps({"instances": [{"a": [1, 2], "b": 2**63}]}), 400,
     "is not of expected type: int64"),
    ("POST", "/v1/models/tf2_multi:predict",
     '{"signature_name": "echo_bytes", "instances": [{"b64": "%%%"}]}', 400,
     "Unable to base64 decode"),
    ("POST", "/v1/models/half_plus_two/labels/nope:predict", '{"instances": [1]}', 400,
     "Unrecognized servable version label: nope"),
    ("POST", "/v1/models/half_plus_two/versions/7:predict", '{"instances": [1]}', 404,
     "Servable not found for request"),
    ("POST", f"{V1}:regress", '{"instances": [1]}', 400,
     "key 'examples' is expected and was not found"),
    ("POST", f"{V1}:classify", '{"examples": [{"x": [1, 2.5]}]}', 400,
     "Unexpected element type in feature: x expecting type: int64"),
    ("PUT", "/v1/models/half_plus_two:predict", "{}", 400,
     "Malformed request: PUT /v1/models/half_plus_two:predict"),
    ("GET", "/v1/models/half_plus_two:predict", "", 400,
     "Malformed request: GET /v1/models/half_plus_two:predict"),
    ("POST", "/v1/models/half_plus_two", "{}", 400,
     "Malformed request: POST /v1/models/half_plus_two"),
    ("POST", "/v1/models/half_plus_two/versions/x:predict", "{}", 400, "Malformed request"),
    ("GET", "/v1/models", "", 400, "Missing model name in request."),
    ("GET", "/v1/foo", "", 400, "Malformed request: GET /v1/foo"),
    ("POST", "/v1/models/foo/versions/99999999999999999999:regress", "{}", 400,
     "Failed to convert version: 99999999999999999999 to numeric."),
    ("GET", "/v1/models/nope", "", 404, "nope"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_tf_serving_errors(http, method, path, body, status, message):
    response = http.request(method, path, content=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert list(answer) == ["error"]
    assert message in answer["error"]
    assert "Traceback" not in answer["error"]


@pytest.mark.parametrize(
    ("signature", "feature"),
    [("serving_default", 1.0), ("classify_x_to_y", 1)],  # not a classifier; int64 for float
)
def test_core_errors_keep_their_grpc_code_and_message(http, predictions, signature, feature):
    # Decodes fine, fails in the core: REST shows gRPC's details with the mapped status.
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.version.value = 1
    request.model_spec.signature_name = signature
    example = request.input.example_list.examples.add()
    if isinstance(feature, float):
        example.features.feature["x"].float_list.value.append(feature)
    else:
        example.features.feature["x"].int64_list.value.append(feature)
    with pytest.raises(grpc.RpcError) as caught:
        predictions.Classify(request, timeout=30)
    body = {"signature_name": signature, "examples": [{"x": feature}]}
    response = post(http, f"{V1}:classify", body)
    assert response.status_code == ServingError(caught.value.code(), "").http_status
    assert response.status_code == 400
    assert response.json() == {"error": caught.value.details()}


def test_paths_outside_the_api_are_plain_404(http):
    for path in ("/index", "/", "/v2/models/half_plus_two"):
        response = http.get(path)
        assert response.status_code == 404
        assert "application/json" not in response.headers.get("content-type", "")


def test_model_names_are_percent_decoded_and_paths_case_insensitive(http):
    encoded = "/v1/models/half%5Fplus%5Ftwo/versions/1:predict"
    assert ok_json(post(http, encoded, {"instances": [1.0]})) == {"predictions": [2.5]}
    shouting = "/V1/MODELS/half_plus_two/VERSIONS/1:predict"
    assert ok_json(post(http, shouting, {"instances": [1.0]})) == {"predictions": [2.5]}
    # The verb itself must be lower case, as in TF Serving.
    assert post(http, "/v1/models/half_plus_two:PREDICT", "{}").status_code == 400
    # Any character but '/' and ':' may be sent percent-encoded; the core sees it decoded.
    unknown = http.get("/v1/models/no%20such%2Bmodel%3Ahere")
    assert unknown.status_code == 404
    assert "no such+model:here" in unknown.json()["error"]


def test_monitoring_path_serves_prometheus_text(http, graph_server):
    post(http, f"{V1}:predict", {"instances": [1.0]})
    response = http.get(graph_server.metrics_path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE" in response.text
    assert 'model_name="half_plus_two"' in response.text
