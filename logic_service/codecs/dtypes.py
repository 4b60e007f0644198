"""TensorFlow dtype names (``DT_FLOAT``...) and their numpy counterparts.

Kept free of protobuf imports so the REST client and the artifact loader can
use it without loading the TF Serving protos.
"""

from __future__ import annotations

import numpy as np

# DataType enum values from tensorflow/core/framework/types.proto.
DTYPE_ENUM: dict[str, int] = {
    "DT_FLOAT": 1,
    "DT_DOUBLE": 2,
    "DT_INT32": 3,
    "DT_UINT8": 4,
    "DT_INT16": 5,
    "DT_INT8": 6,
    "DT_STRING": 7,
    "DT_INT64": 9,
    "DT_BOOL": 10,
    "DT_UINT16": 17,
    "DT_HALF": 19,
    "DT_UINT32": 22,
    "DT_UINT64": 23,
}
NUMPY_DTYPE: dict[str, np.dtype] = {
    "DT_FLOAT": np.dtype(np.float32),
    "DT_DOUBLE": np.dtype(np.float64),
    "DT_INT32": np.dtype(np.int32),
    "DT_UINT8": np.dtype(np.uint8),
    "DT_INT16": np.dtype(np.int16),
    "DT_INT8": np.dtype(np.int8),
    "DT_STRING": np.dtype(object),
    "DT_INT64": np.dtype(np.int64),
    "DT_BOOL": np.dtype(np.bool_),
    "DT_UINT16": np.dtype(np.uint16),
    "DT_HALF": np.dtype(np.float16),
    "DT_UINT32": np.dtype(np.uint32),
    "DT_UINT64": np.dtype(np.uint64),
}
DTYPE_NAME: dict[int, str] = {value: name for name, value in DTYPE_ENUM.items()}


def numpy_dtype(name: str) -> np.dtype:
    try:
        return NUMPY_DTYPE[name]
    except KeyError:
        raise ValueError(f"dtype {name} is not supported by the logic tier") from None
