"""Output TensorProtos -> JSON text, written the way TF Serving writes numbers.

TF Serving (json_tensor.cc WriteDecimal) prints a float with six significant digits
when that reads back as the same value and with max_digits10 otherwise, adds '.0' to
whole numbers and writes NaN/Infinity bare. Clients compare these numbers, so we
produce the same text. We emit JSON text directly (not via json.dumps of Python
floats) because a float32 printed as a double would grow noise digits
(0.1 -> 0.10000000149011612).
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import grpc
import ml_dtypes
import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from graph_service.errors import ServingError, invalid_argument

_DT = types_pb2
_SPECIAL_FLOATS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_SIX_DIGITS = "%g".__mod__  # absl::StrCat(float/double)
_NINE_DIGITS = "%.9g".__mod__  # max_digits10 of float
_SEVENTEEN_DIGITS = "%.17g".__mod__  # max_digits10 of double
_FLOAT32 = struct.Struct("f")
_SMALL = 16  # below this many values, plain Python beats numpy's fixed cost

json_string = json.encoder.encode_basestring  # type: ignore[attr-defined]

# Storage of each numeric dtype: numpy type and the TensorProto field used when the
# values are not packed in tensor_content (sub-32-bit ints live in int_val).
_STORAGE: dict[int, tuple[Any, str]] = {
    _DT.DT_FLOAT: (np.float32, "float_val"),
    _DT.DT_DOUBLE: (np.float64, "double_val"),
    _DT.DT_HALF: (np.float16, "half_val"),
    _DT.DT_BFLOAT16: (ml_dtypes.bfloat16, "half_val"),
    _DT.DT_BOOL: (np.bool_, "bool_val"),
    _DT.DT_INT8: (np.int8, "int_val"),
    _DT.DT_INT16: (np.int16, "int_val"),
    _DT.DT_INT32: (np.int32, "int_val"),
    _DT.DT_UINT8: (np.uint8, "int_val"),
    _DT.DT_UINT16: (np.uint16, "int_val"),
    _DT.DT_INT64: (np.int64, "int64_val"),
    _DT.DT_UINT32: (np.uint32, "uint32_val"),
    _DT.DT_UINT64: (np.uint64, "uint64_val"),
}
_SINGLE_FLOATS = (_DT.DT_FLOAT, _DT.DT_HALF, _DT.DT_BFLOAT16)


def dtype_name(dtype: int) -> str:
    """TF's DataTypeString: DT_FLOAT -> 'float'."""
    try:
        return _DT.DataType.Name(dtype)[3:].lower()
    except ValueError:
        return f"unknown dtype {dtype}"


