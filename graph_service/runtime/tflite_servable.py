"""One version served from its ``model.tflite`` (``--prefer_tflite_model=true``).

TF Serving loads ``model.tflite`` from the version directory instead of the
SavedModel when the flag is set and the file is there (``kTfLiteModelFilename``,
saved_model_bundle_factory.cc), and serves it behind the same APIs: its
SignatureDefs come from the model (tflite_model.py). This class offers the
request paths what ``Servable`` offers (``signatures``, ``run``, ``run_tensors``,
``derived``, ``close``), so Predict, Classify/Regress, metadata, batching, warmup,
hot reload and version policies treat both alike.

An interpreter runs one call at a time, so a version keeps a pool of them: a
run takes an idle one (creating it while fewer than ``pool_size`` exist, so a
server at concurrency 1 holds one), and gives it back. Each interpreter runs its
kernels on one thread: at batch 1 the hand-off to an op pool costs more than the
work, and concurrent requests already use the other cores. ``Interpreter.invoke``
releases the GIL, as ``TF_SessionRun`` does.
"""

from __future__ import annotations

import logging
import queue
import threading
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from graph_service.errors import ServingError
from graph_service.runtime.tflite_model import MODEL_FILE_NAME, read_model_facts

log = logging.getLogger("graph_service")

PREDICT_METHOD = "tensorflow/serving/predict"
DEFAULT_SIGNATURE = "serving_default"
CallIn = Callable[..., Any]


def run_here(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def tflite_model_path(version_dir: Path) -> Path:
    return version_dir / MODEL_FILE_NAME


def _new_interpreter(model: bytes):
    # tf.lite.Interpreter warns that LiteRT (ai_edge_litert) succeeds it; it is the
    # interpreter TensorFlow 2.21 ships, and the one warning per load says nothing new.
    from tensorflow.lite.python.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Interpreter(model_content=model, num_threads=1)


def _tensor_info(name: str, dtype: np.dtype, shape: Sequence[int]) -> meta_graph_pb2.TensorInfo:
    from tensorflow.python.framework import dtypes

    info = meta_graph_pb2.TensorInfo(name=name, dtype=dtypes.as_dtype(dtype).as_datatype_enum)
    info.tensor_shape.CopyFrom(
        tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in shape]
        )
    )
    return info


def _strip_index(tensor_name: str) -> str:
    """TF tensor names end in ``:0``, TF Lite's do not (TfToTfLiteTensorName)."""
    return tensor_name.split(":", 1)[0]


