"""PredictionService.Predict and GetModelMetadata over gRPC with the official stubs."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from support.model_zoo import KERAS_WEIGHTS
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)


@pytest.fixture(scope="module")
def stub(graph_server):
    channel = grpc.insecure_channel(graph_server.grpc_target)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def predict_request(name: str, **inputs: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    return info.value


def test_predict_latest_like_tf_serving_integration_test(stub):
    # TF Serving's own VerifyPredictRequest: x=[2.0] (shape [1]), output_filter y.
    request = predict_request("half_plus_two", x=np.array([2.0], dtype=np.float32))
    request.output_filter.append("y")
    result = stub.Predict(request, timeout=10)
    assert list(result.outputs) == ["y"]
    assert result.outputs["y"].dtype == tf.float32.as_datatype_enum
    assert list(result.outputs["y"].float_val) == [0.5 * 2.0 + 3.0]  # latest = v2 (b=3)
    assert result.model_spec.name == "half_plus_two"
    assert result.model_spec.version.value == 2
    assert result.model_spec.signature_name == "serving_default"


@pytest.mark.parametrize(
    ("selector", "expected_version"), [("v1", 1), ("v2", 2), ("stable", 1), ("canary", 2)]
)
def test_predict_by_version_and_label(stub, selector, expected_version):
    request = predict_request("half_plus_two", x=np.array([[1.0], [4.0]], dtype=np.float32))
    if selector.startswith("v"):
        request.model_spec.version.value = int(selector[1:])
    else:
        request.model_spec.version_label = selector
    result = stub.Predict(request, timeout=10)
    b = 2.0 if expected_version == 1 else 3.0
    np.testing.assert_allclose(tf.make_ndarray(result.outputs["y"]), [[0.5 + b], [2.0 + b]])
    assert result.model_spec.version.value == expected_version


def test_predict_tf2_mixed_dtypes_and_tensor_content(stub):
    a = np.array([[1.5, 2.0], [3.0, -1.0]], dtype=np.float32)
    b = np.array([10, 20], dtype=np.int64)
    request = predict_request("tf2_multi", a=a, b=b)
    # tf.make_tensor_proto packs these into tensor_content; the server must decode it.
    assert request.inputs["a"].tensor_content
    result = stub.Predict(request, timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(result.outputs["sum"]), a.sum(axis=1) + b)
    assert list(result.outputs["b_times_2"].int64_val) == [20, 40]
    assert result.outputs["b_times_2"].dtype == tf.int64.as_datatype_enum


def test_predict_named_signature_with_bytes(stub):
    texts = np.array([b"hello", b"\x00\xffbin", b""], dtype=object)
    request = predict_request("tf2_multi", text=texts)
    request.model_spec.signature_name = "echo_bytes"
    result = stub.Predict(request, timeout=10)
    assert list(result.outputs["text_bytes"].string_val) == list(texts)
    assert list(result.outputs["length"].int_val) == [5, 5, 0]
    assert result.model_spec.signature_name == "echo_bytes"


def test_predict_output_filter_selects_outputs(stub):
    request = predict_request(
        "tf2_multi",
        a=np.zeros((1, 2), dtype=np.float32),
        b=np.array([7], dtype=np.int64),
    )
    request.output_filter.append("b_times_2")
    result = stub.Predict(request, timeout=10)
    assert list(result.outputs) == ["b_times_2"]


def test_predict_keras_export(stub):
    features = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    result = stub.Predict(predict_request("keras_export", features=features), timeout=10)
    kernel, bias = KERAS_WEIGHTS
    expected = features @ np.array(kernel, dtype=np.float32).reshape(3, 1) + bias
    np.testing.assert_allclose(tf.make_ndarray(result.outputs["output_0"]), expected, rtol=1e-6)


def test_predict_short_value_list_repeats_last_value_like_tensorflow(stub):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    tensor = request.inputs["x"]
    tensor.dtype = tf.float32.as_datatype_enum
    tensor.tensor_shape.dim.add().size = 3
    tensor.tensor_shape.dim.add().size = 1
    tensor.float_val.append(2.0)  # one value for 3 elements: TF repeats it
    result = stub.Predict(request, timeout=10)
    assert list(result.outputs["y"].float_val) == [4.0, 4.0, 4.0]


def test_unknown_model_is_not_found_with_tf_serving_text(stub):
    request = predict_request("intentionally_missing_model", x=np.array([1.0], np.float32))
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == (
        "Servable not found for request: Latest(intentionally_missing_model)"
    )


def test_unknown_version_is_not_found(stub):
    request = predict_request("half_plus_two", x=np.array([1.0], np.float32))
    request.model_spec.version.value = 42
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Specific(half_plus_two, 42)"


def test_unknown_label_is_invalid_argument_as_in_tf_serving(stub):
    # ServerCore::GetModelVersionForLabel answers INVALID_ARGUMENT, not NOT_FOUND.
    request = predict_request("half_plus_two", x=np.array([1.0], np.float32))
    request.model_spec.version_label = "nightly"
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Unrecognized servable version label: nightly"


def test_missing_model_name(stub):
    error = rpc_error(stub.Predict, predict_pb2.PredictRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "ModelSpec has no name specified."


def test_unknown_signature_is_failed_precondition(stub):
    request = predict_request("half_plus_two", x=np.array([1.0], np.float32))
    request.model_spec.signature_name = "nope"
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == 'Serving signature key "nope" not found.'


def test_missing_and_extra_inputs_are_named(stub):
    request = predict_request(
        "tf2_multi", a=np.zeros((1, 2), np.float32), c=np.array([1]), d=np.array([2])
    )
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "input size does not match signature: 3!=2 len({a,c,d}) != len({a,b}). "
        "Sent extra: {c,d}. Missing but required: {b}."
    )

    request = predict_request("tf2_multi", a=np.zeros((1, 2), np.float32), c=np.array([1]))
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "input tensor alias not found in signature: c. Inputs expected to be in the set {a,b}."
    )

    request = predict_request("tf2_multi", a=np.zeros((1, 2), np.float32))
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("input size does not match signature: 1!=2")


def test_wrong_dtype_is_invalid_argument(stub):
    request = predict_request("half_plus_two", x=np.array([[1]], dtype=np.int64))
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Expects arg[0] to be float but int64 is provided"


def test_malformed_tensor_is_invalid_argument(stub):
    request = predict_request("half_plus_two", x=np.array([1.0], np.float32))
    request.inputs["x"].tensor_content = b"\x00\x01\x02"  # not a whole float
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "tensor parsing error: x"


def test_unknown_output_filter_is_invalid_argument(stub):
    request = predict_request("half_plus_two", x=np.array([1.0], np.float32))
    request.output_filter.append("z")
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("output tensor alias not found in signature: z")


def test_graph_error_keeps_tensorflow_code(stub):
    # 3 rows of a, 2 of b: TensorFlow itself rejects the add at run time.
    request = predict_request(
        "tf2_multi", a=np.zeros((3, 2), np.float32), b=np.array([1, 2], np.int64)
    )
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Incompatible shapes" in error.details()


def test_get_model_metadata_packs_signature_def_map(stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "tf2_multi"
    request.metadata_field.append("signature_def")
    result = stub.GetModelMetadata(request, timeout=10)
    assert result.model_spec.name == "tf2_multi"
    assert result.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert result.metadata["signature_def"].Unpack(signature_map)
    serving = signature_map.signature_def["serving_default"]
    assert set(serving.inputs) == {"a", "b"}
    assert serving.inputs["b"].dtype == tf.int64.as_datatype_enum
    assert set(signature_map.signature_def["echo_bytes"].outputs) == {"text_bytes", "length"}


def test_get_model_metadata_rejects_unknown_field(stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "tf2_multi"
    request.metadata_field.append("graph")
    error = rpc_error(stub.GetModelMetadata, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Metadata field graph is not supported"
