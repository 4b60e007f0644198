"""numpy arrays <-> ``tensorflow.TensorProto`` without TensorFlow.

``tf.make_tensor_proto``/``tf.make_ndarray`` would need the TF runtime in the
logic tier; these cover the dtypes a serving signature uses. Numbers go as
``tensor_content`` (one memcpy, what TF Serving itself answers with); answers
are read from ``tensor_content`` or the typed ``*_val`` fields, including TF's
"one value fills the whole shape" shorthand.
"""

from __future__ import annotations

import numpy as np

from logic_service.codecs.dtypes import DTYPE_ENUM, DTYPE_NAME, numpy_dtype
from logic_service.codecs.serving_protos import tensor_pb2, tensor_shape_pb2

_FOR_NUMPY: dict[np.dtype, str] = {
    np.dtype(np.float32): "DT_FLOAT",
    np.dtype(np.float64): "DT_DOUBLE",
    np.dtype(np.int32): "DT_INT32",
    np.dtype(np.uint8): "DT_UINT8",
    np.dtype(np.int16): "DT_INT16",
    np.dtype(np.int8): "DT_INT8",
    np.dtype(np.int64): "DT_INT64",
    np.dtype(np.bool_): "DT_BOOL",
    np.dtype(np.uint16): "DT_UINT16",
    np.dtype(np.float16): "DT_HALF",
    np.dtype(np.uint32): "DT_UINT32",
    np.dtype(np.uint64): "DT_UINT64",
}
_VAL_FIELD: dict[str, str] = {
    "DT_FLOAT": "float_val",
    "DT_DOUBLE": "double_val",
    "DT_INT32": "int_val",
    "DT_UINT8": "int_val",
    "DT_INT16": "int_val",
    "DT_INT8": "int_val",
    "DT_UINT16": "int_val",
    "DT_INT64": "int64_val",
    "DT_BOOL": "bool_val",
    "DT_STRING": "string_val",
    "DT_HALF": "half_val",
    "DT_UINT32": "uint32_val",
    "DT_UINT64": "uint64_val",
}


def _shape_proto(shape: tuple[int, ...]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in shape]
    )


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    if array.dtype == object or array.dtype.kind in "US":
        values = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)]
        return tensor_pb2.TensorProto(
            dtype=DTYPE_ENUM["DT_STRING"], tensor_shape=_shape_proto(array.shape), string_val=values
        )
    name = _FOR_NUMPY.get(array.dtype)
    if name is None:
        raise ValueError(f"cannot send numpy dtype {array.dtype} to the graph tier")
    return tensor_pb2.TensorProto(
        dtype=DTYPE_ENUM[name],
        tensor_shape=_shape_proto(array.shape),
        tensor_content=np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes(),
    )


def from_tensor_proto(proto: tensor_pb2.TensorProto) -> np.ndarray:
    name = DTYPE_NAME.get(proto.dtype)
    if name is None:
        raise ValueError(f"unsupported dtype enum {proto.dtype} in the graph tier's answer")
    if proto.tensor_shape.unknown_rank:
        raise ValueError("answer tensor has unknown rank")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    dtype = numpy_dtype(name)
    if proto.tensor_content and name != "DT_STRING":
        array = np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<"))
        return array.astype(dtype).reshape(shape)
    values = list(getattr(proto, _VAL_FIELD[name]))
    if name == "DT_HALF":
        array = np.asarray(values, dtype=np.uint16).view(np.float16)
    elif name == "DT_STRING":
        array = np.empty(len(values), dtype=object)
        array[:] = values
    else:
        array = np.asarray(values, dtype=dtype)
    if array.size == count:
        return array.reshape(shape)
    if array.size == 1 or (array.size == 0 and count == 0):
        return np.full(shape, array[0] if array.size else 0, dtype=array.dtype)
    if 0 < array.size < count:  # TF pads with the last value
        padded = np.concatenate([array, np.full(count - array.size, array[-1], array.dtype)])
        return padded.reshape(shape)
    raise ValueError(f"answer tensor holds {array.size} values for shape {list(shape)}")
