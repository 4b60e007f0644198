"""numpy arrays <-> TF_Tensor, for sessions run through the C API.

Inputs are copied into tensors TensorFlow allocates itself (aligned, owned by
TensorFlow, so nothing depends on a numpy buffer outliving the call); outputs
are copied out into fresh numpy arrays before their tensors are deleted. For
the request sizes a server sees the copies cost microseconds, and there are no
deallocator callbacks into Python. Strings are TF_TString elements (TF 2.x's
``tstring``): written with TF_StringInit/TF_StringCopy, read with
TF_StringGetDataPointer/TF_StringGetSize.
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Sequence
from ctypes import c_int64

import numpy as np

from graph_service.runtime.tf_c_api import TF_STRING, TSTRING_SIZE, CApiError, lib

_INVALID_ARGUMENT = 3


@functools.cache
def _enum_of(dtype: np.dtype) -> int:
    from tensorflow.python.framework import dtypes

    try:
        return dtypes.as_dtype(dtype).as_datatype_enum
    except TypeError:
        message = f"Unsupported numpy dtype for a tensor: {dtype}"
        raise CApiError(_INVALID_ARGUMENT, message) from None


@functools.cache
def _numpy_dtype_of(enum: int) -> np.dtype:
    from tensorflow.python.framework import dtypes

    try:
        return np.dtype(dtypes.as_dtype(enum).as_numpy_dtype)
    except (TypeError, ValueError):
        name = dtypes.as_dtype(enum).name if enum in dtypes._TYPE_TO_STRING else str(enum)
        raise CApiError(_INVALID_ARGUMENT, f"Cannot fetch a tensor of type {name}") from None


class InputTensors:
    """TF_Tensors made from numpy arrays; ``free()`` them after the run."""

    __slots__ = ("_strings", "pointers")

    def __init__(self, values: Sequence[np.ndarray]) -> None:
        self.pointers = (ctypes.c_void_p * len(values))()
        self._strings: list[tuple[int, int]] = []  # (data address, elements) to dealloc
        try:
            for i, value in enumerate(values):
                self.pointers[i] = self._tensor(np.asarray(value))
        except BaseException:
            self.free()
            raise

    def _tensor(self, array: np.ndarray) -> int:
        c = lib()
        dims = (c_int64 * array.ndim)(*array.shape)
        if array.dtype.kind in "OSU":
            return self._string_tensor(array, dims)
        array = np.ascontiguousarray(array)
        tensor = c.TF_AllocateTensor(_enum_of(array.dtype), dims, array.ndim, array.nbytes)
        if not tensor:
            raise CApiError(_INVALID_ARGUMENT, f"Cannot allocate a tensor of shape {array.shape}")
        if array.nbytes:
            ctypes.memmove(c.TF_TensorData(tensor), array.ctypes.data, array.nbytes)
        return tensor

    def _string_tensor(self, array: np.ndarray, dims) -> int:
        c = lib()
        flat = array.reshape(-1)
        tensor = c.TF_AllocateTensor(TF_STRING, dims, array.ndim, flat.size * TSTRING_SIZE)
        if not tensor:
            raise CApiError(_INVALID_ARGUMENT, f"Cannot allocate a tensor of shape {array.shape}")
        base = c.TF_TensorData(tensor) or 0
        init, copy = c.TF_StringInit, c.TF_StringCopy
        for i in range(flat.size):
            init(base + i * TSTRING_SIZE)
        # Registered before filling so a bad element still frees what was copied.
        self._strings.append((base, flat.size))
        for i, item in enumerate(flat.tolist()):
            data = item if isinstance(item, bytes) else _as_bytes(item)
            copy(base + i * TSTRING_SIZE, data, len(data))
        return tensor

    def free(self) -> None:
        c = lib()
        for base, count in self._strings:
            for i in range(count):
                c.TF_StringDealloc(base + i * TSTRING_SIZE)
        self._strings.clear()
        for i in range(len(self.pointers)):
            if self.pointers[i]:
                c.TF_DeleteTensor(self.pointers[i])
                self.pointers[i] = None


def _as_bytes(item: object) -> bytes:
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    raise CApiError(_INVALID_ARGUMENT, f"Cannot feed {type(item).__name__} to a string tensor")


def to_numpy(tensor: int) -> np.ndarray:
    """Copy one output TF_Tensor into a new numpy array (the tensor stays owned by the caller)."""
    c = lib()
    shape = tuple(c.TF_Dim(tensor, i) for i in range(c.TF_NumDims(tensor)))
    enum = c.TF_TensorType(tensor)
    data = c.TF_TensorData(tensor) or 0
    if enum == TF_STRING:
        count = math.prod(shape)
        at, size, string_at = c.TF_StringGetDataPointer, c.TF_StringGetSize, ctypes.string_at
        out = np.empty(count, dtype=object)
        for i in range(count):
            element = data + i * TSTRING_SIZE
            out[i] = string_at(at(element), size(element))
        return out.reshape(shape)
    out = np.empty(shape, dtype=_numpy_dtype_of(enum))
    nbytes = c.TF_TensorByteSize(tensor)
    if nbytes != out.nbytes:
        raise CApiError(13, f"Output tensor of shape {shape} has {nbytes} bytes, not {out.nbytes}")
    if nbytes:
        ctypes.memmove(out.ctypes.data, data, nbytes)
    return out