class _Interpreter:
    """One interpreter and its signature runners, used by one run at a time."""

    def __init__(self, model: bytes) -> None:
        self.interpreter = _new_interpreter(model)
        self.interpreter.allocate_tensors()
        self._runners: dict[str, Any] = {}
        self._by_name = {
            d["name"]: d["index"]
            for d in (*self.interpreter.get_input_details(), *self.interpreter.get_output_details())
        }
        self._input_shapes: dict[int, tuple[int, ...]] = {
            d["index"]: tuple(d["shape"]) for d in self.interpreter.get_input_details()
        }

    def run_signature(self, key: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        runner = self._runners.get(key)
        if runner is None:
            runner = self._runners[key] = self.interpreter.get_signature_runner(key)
        return runner(**inputs)  # resizes when a shape changed; outputs are copies

    def run_tensors(
        self, feeds: Sequence[str], fetches: Sequence[str], values: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        interpreter = self.interpreter
        indexes = []
        for name, value in zip(feeds, values, strict=True):
            index = self._index(name, "input")
            indexes.append(index)
            if self._input_shapes.get(index) != value.shape:
                interpreter.resize_tensor_input(index, list(value.shape), strict=False)
                self._input_shapes[index] = value.shape
        if len(indexes) != len(set(indexes)):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Duplicate feeds in {feeds}")
        interpreter.allocate_tensors()  # a no-op unless a shape changed
        for index, value in zip(indexes, values, strict=True):
            interpreter.set_tensor(index, value)
        interpreter.invoke()
        return [interpreter.get_tensor(self._index(name, "output")) for name in fetches]

    def _index(self, tensor_name: str, kind: str) -> int:
        index = self._by_name.get(_strip_index(tensor_name))
        if index is None:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Missing {kind} TFLite tensor: {tensor_name}"
            )
        return index


class TfLiteServable:
    """A TF Lite model behind the interface of ``Servable``."""

    def __init__(
        self, name: str, version: int, path: Path, model: bytes, pool_size: int
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.model_size = len(model)
        self._model = model
        self._pool_size = max(1, pool_size)
        self._idle: queue.SimpleQueue[_Interpreter] = queue.SimpleQueue()
        self._created = 0
        self._lock = threading.Lock()
        self._closed = False
        first = _Interpreter(model)  # checks the model builds and allocates
        self._created = 1
        self._idle.put(first)
        facts = read_model_facts(model)
        # A run's cost follows its input shapes unless the graph loops or branches.
        self.value_dependent_ops = facts.control_flow
        # Signature key -> the runner signature it runs, or None for tensor-name runs.
        self._runner_of: dict[str, str | None] = {}
        self.signatures = self._signatures(first, facts.legacy_signatures)
        self.meta_graph = meta_graph_pb2.MetaGraphDef(signature_def=self.signatures)
        self.derived: dict[Hashable, Any] = {}

    @property
    def runs_in_caller_thread(self) -> bool:
        """An interpreter runs on the thread that invokes it (there is no op pool)."""
        return True

    @classmethod
    def load(
        cls,
        name: str,
        version: int,
        path: Path,
        pool_size: int,
        call: CallIn = run_here,
    ) -> TfLiteServable:
        """Read and build ``path/model.tflite``; raises ServingError on any failure."""
        model_file = tflite_model_path(path)
        try:
            model = model_file.read_bytes()
        except OSError as exc:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Could not read {model_file}: {exc.strerror}"
            ) from None
        try:
            return call(cls, name, version, path, model, pool_size)
        except ServingError:
            raise
        except (ValueError, RuntimeError) as exc:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Cannot build TF Lite interpreter from {model_file}: {exc}",
            ) from None

    def _signatures(
        self, first: _Interpreter, legacy: dict[str, meta_graph_pb2.SignatureDef]
    ) -> dict[str, meta_graph_pb2.SignatureDef]:
        """TF Serving's rules (tflite_model.py): legacy metadata, native signatures, tensors."""
        signatures: dict[str, meta_graph_pb2.SignatureDef] = {}
        interpreter = first.interpreter
        if legacy:
            # Aliases and method from the metadata, dtype and shape from the tensors.
            details = {
                d["name"]: d
                for d in (*interpreter.get_input_details(), *interpreter.get_output_details())
            }
            for key, given in legacy.items():
                signature = meta_graph_pb2.SignatureDef(method_name=given.method_name)
                for target, source in ((signature.inputs, given.inputs),
                                       (signature.outputs, given.outputs)):
                    for alias, info in source.items():
                        d = details.get(_strip_index(info.name))
                        if d is None:
                            raise ValueError(
                                f"signature {key!r} names tensor {info.name}, not in the model"
                            )
                        target[alias].CopyFrom(
                            _tensor_info(info.name, d["dtype"], d["shape_signature"])
                        )
                signatures[key] = signature
                self._runner_of[key] = None
            return signatures
        listed = interpreter.get_signature_list()
        if listed:
            for key in listed:
                runner = interpreter.get_signature_runner(key)
                signature = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
                for alias, d in runner.get_input_details().items():
                    signature.inputs[alias].CopyFrom(
                        _tensor_info(d["name"], d["dtype"], d["shape_signature"])
                    )
                for alias, d in runner.get_output_details().items():
                    signature.outputs[alias].CopyFrom(
                        _tensor_info(d["name"], d["dtype"], d["shape_signature"])
                    )
                signatures[key] = signature
                self._runner_of[key] = key
            return signatures
        signature = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
        for d in interpreter.get_input_details():
            signature.inputs[d["name"]].CopyFrom(
                _tensor_info(d["name"], d["dtype"], d["shape_signature"])
            )
        for d in interpreter.get_output_details():
            signature.outputs[d["name"]].CopyFrom(
                _tensor_info(d["name"], d["dtype"], d["shape_signature"])
            )
        self._runner_of[DEFAULT_SIGNATURE] = None
        return {DEFAULT_SIGNATURE: signature}

    # ------------------------------------------------------------------ runs
    def _borrow(self) -> _Interpreter:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            create = self._created < self._pool_size and not self._closed
            if create:
                self._created += 1
        if create:
            return _Interpreter(self._model)
        return self._idle.get()

    def _call(self, fn: Callable[[_Interpreter], Any]) -> Any:
        if self._closed:
            raise ServingError(grpc.StatusCode.UNAVAILABLE, "Servable is unloading")
        interpreter = self._borrow()
        try:
            return fn(interpreter)
        except ServingError:
            raise
        except (ValueError, RuntimeError) as exc:
            # Wrong dtype, a shape the graph cannot take, a failed kernel: the
            # interpreter's own words, as the session's would be.
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        finally:
            self._idle.put(interpreter)

    def run_tensors(
        self,
        feed_names: Sequence[str],
        fetch_names: Sequence[str],
        values: Sequence[np.ndarray],
        call: CallIn = run_here,
        timeout_s: float | None = None,
    ) -> list[np.ndarray]:
        """Feed and fetch by tensor name (``x:0`` or ``x``) on the main subgraph.

        ``timeout_s`` is accepted and not enforced: an interpreter cannot be
        cancelled mid-run (TF Serving's TfLiteSession ignores RunOptions too).
        """
        return call(self._call, lambda i: i.run_tensors(feed_names, fetch_names, values))

    def run(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_aliases: Sequence[str],
        call: CallIn = run_here,
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run one signature with inputs and outputs named by their aliases."""
        runner = self._runner_of.get(signature_name)
        signature = self.signatures[signature_name]
        if runner is not None:
            outputs = call(self._call, lambda i: i.run_signature(runner, inputs))
            return {alias: outputs[alias] for alias in output_aliases}
        aliases = sorted(inputs)
        values = self.run_tensors(
            [signature.inputs[a].name for a in aliases],
            [signature.outputs[a].name for a in output_aliases],
            [inputs[a] for a in aliases],
            call,
        )
        return dict(zip(output_aliases, values, strict=True))

    def close(self) -> None:
        """Drop the interpreters; runs in flight finish on the ones they hold."""
        with self._lock:
            self._closed = True
        while True:
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break
