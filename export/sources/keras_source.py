"""Keras ``.h5`` (legacy HDF5) and ``.keras`` models -> SavedModel.

Loaded with Keras 3 and written with Keras' own ``ExportArchive``: it tracks
the backing ``tf.Variable``s so that the SavedModel also restores under the
TF1 session loader TF Serving uses (a plain ``tf.saved_model.save`` of a Keras
3 model does not). The ``serving_default`` signature takes inputs named after
the model's input layers and returns a dict named after its output layers, so
clients see the names the model author chose rather than ``keras_tensor_7``.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from export.digests import file_sha256
from export.errors import ExportError
from export.options import DEFAULT_SIGNATURE
from export.sources.model_source import mtime_version

_SUFFIXES = {".h5": "h5", ".hdf5": "h5", ".keras": "keras"}
# Names Keras makes up for an Input nobody named (Keras 3, Keras 2 functional).
_AUTO_INPUT = re.compile(r"^(input_layer|input|keras_tensor)(_\d+)?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        clean = _UNSAFE.sub("_", name) or "tensor"
        count = seen.get(clean, 0)
        seen[clean] = count + 1
        unique.append(clean if count == 0 else f"{clean}_{count}")
    return unique


class KerasSource:
    """A Keras Sequential or functional model saved with ``model.save(...)``."""

    kind = "keras"

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise ExportError(f"{path}: no such file")
        if path.is_dir():
            raise ExportError(
                f"{path}: is a directory; a Keras model is a .h5 or .keras file "
                "(for a SavedModel directory use `python -m export savedmodel`)"
            )
        file_format = _SUFFIXES.get(path.suffix.lower())
        if file_format is None:
            raise ExportError(
                f"{path}: not a Keras model file: expected .h5 (legacy HDF5) or .keras"
            )
        self.path = path
        self.format = file_format
        self.model: Any = None
        self.input_names: list[str] = []
        self.output_names: list[str] = []
        self._input_struct: Any = None

    def default_version(self) -> int:
        return mtime_version(self.path)

    def description(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": str(self.path),
            "sha256": file_sha256(self.path),
            "format": self.format,
        }

    def load(self) -> None:
        import h5py

        if self.format == "h5" and not h5py.is_hdf5(self.path):
            raise ExportError(f"{self.path}: not a Keras model file (not an HDF5 file)")
        if self.format == "keras" and not zipfile.is_zipfile(self.path):
            raise ExportError(f"{self.path}: not a Keras model file (not a .keras zip archive)")
        import keras

        try:
            with warnings.catch_warnings():
                # e.g. "do not pass input_shape" for Keras 2 files: nothing the user can change
                warnings.simplefilter("ignore")
                model = keras.models.load_model(self.path, compile=False)
        except Exception as exc:
            raise ExportError(
                f"{self.path}: cannot load the Keras model: {_first_line(exc)}"
            ) from exc
        if not isinstance(model, keras.Model):
            raise ExportError(f"{self.path}: holds a {type(model).__name__}, not a Keras model")
        try:
            inputs = model.inputs
            outputs = model.outputs
        except (AttributeError, ValueError) as exc:
            inputs = outputs = None
            reason = _first_line(exc)
        else:
            reason = "no symbolic inputs/outputs"
        if not inputs or not outputs:
            raise ExportError(
                f"{self.path}: the model has no defined inputs and outputs ({reason}); "
                "export a Sequential or functional model, or save a subclassed one as a "
                "SavedModel and use `python -m export savedmodel`"
            )
        self.model = model
        self._input_struct = getattr(model, "_inputs_struct", None)
        self.input_names = self._name_inputs(model)
        self.output_names = self._name_outputs(model)

    def _name_inputs(self, model: Any) -> list[str]:
        if isinstance(self._input_struct, dict):
            return _unique(list(self._input_struct))
        names = [tensor.name for tensor in model.inputs]
        layers = getattr(model, "layers", [])
        if type(model).__name__ == "Sequential" and _AUTO_INPUT.match(names[0]) and layers:
            # tf.keras named a Sequential's implicit input "<first layer>_input";
            # keep that convention rather than a counter-based name.
            names = [f"{layers[0].name}_input"]
        return _unique(names)

    def _name_outputs(self, model: Any) -> list[str]:
        struct = getattr(model, "_outputs_struct", None)
        if isinstance(struct, dict):
            return _unique(list(struct))
        return _unique([tensor._keras_history.operation.name for tensor in model.outputs])

    def _input_tensors(self) -> list[Any]:
        if isinstance(self._input_struct, dict):
            return list(self._input_struct.values())
        return list(self.model.inputs)

    def _call(self, values: list[Any]) -> dict[str, Any]:
        import keras

        if isinstance(self._input_struct, dict):
            arguments: Any = dict(zip(self._input_struct, values, strict=True))
        elif len(values) == 1:
            arguments = values[0]
        else:
            arguments = list(values)
        result = self.model(arguments, training=False)
        if isinstance(result, dict):
            flat = [result[key] for key in self._outputs_keys()]
        else:
            flat = keras.tree.flatten(result)
        return dict(zip(self.output_names, flat, strict=True))

    def _outputs_keys(self) -> list[str]:
        struct = getattr(self.model, "_outputs_struct", None)
        return list(struct) if isinstance(struct, dict) else []

    def write_saved_model(self, target: Path) -> None:
        import keras
        import tensorflow as tf

        specs = [
            tf.TensorSpec(shape=tensor.shape, dtype=tf.as_dtype(tensor.dtype), name=name)
            for tensor, name in zip(self._input_tensors(), self.input_names, strict=True)
        ]

        def serve(*values: Any) -> dict[str, Any]:
            return self._call(list(values))

        try:
            archive = keras.export.ExportArchive()
            archive.track(self.model)
            archive.add_endpoint(DEFAULT_SIGNATURE, serve, input_signature=specs)
            archive.write_out(str(target), verbose=False)
        except Exception as exc:
            raise ExportError(
                f"{self.path}: cannot convert the Keras model to a SavedModel: {_first_line(exc)}"
            ) from exc

    def run_original(
        self, signature_name: str, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        outputs = self._call([inputs[name] for name in self.input_names])
        return {key: np.asarray(value) for key, value in outputs.items()}

    def close(self) -> None:
        self.model = None
