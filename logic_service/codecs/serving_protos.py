"""The official TF Serving protos and gRPC stubs, without importing TensorFlow.

``tensorflow_serving.apis.*_pb2`` import ``tensorflow.core.framework.*_pb2``,
and importing any ``tensorflow.*`` module first runs ``tensorflow/__init__.py``:
~5 s and ~600 MB per worker process for a service that never runs a graph.
Those ``*_pb2`` files are plain generated protobuf modules inside empty
packages, so while importing them we stand in a bare package object for
``tensorflow`` (its real directory as ``__path__``), then take it out of
``sys.modules`` again. A later ``import tensorflow`` (tests, export tools in the
same process) runs the real ``__init__`` and finds the same proto modules
already loaded, so descriptors are never registered twice.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

_MODULES = (
    "tensorflow.core.framework.types_pb2",
    "tensorflow.core.framework.tensor_pb2",
    "tensorflow.core.framework.tensor_shape_pb2",
    "tensorflow_serving.apis.model_pb2",
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.get_model_status_pb2",
    "tensorflow_serving.apis.get_model_metadata_pb2",
    "tensorflow_serving.apis.model_service_pb2_grpc",
    "tensorflow_serving.apis.prediction_service_pb2_grpc",
)


def _import_without_tensorflow_init() -> None:
    if "tensorflow" in sys.modules:
        return  # the real package is loaded already: normal imports below are cheap
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        return  # let the normal import below fail with its own message
    placeholder = types.ModuleType("tensorflow")
    placeholder.__path__ = list(spec.submodule_search_locations)
    sys.modules["tensorflow"] = placeholder
    try:
        for name in _MODULES:
            importlib.import_module(name)
    finally:
        if sys.modules.get("tensorflow") is placeholder:
            del sys.modules["tensorflow"]


_import_without_tensorflow_init()

from tensorflow.core.framework import (  # noqa: E402
    tensor_pb2,
    tensor_shape_pb2,
    types_pb2,
)
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

__all__ = [
    "get_model_metadata_pb2",
    "get_model_status_pb2",
    "model_pb2",
    "model_service_pb2_grpc",
    "predict_pb2",
    "prediction_service_pb2_grpc",
    "tensor_pb2",
    "tensor_shape_pb2",
    "types_pb2",
]
