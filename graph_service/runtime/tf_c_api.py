"""TensorFlow's C API through ctypes, for the two calls that must not hold the GIL.

TF Serving loads a SavedModel and runs it in C++; nothing it does while loading a
new version can stall the requests served by another. The Python loader
(``tf.compat.v1.saved_model.loader.load``) builds the graph through Python: its
import step alone holds the GIL for milliseconds at a time, and every request
in flight on the versions already serving waits for it (p99 rose 7-10x while a
small model loaded). ``TF_LoadSessionFromSavedModel`` is TF Serving's own loader
(``LoadSavedModel``: read the MetaGraphDef, create the session from its graph,
restore the variables, run the init op with the asset paths fed) behind one C
call, and ctypes releases the GIL for the whole of every foreign call. Requests
then run with ``TF_SessionRun`` in the same way.

The library is the one ``import tensorflow`` already loaded into the process
(``libtensorflow_cc`` and ``libtensorflow_framework``), so op registrations,
thread pools and devices are shared with the Python API.
"""

from __future__ import annotations

import ctypes
import functools
from ctypes import (
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_void_p,
)
from pathlib import Path

TF_STRING = 7
# sizeof(TF_TString): a 24-byte union of the small (inline) and large (heap) forms.
TSTRING_SIZE = 24


class TF_Buffer(Structure):
    _fields_ = [("data", c_void_p), ("length", c_size_t), ("data_deallocator", c_void_p)]


class TF_Output(Structure):
    _fields_ = [("oper", c_void_p), ("index", c_int)]


class CApiError(Exception):
    """A TF_Status that was not OK: ``code`` is the TF (= gRPC) code number."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    # status
    "TF_NewStatus": (c_void_p, []),
    "TF_DeleteStatus": (None, [c_void_p]),
    "TF_GetCode": (c_int, [c_void_p]),
    "TF_Message": (c_char_p, [c_void_p]),
    # buffers
    "TF_NewBuffer": (POINTER(TF_Buffer), []),
    "TF_DeleteBuffer": (None, [POINTER(TF_Buffer)]),
    # graph and session
    "TF_NewGraph": (c_void_p, []),
    "TF_DeleteGraph": (None, [c_void_p]),
    # (graph, require): Python's tf.Graph turns the requirement off, and TF Serving's
    # C++ session never checks it; ops registered without a shape function (TF
    # Text's ConstrainedSequence) must load.
    "TF_SetRequireShapeInferenceFns": (None, [c_void_p, ctypes.c_bool]),
    "TF_GraphOperationByName": (c_void_p, [c_void_p, c_char_p]),
    "TF_OperationNumOutputs": (c_int, [c_void_p]),
    "TF_NewSessionOptions": (c_void_p, []),
    "TF_DeleteSessionOptions": (None, [c_void_p]),
    "TF_SetConfig": (None, [c_void_p, c_void_p, c_size_t, c_void_p]),
    "TF_NewSession": (c_void_p, [c_void_p, c_void_p, c_void_p]),
    "TF_LoadSessionFromSavedModel": (
        c_void_p,
        [
            c_void_p,  # const TF_SessionOptions*
            c_void_p,  # const TF_Buffer* run_options
            c_char_p,  # export_dir
            POINTER(c_char_p),  # tags
            c_int,  # tags_len
            c_void_p,  # TF_Graph*
            POINTER(TF_Buffer),  # meta_graph_def (out)
            c_void_p,  # TF_Status*
        ],
    ),
    "TF_SessionRun": (
        None,
        [
            c_void_p,  # session
            c_void_p,  # run_options
            POINTER(TF_Output),  # inputs
            POINTER(c_void_p),  # input_values
            c_int,
            POINTER(TF_Output),  # outputs
            POINTER(c_void_p),  # output_values (out)
            c_int,
            POINTER(c_void_p),  # target_opers
            c_int,
            c_void_p,  # run_metadata
            c_void_p,  # status
        ],
    ),
    "TF_CloseSession": (None, [c_void_p, c_void_p]),
    "TF_DeleteSession": (None, [c_void_p, c_void_p]),
    # tensors
    "TF_AllocateTensor": (c_void_p, [c_int, POINTER(c_int64), c_int, c_size_t]),
    "TF_DeleteTensor": (None, [c_void_p]),
    "TF_TensorType": (c_int, [c_void_p]),
    "TF_NumDims": (c_int, [c_void_p]),
    "TF_Dim": (c_int64, [c_void_p, c_int]),
    "TF_TensorData": (c_void_p, [c_void_p]),
    "TF_TensorByteSize": (c_size_t, [c_void_p]),
    # TF_TString elements of string tensors
    "TF_StringInit": (None, [c_void_p]),
    "TF_StringCopy": (None, [c_void_p, c_char_p, c_size_t]),
    "TF_StringGetDataPointer": (c_void_p, [c_void_p]),
    "TF_StringGetSize": (c_size_t, [c_void_p]),
    "TF_StringDealloc": (None, [c_void_p]),
}


class _Lib:
    """The C functions, typed; attribute access returns the ctypes function."""

    def __init__(self, libraries: list[ctypes.CDLL]) -> None:
        for name, (restype, argtypes) in _SIGNATURES.items():
            for library in libraries:
                fn = getattr(library, name, None)
                if fn is not None:
                    break
            else:
                raise ImportError(f"TensorFlow's C API function {name} was not found")
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)


@functools.cache
def lib() -> _Lib:
    """The C API of the TensorFlow that this process imported (loaded once)."""
    import tensorflow as tf

    base = Path(tf.__file__).parent
    names = ("libtensorflow_cc.so.2", "libtensorflow_framework.so.2",
             "libtensorflow_cc.2.dylib", "libtensorflow_framework.2.dylib")
    libraries = [ctypes.CDLL(str(base / n)) for n in names if (base / n).exists()]
    if not libraries:
        raise ImportError(f"no TensorFlow shared library found in {base}")
    return _Lib(libraries)


class Status:
    """A TF_Status for one call; ``check()`` raises CApiError when it is not OK."""

    __slots__ = ("_lib", "ptr")

    def __init__(self) -> None:
        self._lib = lib()
        self.ptr = self._lib.TF_NewStatus()

    def check(self) -> None:
        code = self._lib.TF_GetCode(self.ptr)
        if code != 0:
            message = (self._lib.TF_Message(self.ptr) or b"").decode("utf-8", "replace")
            raise CApiError(code, message)

    def __enter__(self) -> Status:
        return self

    def __exit__(self, *exc: object) -> None:
        self._lib.TF_DeleteStatus(self.ptr)