def float_tokens(values: np.ndarray, single: bool) -> list[str]:
    """WriteDecimal for a whole array (float32 when ``single``, else float64).

    Vectorised: format all with %g, read all back with numpy, and redo only the
    values that did not survive with 9 (float32) or 17 (float64) digits.
    """
    doubles = values.astype(np.float64).ravel().tolist()
    if len(doubles) <= _SMALL:
        return [_float_token(v, single) for v in doubles]
    tokens = list(map(_SIX_DIGITS, doubles))  # %-formatting: 2-3x faster than format()
    if tokens:
        back = np.array(tokens, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            if single:
                back = back.astype(np.float32)
            exact = values.ravel()
            wrong = np.flatnonzero((back != exact) & ~np.isnan(exact))
        precise = _NINE_DIGITS if single else _SEVENTEEN_DIGITS
        for index in wrong.tolist():
            tokens[index] = precise(doubles[index])
    return [t if "." in t or "e" in t else _SPECIAL_FLOATS.get(t) or t + ".0" for t in tokens]


def _float_token(value: float, single: bool) -> str:
    """float_tokens for one value, without numpy's per-call overhead."""
    token = _SIX_DIGITS(value)
    if "n" in token:  # nan, inf, -inf
        return _SPECIAL_FLOATS[token]
    back = float(token)
    if single:
        try:
            back = _FLOAT32.unpack(_FLOAT32.pack(back))[0]
        except OverflowError:
            back = math.inf
    if back != value:
        token = _NINE_DIGITS(value) if single else _SEVENTEEN_DIGITS(value)
    return token if "." in token or "e" in token else token + ".0"


def format_float(value: float, single: bool) -> str:
    return float_tokens(np.array([value], dtype=np.float32 if single else np.float64), single)[0]


def _fit(values: Any, count: int, name: str) -> Any:
    """TensorProto's rule: fewer values than elements repeat the last one (zero if none)."""
    have = len(values)
    if have == count:
        return values
    if have > count:
        raise ServingError(
            grpc.StatusCode.INTERNAL,
            f"Output tensor {name} has {have} values but its shape holds {count}",
        )
    if isinstance(values, np.ndarray):
        fill = values[-1] if have else np.zeros(1, dtype=values.dtype)[0]
        return np.concatenate([values, np.full(count - have, fill, dtype=values.dtype)])
    return list(values) + [values[-1] if have else b""] * (count - have)


def tensor_values(tensor: tensor_pb2.TensorProto, name: str = "") -> Any:
    """Flat values of a TensorProto: a 1-D numpy array, or a list of bytes for DT_STRING."""
    count = math.prod(dim.size for dim in tensor.tensor_shape.dim)
    dtype = tensor.dtype
    if dtype == _DT.DT_STRING:
        return _fit(list(tensor.string_val), count, name)
    if dtype not in _STORAGE:
        raise invalid_argument(f"Failed to write JSON value for tensor type: {dtype_name(dtype)}")
    np_type, field = _STORAGE[dtype]
    if tensor.tensor_content:
        if len(tensor.tensor_content) % np.dtype(np_type).itemsize:
            raise ServingError(
                grpc.StatusCode.INTERNAL, f"Output tensor {name} has truncated tensor_content"
            )
        values = np.frombuffer(tensor.tensor_content, dtype=np_type)
    elif field == "half_val":  # the bit patterns of the 16-bit floats, widened to int32
        values = np.array(tensor.half_val, dtype=np.uint16).view(np_type)
    else:
        values = np.array(getattr(tensor, field), dtype=np_type)
    return _fit(values, count, name)


def tensor_tokens(name: str, tensor: tensor_pb2.TensorProto) -> tuple[list[int], list[str]]:
    """(shape, JSON text of every element in row-major order) of one output tensor.

    DT_STRING outputs whose name ends in ``_bytes`` are written as ``{"b64": ...}``.
    """
    shape = [dim.size for dim in tensor.tensor_shape.dim]
    values = tensor_values(tensor, name)
    dtype = tensor.dtype
    if dtype == _DT.DT_STRING:
        if name.endswith("_bytes"):
            tokens = ['{"b64":"' + base64.b64encode(v).decode("ascii") + '"}' for v in values]
        else:
            tokens = [json_string(v.decode("utf-8", "replace")) for v in values]
    elif dtype == _DT.DT_DOUBLE:
        tokens = float_tokens(values, single=False)
    elif dtype in _SINGLE_FLOATS:
        tokens = float_tokens(values.astype(np.float32), single=True)
    elif dtype == _DT.DT_BOOL:
        tokens = ["true" if v else "false" for v in values.tolist()]
    else:
        tokens = list(map(str, values.tolist()))
    return shape, tokens


def group_tokens(tokens: list[str], shape: list[int]) -> list[str]:
    """The shape[0] items of a tensor of rank >= 1, each written as nested JSON lists."""
    inner = shape[1:]
    items = tokens
    if 0 in inner:
        cut = inner.index(0)
        items = ["[]"] * (shape[0] * math.prod(inner[:cut]))
        inner = inner[:cut]
    for size in reversed(inner):
        items = ["[" + ",".join(items[i : i + size]) + "]" for i in range(0, len(items), size)]
    return items


def nest_tokens(tokens: list[str], shape: list[int]) -> str:
    """A whole tensor as JSON: a bare value for rank 0, nested lists otherwise."""
    if not shape:
        return tokens[0]
    return "[" + ",".join(group_tokens(tokens, shape)) + "]"
