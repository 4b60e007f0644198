"""One JSON tensor value -> TensorProto, with TF Serving's type rules and messages.

The rules are json_tensor.cc's (FillTensorProto / AddValueToTensor): numbers must
fit the dtype without loss, strings only for DT_STRING, ``{"b64": ...}`` for bytes,
nested lists must be dense. We additionally range-check the narrow integer types
(TF Serving silently wraps int8/uint8/int16) and accept uint16, half and bfloat16.

A valid tensor goes through a few C-level passes and one numpy conversion into
``tensor_content``. Only when that fast check fails do we replay TF Serving's
element-by-element walk, to report the first error in its order and words.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import grpc
import ml_dtypes
import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from graph_service.api.json_body import (
    JsonConstant,
    json_type_str,
    json_value_str,
    lossy_decimal_error,
    number_too_big_error,
)
from graph_service.api.tensor_to_json import dtype_name
from graph_service.errors import ServingError, invalid_argument

MAX_RANK = 254  # TensorShape's limit; deeper JSON cannot be a tensor.

_DT = types_pb2
FLOATS: dict[int, tuple[Any, int, float]] = {  # dtype -> (numpy type, mantissa bits, max)
    _DT.DT_FLOAT: (np.float32, 24, float(np.finfo(np.float32).max)),
    _DT.DT_DOUBLE: (np.float64, 53, float(np.finfo(np.float64).max)),
    _DT.DT_HALF: (np.float16, 11, float(np.finfo(np.float16).max)),
    _DT.DT_BFLOAT16: (ml_dtypes.bfloat16, 8, float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)),
}
INTS: dict[int, tuple[Any, int, int]] = {  # dtype -> (numpy type, min, max)
    dt: (np_type, int(np.iinfo(np_type).min), int(np.iinfo(np_type).max))
    for dt, np_type in (
        (_DT.DT_INT8, np.int8),
        (_DT.DT_INT16, np.int16),
        (_DT.DT_INT32, np.int32),
        (_DT.DT_INT64, np.int64),
        (_DT.DT_UINT8, np.uint8),
        (_DT.DT_UINT16, np.uint16),
        (_DT.DT_UINT32, np.uint32),
        (_DT.DT_UINT64, np.uint64),
    )
}
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_FLOAT_LEAF_TYPES = frozenset({float, int, JsonConstant})


def is_lossless_int(value: int, mantissa_bits: int, max_value: float) -> bool:
    """IsLosslessDecimal for an integer literal (rapidjson reads it as (u)int64 if it fits)."""
    if INT64_MIN <= value <= UINT64_MAX:
        return abs(value) <= (1 << mantissa_bits) - 1
    return abs(value) <= max_value  # beyond 64 bits rapidjson holds a double


def is_b64_object(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and type(value.get("b64")) is str


def b64_decode(value: Any) -> bytes:
    """Decodes ``{"b64": "..."}``; padding may be omitted, as absl::Base64Unescape allows."""
    if not is_b64_object(value):
        raise invalid_argument(
            f"JSON Value: {json_value_str(value)} not formatted correctly for base64 data"
        )
    try:
        raw = value["b64"].encode("ascii")
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid_argument(
        f"JSON Value: {json_value_str(value)} Type: {json_type_str(value)} "
        f"is not of expected type: {dtype_name(dtype)}"
    )


def check_leaf(value: Any, dtype: int) -> None:
    """AddValueToTensor's rules for one value; raises the error TF Serving would."""
    kind = type(value)
    if kind is dict:
        if dtype != _DT.DT_STRING:
            raise _type_error(value, dtype)
        b64_decode(value)
    elif dtype in FLOATS:
        _np_type, bits, max_value = FLOATS[dtype]
        if kind is int:
            if not is_lossless_int(value, bits, max_value):
                raise lossy_decimal_error(value, dtype_name(dtype))
        elif kind is float:
            if math.isinf(value):
                raise number_too_big_error()
            if abs(value) > max_value:
                raise lossy_decimal_error(value, dtype_name(dtype))
        elif kind is not JsonConstant:
            raise _type_error(value, dtype)
    elif dtype in INTS:
        _np_type, low, high = INTS[dtype]
        if kind is not int or not low <= value <= high:
            raise _type_error(value, dtype)
    elif dtype == _DT.DT_BOOL:
        if kind is not bool:
            raise _type_error(value, dtype)
    elif dtype == _DT.DT_STRING:
        if kind is not str:
            raise _type_error(value, dtype)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid_argument(
                "JSON Parse error: The surrogate pair in string is invalid."
            ) from None
    else:
        raise ServingError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"Conversion of JSON Value: {json_value_str(value)} to type: {dtype_name(dtype)}",
        )


