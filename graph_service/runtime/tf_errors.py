"""TensorFlow's errors as TF Serving answers them, and what a failed load says.

TensorFlow's error codes are gRPC's codes, so a C API status or a Python
``OpError`` becomes a ``ServingError`` with the same code and message. A load's
error names the version directory (and the graph file when that is what is
broken), and a graph that restores variables published without them is refused.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from graph_service.errors import ServingError
from graph_service.runtime.tf_c_api import CApiError

# TensorFlow's error codes are gRPC's codes.
_CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def status_from_tf_error(exc: BaseException) -> ServingError:
    """Turn a TensorFlow error (C API status or Python OpError) into TF Serving's answer."""
    if isinstance(exc, CApiError):
        return ServingError(_CODES.get(exc.code, grpc.StatusCode.UNKNOWN), exc.message)
    import tensorflow as tf

    if isinstance(exc, tf.errors.OpError):
        code = _CODES.get(exc.error_code, grpc.StatusCode.UNKNOWN)
        return ServingError(code, exc.message)
    return ServingError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")


def load_error(path: Path, exc: CApiError) -> ServingError:
    """The C++ loader's status (TF Serving's own code and text), saying where.

    Its text does not always name the file (a truncated saved_model.pb reads
    "Read less bytes than requested", OUT_OF_RANGE); only on this failure path
    is the graph file parsed again here, to say so.
    """
    error = status_from_tf_error(exc)
    if str(path) in error.message:
        return error
    where = path
    if "saved_model.pb" not in error.message and not _graph_file_parses(path):
        where = path / "saved_model.pb"
    return ServingError(error.code, f"Failed to load SavedModel at {where}: {error.message}")


def missing_checkpoint(path: Path, meta_graph) -> ServingError | None:
    """A graph that restores variables, published without them, is refused here.

    TF's C++ loader (so TF Serving too) treats a missing ``variables/`` as "no
    variables; no checkpoints were restored", makes the version AVAILABLE and then
    fails every request on it with FAILED_PRECONDITION (uninitialized variables).
    A half-copied or damaged version must instead fail its load, so the version
    already serving keeps the traffic.
    """
    if not meta_graph.saver_def.restore_op_name:
        return None
    index = path / "variables" / "variables.index"
    if index.is_file():
        return None
    return ServingError(
        grpc.StatusCode.DATA_LOSS,
        f"Failed to load SavedModel at {path}: its graph restores variables "
        f"({meta_graph.saver_def.restore_op_name}) but {index} does not exist",
    )


def _graph_file_parses(path: Path) -> bool:
    from tensorflow.core.protobuf import saved_model_pb2

    graph_file = path / "saved_model.pb"
    if not graph_file.is_file():
        return True  # nothing to blame it on (a .pbtxt export, or no graph at all)
    try:
        saved_model_pb2.SavedModel.FromString(graph_file.read_bytes())
    except Exception:
        return False
    return True
