"""TensorProto <-> numpy, with the semantics of TensorFlow's ``Tensor::FromProto``.

``tf.make_ndarray``/``tf.make_tensor_proto`` would do, but they are slow on the
request path and differ from the C++ server in details that clients notice:
TF Serving fills a tensor whose ``*_val`` list is shorter than its shape with
the last value, and answers with the typed ``*_val`` fields
(``Tensor::AsProtoField``), not ``tensor_content``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

TensorProto = tensor_pb2.TensorProto


# numpy arrays (and so this server) stop at 64 dimensions, below TensorShape's 254;
# deeper tensors are a client error (400), not a crash in the runtime (500).
NUMPY_MAX_RANK = 64
# A request (one protobuf message) carries at most 2 GiB; a shape that would expand
# to more (values are repeated to fill it) is refused instead of allocated.
MAX_TENSOR_BYTES = 2**31 - 1


@dataclass(frozen=True)
class DTypeInfo:
    name: str  # TensorFlow's DataTypeString, used in error messages
    numpy: np.dtype
    field: str  # the TensorProto *_val field AsProtoField writes


def _bfloat16() -> np.dtype:
    from tensorflow.python.framework import dtypes

    return np.dtype(dtypes.bfloat16.as_numpy_dtype)


DTYPES: dict[int, DTypeInfo] = {
    types_pb2.DT_FLOAT: DTypeInfo("float", np.dtype(np.float32), "float_val"),
    types_pb2.DT_DOUBLE: DTypeInfo("double", np.dtype(np.float64), "double_val"),
    types_pb2.DT_INT32: DTypeInfo("int32", np.dtype(np.int32), "int_val"),
    types_pb2.DT_UINT8: DTypeInfo("uint8", np.dtype(np.uint8), "int_val"),
    types_pb2.DT_INT16: DTypeInfo("int16", np.dtype(np.int16), "int_val"),
    types_pb2.DT_INT8: DTypeInfo("int8", np.dtype(np.int8), "int_val"),
    types_pb2.DT_UINT16: DTypeInfo("uint16", np.dtype(np.uint16), "int_val"),
    types_pb2.DT_STRING: DTypeInfo("string", np.dtype(object), "string_val"),
    types_pb2.DT_COMPLEX64: DTypeInfo("complex64", np.dtype(np.complex64), "scomplex_val"),
    types_pb2.DT_COMPLEX128: DTypeInfo("complex128", np.dtype(np.complex128), "dcomplex_val"),
    types_pb2.DT_INT64: DTypeInfo("int64", np.dtype(np.int64), "int64_val"),
    types_pb2.DT_BOOL: DTypeInfo("bool", np.dtype(np.bool_), "bool_val"),
    types_pb2.DT_HALF: DTypeInfo("half", np.dtype(np.float16), "half_val"),
    types_pb2.DT_BFLOAT16: DTypeInfo("bfloat16", _bfloat16(), "half_val"),
    types_pb2.DT_UINT32: DTypeInfo("uint32", np.dtype(np.uint32), "uint32_val"),
    types_pb2.DT_UINT64: DTypeInfo("uint64", np.dtype(np.uint64), "uint64_val"),
}

_BY_NUMPY: dict[np.dtype, int] = {}
for _enum, _info in DTYPES.items():
    if _info.numpy != np.dtype(object):
        _BY_NUMPY.setdefault(_info.numpy, _enum)


# *_val fields that take the array's values as they are (everything but string,
# half/bfloat16 bit patterns and complex pairs).
_PLAIN_FIELDS = frozenset(
    info.field
    for info in DTYPES.values()
    if info.field not in ("string_val", "half_val", "scomplex_val", "dcomplex_val")
)


class TensorParseError(ValueError):
    """The TensorProto cannot be turned into a tensor (bad dtype, shape or value count)."""


def dtype_name(dtype: int) -> str:
    info = DTYPES.get(dtype)
    if info is not None:
        return info.name
    return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower() if dtype else "invalid"


def dtype_for_numpy(array: np.ndarray) -> int:
    dtype = array.dtype
    enum = _BY_NUMPY.get(dtype)
    if enum is not None:
        return enum
    if dtype.kind in ("O", "S", "U"):
        return types_pb2.DT_STRING
    raise TensorParseError(f"unsupported numpy dtype {dtype}")


def to_ndarray(proto: TensorProto) -> np.ndarray:
    """Decode one TensorProto; raises TensorParseError when TF would refuse it."""
    info = DTYPES.get(proto.dtype)
    if info is None:
        raise TensorParseError(f"unsupported dtype {dtype_name(proto.dtype)}")
    shape_proto = proto.tensor_shape
    if shape_proto.unknown_rank:
        raise TensorParseError("tensor shape has unknown rank")
    # One plain loop for every shape check: this runs for each input of each request.
    shape = [d.size for d in shape_proto.dim]
    if len(shape) > NUMPY_MAX_RANK:
        raise TensorParseError(
            f"tensor of rank {len(shape)}: at most {NUMPY_MAX_RANK} dimensions are supported"
        )
    count = 1
    extent = 1  # zeros ignored: numpy refuses even an empty array whose other dims overflow
    for size in shape:
        if size < 0:
            raise TensorParseError(f"negative dimension in shape {shape}")
        count *= size
        extent *= size or 1
    if extent * info.numpy.itemsize > MAX_TENSOR_BYTES:
        raise TensorParseError(
            f"shape {shape} of {info.name} is too large: "
            f"a request carries at most {MAX_TENSOR_BYTES} bytes"
        )
    if proto.dtype == types_pb2.DT_STRING:
        values = list(proto.string_val)
        out = np.empty(count, dtype=object)
        _fill(out, values, count, b"")
        return out.reshape(shape)
    if proto.tensor_content:
        content = proto.tensor_content
        if len(content) != count * info.numpy.itemsize:
            raise TensorParseError(
                f"tensor_content has {len(content)} bytes, shape {list(shape)} of "
                f"{info.name} needs {count * info.numpy.itemsize}"
            )
        return np.frombuffer(content, dtype=info.numpy).reshape(shape)
    raw = getattr(proto, info.field)
    if info.field == "half_val":
        values = np.array(raw, dtype=np.uint16).view(info.numpy)
    elif info.field in ("scomplex_val", "dcomplex_val"):
        pairs = np.array(raw, dtype=np.float32 if info.field == "scomplex_val" else np.float64)
        if pairs.size % 2:
            raise TensorParseError("complex values must come in (real, imag) pairs")
        values = pairs[0::2] + 1j * pairs[1::2]
    else:
        values = np.array(raw, dtype=info.numpy)
    if values.size == count:
        return values.astype(info.numpy, copy=False).reshape(shape)
    out = np.zeros(count, dtype=info.numpy)
    _fill(out, values, count, None)
    return out.reshape(shape)


def _fill(out: np.ndarray, values, count: int, empty) -> None:
    """Tensor::FromProto: fewer values than elements repeat the last one; more is an error."""
    n = len(values)
    if n > count:
        raise TensorParseError(f"{n} values given for a tensor of {count} elements")
    if n == 0:
        if empty is not None:
            out[:] = [empty] * count if out.dtype == np.dtype(object) else empty
        return
    out[:n] = values
    out[n:] = values[-1] if out.dtype != np.dtype(object) else [values[-1]] * (count - n)


def to_proto(array: np.ndarray, dtype: int | None = None) -> TensorProto:
    """Encode like Tensor::AsProtoField: shape plus the typed ``*_val`` list."""
    proto = TensorProto()
    fill_proto(proto, array, dtype)
    return proto


def fill_proto(proto: TensorProto, array: np.ndarray, dtype: int | None = None) -> None:
    """``to_proto`` into an empty TensorProto that already sits in its response.

    Writing into ``response.outputs[alias]`` directly saves building a message
    and copying it over, once per output of every answer.
    """
    if type(array) is not np.ndarray:
        array = np.asarray(array)
    if dtype is None:
        dtype = dtype_for_numpy(array)
    info = DTYPES[dtype]
    proto.dtype = dtype
    dims = proto.tensor_shape.dim
    for size in array.shape:
        dims.add(size=size)
    flat = array.reshape(-1)
    if info.field in _PLAIN_FIELDS:  # the numeric common case first: one C-level extend
        getattr(proto, info.field).extend(flat.astype(info.numpy, copy=False).tolist())
    elif dtype == types_pb2.DT_STRING:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in flat)
    elif info.field == "half_val":
        proto.half_val.extend(flat.astype(info.numpy).view(np.uint16).tolist())
    elif info.field in ("scomplex_val", "dcomplex_val"):
        pairs = np.empty(flat.size * 2, dtype=np.float64)
        pairs[0::2] = flat.real
        pairs[1::2] = flat.imag
        getattr(proto, info.field).extend(pairs.tolist())


def shape_proto(shape: tuple[int, ...]) -> tensor_shape_pb2.TensorShapeProto:
    proto = tensor_shape_pb2.TensorShapeProto()
    for size in shape:
        proto.dim.add().size = int(size)
    return proto