def dense_shape(value: Any) -> list[int]:
    """GetDenseTensorShape: the shape implied by following first elements."""
    shape: list[int] = []
    while type(value) is list:
        shape.append(len(value))
        if len(shape) > MAX_RANK:
            raise invalid_argument(
                f"JSON value is nested more than {MAX_RANK} lists deep; "
                f"a tensor has at most {MAX_RANK} dimensions"
            )
        if not value:
            break
        value = value[0]
    return shape


def _flatten(value: Any, shape: list[int]) -> list[Any] | None:
    """All leaves in row-major order, or None when the lists are not dense."""
    if not shape:
        return [value]
    rows = [value]
    for level in range(1, len(shape)):
        below: list[Any] = []
        for row in rows:
            below.extend(row)
        if below and (
            set(map(type, below)) != {list} or set(map(len, below)) != {shape[level]}
        ):
            return None
        rows = below
    flat: list[Any] = []
    for row in rows:
        flat.extend(row)
    if flat and list in set(map(type, flat)):
        return None
    return flat


def _walk(value: Any, level: int, shape: list[int], dtype: int) -> None:
    """FillTensorProto's traversal, to raise the first error in TF Serving's order."""
    rank = len(shape)
    if type(value) is not list:
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {json_value_str(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        check_leaf(value, dtype)
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _walk(item, level + 1, shape, dtype)


def _first_bad_leaf(flat: list[Any], dtype: int) -> ServingError:
    for leaf in flat:
        try:
            check_leaf(leaf, dtype)
        except ServingError as exc:
            return exc
    raise AssertionError(f"fast check rejected valid {dtype_name(dtype)} values")


def _float_bytes(flat: list[Any], dtype: int) -> bytes | None:
    np_type, bits, max_value = FLOATS[dtype]
    types = set(map(type, flat))
    if not types <= _FLOAT_LEAF_TYPES:
        return None
    if int in types:
        ints = [v for v in flat if type(v) is int]
        limit = (1 << bits) - 1
        if (max(ints) > limit or min(ints) < -limit) and not all(
            is_lossless_int(v, bits, max_value) for v in ints
        ):
            return None
    values = np.array(flat, dtype=np.float64)
    too_big = np.abs(values) > max_value  # False for NaN
    # Out of range is fine only for NaN/Infinity tokens (not 1e999, not 1e300 for float).
    if too_big.any() and any(
        type(v) is not JsonConstant for v, big in zip(flat, too_big.tolist(), strict=True) if big
    ):
        return None
    return values.astype(np_type).tobytes()


def _int_bytes(flat: list[Any], dtype: int) -> bytes | None:
    np_type, low, high = INTS[dtype]
    if set(map(type, flat)) != {int} or min(flat) < low or max(flat) > high:
        return None
    return np.array(flat, dtype=np_type).tobytes()


def _string_values(flat: list[Any]) -> list[bytes] | None:
    """str -> UTF-8, {"b64": ...} -> bytes; None when a leaf is invalid."""
    types = set(map(type, flat))
    try:
        if types == {str}:
            return [s.encode("utf-8") for s in flat]
        if not types <= {str, dict}:
            return None
        # In order, so a bad b64 object raised here is the first error TF would report.
        return [s.encode("utf-8") if type(s) is str else b64_decode(s) for s in flat]
    except UnicodeEncodeError:
        return None


def json_to_tensor(value: Any, dtype: int, out: tensor_pb2.TensorProto) -> None:
    """Fills ``out`` (dtype, shape and values) from one JSON tensor value."""
    shape = dense_shape(value)
    flat = _flatten(value, shape)
    if flat is None:
        _walk(value, 0, shape, dtype)
        raise AssertionError("dense check rejected a well-formed tensor")
    out.dtype = dtype
    dims = out.tensor_shape.dim
    for size in shape:
        dims.add().size = size
    if not flat:
        return
    if dtype == _DT.DT_STRING:
        strings = _string_values(flat)
        if strings is None:
            raise _first_bad_leaf(flat, dtype)
        out.string_val.extend(strings)
        return
    content: bytes | None = None
    if dtype in FLOATS:
        content = _float_bytes(flat, dtype)
    elif dtype in INTS:
        content = _int_bytes(flat, dtype)
    elif dtype == _DT.DT_BOOL and set(map(type, flat)) == {bool}:
        content = np.array(flat, dtype=np.bool_).tobytes()
    if content is None:
        raise _first_bad_leaf(flat, dtype)
    out.tensor_content = content
