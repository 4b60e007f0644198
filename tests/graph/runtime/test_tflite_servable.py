"""TfLiteServable and tflite_model: TF Serving's signature rules, the pool, the errors."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
from support.lite_text_testdata import half_plus_two_tflite
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from graph_service.errors import ServingError
from graph_service.runtime.tflite_model import read_model_facts, with_legacy_signatures
from graph_service.runtime.tflite_servable import TfLiteServable


@pytest.fixture(scope="module")
def plain() -> bytes:
    return half_plus_two_tflite()


@pytest.fixture(scope="module")
def native() -> bytes:
    """TF2 conversion: a native signature 'serving_default' (features -> score)."""
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features")])
        def serve(self, features):
            return {"score": tf.reduce_sum(features, axis=1, keepdims=True) * 2.0}

    model = Model()
    concrete = model.serve.get_concrete_function()
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model).convert()


def _servable(model: bytes, tmp_path, pool: int = 2) -> TfLiteServable:
    version = tmp_path / "1"
    version.mkdir(exist_ok=True)
    (version / "model.tflite").write_bytes(model)
    return TfLiteServable.load("m", 1, version, pool)


def test_a_model_without_signatures_is_named_after_its_tensors(plain, tmp_path) -> None:
    servable = _servable(plain, tmp_path)
    signature = servable.signatures["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert set(signature.inputs) == {"x"} and set(signature.outputs) == {"y"}
    assert signature.inputs["x"].dtype == types_pb2.DT_FLOAT
    out = servable.run("serving_default", {"x": np.array([2.0], np.float32)}, ("y",))
    assert out["y"].tolist() == [3.0]
    assert servable.run_tensors(["x:0"], ["y"], [np.array([4.0], np.float32)])[0].tolist() == [4.0]
    assert servable.value_dependent_ops is False and servable.runs_in_caller_thread


def test_native_signatures_keep_their_aliases_and_resize(native, tmp_path) -> None:
    servable = _servable(native, tmp_path)
    signature = servable.signatures["serving_default"]
    assert set(signature.inputs) == {"features"} and set(signature.outputs) == {"score"}
    assert [d.size for d in signature.inputs["features"].tensor_shape.dim] == [-1, 3]
    for rows in (1, 5, 1):  # the interpreter resizes both ways
        features = np.ones((rows, 3), np.float32)
        assert servable.run("serving_default", {"features": features}, ("score",))[
            "score"
        ].tolist() == [[6.0]] * rows


def test_legacy_signature_metadata_gives_aliases_and_method(plain, tmp_path) -> None:
    legacy = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/regress")
    legacy.inputs["in"].name = "x:0"
    legacy.outputs["out"].name = "y:0"
    model = with_legacy_signatures(plain, {"regress_it": legacy})
    assert read_model_facts(model).legacy_signatures["regress_it"] == legacy
    servable = _servable(model, tmp_path)
    signature = servable.signatures["regress_it"]
    assert signature.method_name == "tensorflow/serving/regress"
    assert signature.inputs["in"].dtype == types_pb2.DT_FLOAT  # from the tensor
    out = servable.run("regress_it", {"in": np.array([2.0], np.float32)}, ("out",))
    assert out["out"].tolist() == [3.0]


def test_concurrent_runs_use_a_pool_and_stay_correct(native, tmp_path) -> None:
    servable = _servable(native, tmp_path, pool=4)
    failures: list[str] = []

    def caller(value: float) -> None:
        for rows in range(1, 40):
            features = np.full((rows % 7 + 1, 3), value, np.float32)
            got = servable.run("serving_default", {"features": features}, ("score",))["score"]
            if not np.allclose(got, 6.0 * value):
                failures.append(f"{value}: {got.ravel()[:3]}")

    threads = [threading.Thread(target=caller, args=(float(i),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert 1 <= servable._created <= 4


def test_errors_are_serving_errors(plain, tmp_path) -> None:
    servable = _servable(plain, tmp_path)
    with pytest.raises(ServingError) as missing:
        servable.run_tensors(["nope:0"], ["y"], [np.array([1.0], np.float32)])
    assert missing.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Missing input TFLite tensor: nope:0" in missing.value.message
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "model.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(ServingError) as broken:
        TfLiteServable.load("m", 2, tmp_path / "2", 1)
    assert "Cannot build TF Lite interpreter" in broken.value.message
    servable.close()
    with pytest.raises(ServingError) as closed:
        servable.run("serving_default", {"x": np.array([2.0], np.float32)}, ("y",))
    assert closed.value.code == grpc.StatusCode.UNAVAILABLE
