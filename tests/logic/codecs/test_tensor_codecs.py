"""numpy <-> TensorProto without TensorFlow, and records -> tensors for manifest-less models."""

from __future__ import annotations

import numpy as np
import pytest

from logic_service.codecs.dtypes import DTYPE_ENUM
from logic_service.codecs.serving_protos import tensor_pb2, tensor_shape_pb2
from logic_service.codecs.tensor_proto import from_tensor_proto, to_tensor_proto
from logic_service.inputs.tensor_records import TensorRecordError, stack_records
from logic_service.manifest import TensorSpec


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        np.array([[1.5], [-2.25]], dtype=np.float64),
        np.array([1, -2, 3], dtype=np.int64),
        np.array([[True, False]]),
        np.array(["a", "bé"], dtype=object),
    ],
)
def test_round_trip(array: np.ndarray) -> None:
    back = from_tensor_proto(to_tensor_proto(array))
    assert back.shape == array.shape
    expected = [v.encode() for v in array] if array.dtype == object else array
    np.testing.assert_array_equal(back, expected)


def _shape(*dims: int) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )


def test_typed_value_fields_and_the_fill_shorthand() -> None:
    floats = tensor_pb2.TensorProto(
        dtype=DTYPE_ENUM["DT_FLOAT"], tensor_shape=_shape(2, 1), float_val=[0.25, 0.5]
    )
    np.testing.assert_array_equal(from_tensor_proto(floats), [[0.25], [0.5]])
    filled = tensor_pb2.TensorProto(
        dtype=DTYPE_ENUM["DT_INT32"], tensor_shape=_shape(2, 2), int_val=[7]
    )
    np.testing.assert_array_equal(from_tensor_proto(filled), [[7, 7], [7, 7]])
    broken = tensor_pb2.TensorProto(
        dtype=DTYPE_ENUM["DT_FLOAT"], tensor_shape=_shape(2), float_val=[1, 2, 3]
    )
    with pytest.raises(ValueError, match="3 values for shape"):
        from_tensor_proto(broken)


def test_records_stack_into_batch_tensors() -> None:
    inputs = {"x": TensorSpec(dtype="DT_FLOAT", shape=[-1, 3]), "k": TensorSpec(dtype="DT_INT64")}
    arrays = stack_records(
        [{"x": [1, 2, 3], "k": 4}, {"x": [0, 0, 1], "k": 5}], ["records[0]", "records[1]"], inputs
    )
    assert arrays["x"].dtype == np.float32 and arrays["x"].shape == (2, 3)
    np.testing.assert_array_equal(arrays["k"], [4, 5])


def test_bad_tensor_records_name_input_and_rule() -> None:
    inputs = {"x": TensorSpec(dtype="DT_FLOAT", shape=[-1, 3])}
    with pytest.raises(TensorRecordError) as caught:
        stack_records([{"x": [1, 2]}], [""], inputs)
    assert caught.value.problems == ["x: has shape [2] per record, the model wants [3]"]
    with pytest.raises(TensorRecordError) as caught:
        stack_records([{"x": [1, 2, 3]}, {"z": 1}], ["records[0]", "records[1]"], inputs)
    assert caught.value.problems == [
        "records[1].x: is required",
        "records[1].z: is not an input of this model (inputs: x)",
    ]
