"""Classify, Regress and MultiInference over serialized tf.Example (TF1 half_plus_two)."""

from __future__ import annotations

import grpc
import pytest
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)


@pytest.fixture(scope="module")
def stub(graph_server):
    channel = grpc.insecure_channel(graph_server.grpc_target)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def examples(*rows: dict[str, float]) -> input_pb2.Input:
    inp = input_pb2.Input()
    for row in rows:
        example = inp.example_list.examples.add()
        for key, value in row.items():
            example.features.feature[key].float_list.value.append(value)
    return inp


def test_classify_like_tf_serving_integration_test(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.version.value = 1
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.CopyFrom(examples({"x": 2.0}))
    result = stub.Classify(request, timeout=10)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    assert result.result.classifications[0].classes[0].score == 3.0
    assert result.result.classifications[0].classes[0].label == ""
    assert (result.model_spec.name, result.model_spec.version.value) == ("half_plus_two", 1)
    assert result.model_spec.signature_name == "classify_x_to_y"


def test_regress_several_examples_latest_version(stub):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "regress_x_to_y2"
    request.input.CopyFrom(examples({"x": 2.0}, {"x": -4.0}))
    result = stub.Regress(request, timeout=10)
    # y2 = 0.5 x + c with c = 3 in both versions.
    assert [r.value for r in result.result.regressions] == [4.0, 1.0]
    assert result.model_spec.version.value == 2


def test_regress_with_context_merges_features(stub):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.version_label = "stable"
    request.model_spec.signature_name = "regress_x_to_y2"
    with_context = request.input.example_list_with_context
    with_context.context.features.feature["x"].float_list.value.append(10.0)
    with_context.examples.add().features.feature["x"].float_list.value.append(2.0)
    with_context.examples.add()  # inherits x = 10 from the context
    result = stub.Regress(request, timeout=10)
    # y2 = 0.5 x + 3
    assert [r.value for r in result.result.regressions] == [4.0, 8.0]
    assert result.model_spec.version.value == 1


def test_multi_inference_runs_every_task(stub):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (
        ("regress_x_to_y", "tensorflow/serving/regress"),
        ("classify_x_to_y", "tensorflow/serving/classify"),
    ):
        task = request.tasks.add()
        task.model_spec.name = "half_plus_two"
        task.model_spec.version.value = 1
        task.model_spec.signature_name = signature
        task.method_name = method
    request.input.CopyFrom(examples({"x": 2.0}))
    result = stub.MultiInference(request, timeout=10)
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    assert [r.model_spec.signature_name for r in result.results] == [
        "regress_x_to_y",
        "classify_x_to_y",
    ]
    assert all(r.model_spec.version.value == 1 for r in result.results)


def test_multi_inference_rejects_two_models(stub):
    request = inference_pb2.MultiInferenceRequest()
    for name in ("half_plus_two", "broken"):
        task = request.tasks.add()
        task.model_spec.name = name
        task.model_spec.signature_name = "regress_x_to_y"
        task.method_name = "tensorflow/serving/regress"
    request.input.CopyFrom(examples({"x": 1.0}))
    with pytest.raises(grpc.RpcError) as info:
        stub.MultiInference(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "All ModelSpecs in a MultiInferenceRequest must access the same model name."
    )


def test_multi_inference_rejects_different_inputs(stub):
    request = inference_pb2.MultiInferenceRequest()
    for signature in ("regress_x_to_y", "regress_x2_to_y3"):
        task = request.tasks.add()
        task.model_spec.name = "half_plus_two"
        task.model_spec.signature_name = signature
        task.method_name = "tensorflow/serving/regress"
    request.input.CopyFrom(examples({"x": 1.0}))
    with pytest.raises(grpc.RpcError) as info:
        stub.MultiInference(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "Input tensor must be the same for all Signatures."


def test_classify_empty_input_is_invalid_argument(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "classify_x_to_y"
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "Input is empty."


def test_classify_unknown_signature(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "nope"
    request.input.CopyFrom(examples({"x": 1.0}))
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "No signature was found with the name: nope"


def test_regress_on_a_predict_signature_is_rejected(stub):
    # serving_default outputs "y", not "outputs": not a regression signature.
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.input.CopyFrom(examples({"x": 1.0}))
    with pytest.raises(grpc.RpcError) as info:
        stub.Regress(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_example_missing_required_feature_is_invalid_argument(stub):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "regress_x_to_y"
    request.input.CopyFrom(examples({"x2": 1.0}))  # "x" has no default in the parser
    with pytest.raises(grpc.RpcError) as info:
        stub.Regress(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "x" in info.value.details()
