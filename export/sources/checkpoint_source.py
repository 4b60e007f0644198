"""TF1 graph checkpoints (``.meta`` + variables) -> SavedModel.

Many older models exist only as a training checkpoint. The graph is imported
with ``import_meta_graph``, its variables restored in a session, and the
tensors the user names become a predict signature written by
``SavedModelBuilder``: the path TF Serving's own documentation describes for
TF1 models. Tensor names are checked against the graph first, with near
matches offered, because a typo is the most common failure here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from export.digests import files_sha256
from export.errors import ExportError
from export.options import DEFAULT_SIGNATURE
from export.sources.model_source import mtime_version

_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")


def parse_tensor_map(pairs: list[str], option: str) -> dict[str, str]:
    """``NAME=tensor:0`` items -> {NAME: tensor name}; names must be unique."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        key, sep, tensor = pair.partition("=")
        key, tensor = key.strip(), tensor.strip()
        if not sep or not key or not tensor:
            raise ExportError(f"{option} {pair!r}: expected NAME=tensor_name:0")
        if not _KEY.match(key):
            raise ExportError(
                f"{option} {pair!r}: signature name {key!r} may hold only letters, digits, "
                "'_', '-' and '.'"
            )
        if key in mapping:
            raise ExportError(f"{option} {key!r} is given twice")
        mapping[key] = tensor
    if not mapping:
        raise ExportError(f"{option} NAME=tensor:0 is required at least once")
    return mapping


class CheckpointSource:
    """A MetaGraphDef plus a checkpoint prefix, with named input/output tensors."""

    kind = "checkpoint"

    def __init__(
        self, meta: Path | None, ckpt: Path, inputs: dict[str, str], outputs: dict[str, str]
    ) -> None:
        self.prefix = self._resolve_prefix(ckpt)
        if meta is None:
            meta = Path(f"{self.prefix}.meta")
        if not meta.is_file():
            raise ExportError(f"--meta {meta}: no such file")
        overlap = sorted(set(inputs) & set(outputs))
        if overlap:
            raise ExportError(f"--input and --output both use the name(s) {', '.join(overlap)}")
        self.path = meta
        self.inputs = inputs
        self.outputs = outputs
        self._graph: Any = None
        self._session: Any = None
        self._tensors: dict[str, Any] = {}
        self._has_tables = False

    @staticmethod
    def _resolve_prefix(ckpt: Path) -> Path:
        import tensorflow as tf

        if ckpt.is_dir():
            latest = tf.train.latest_checkpoint(str(ckpt))
            if latest is None:
                raise ExportError(f"--ckpt {ckpt}: directory holds no checkpoint")
            return Path(latest)
        if not Path(f"{ckpt}.index").is_file():
            raise ExportError(
                f"--ckpt {ckpt}: no checkpoint with this prefix ({ckpt}.index is missing); "
                "give the prefix, e.g. model.ckpt-1000, not one of its files"
            )
        return ckpt

    def _checkpoint_files(self) -> list[Path]:
        parent = self.prefix.parent
        base = self.prefix.name
        return [self.path] + [
            path
            for path in parent.iterdir()
            if path.name == f"{base}.index" or path.name.startswith(f"{base}.data-")
        ]

    def default_version(self) -> int:
        return mtime_version(Path(f"{self.prefix}.index"))

    def description(self) -> dict[str, Any]:
        files = {path.name: path for path in self._checkpoint_files()}
        return {
            "kind": self.kind,
            "path": str(self.path),
            "sha256": files_sha256(files),
            "checkpoint": str(self.prefix),
        }

    def load(self) -> None:
        import tensorflow as tf
        from google.protobuf.message import DecodeError

        graph = tf.Graph()
        with graph.as_default():
            try:
                saver = tf.compat.v1.train.import_meta_graph(str(self.path), clear_devices=True)
            except (DecodeError, OSError, ValueError, KeyError, tf.errors.OpError) as exc:
                raise ExportError(f"--meta {self.path}: not a usable MetaGraphDef: {exc}") from exc
            self._tensors = {
                **self._lookup(graph, self.inputs, "--input"),
                **self._lookup(graph, self.outputs, "--output"),
            }
            session = tf.compat.v1.Session(graph=graph)
            try:
                if saver is not None:
                    saver.restore(session, str(self.prefix))
                tables = graph.get_collection(tf.compat.v1.GraphKeys.TABLE_INITIALIZERS)
                self._has_tables = bool(tables)
                if tables:
                    session.run(tf.compat.v1.tables_initializer())
            except (tf.errors.OpError, ValueError) as exc:
                session.close()
                message = str(exc).strip().splitlines()[0]
                raise ExportError(
                    f"--ckpt {self.prefix}: cannot restore the checkpoint into the graph of "
                    f"{self.path}: {message}"
                ) from exc
        self._graph = graph
        self._session = session

    def _lookup(self, graph: Any, names: dict[str, str], option: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        all_names: list[str] | None = None
        for key, tensor_name in names.items():
            candidate = tensor_name if ":" in tensor_name else f"{tensor_name}:0"
            try:
                found[f"{option}:{key}"] = graph.get_tensor_by_name(candidate)
                continue
            except (KeyError, ValueError):
                pass
            if all_names is None:
                all_names = [t.name for op in graph.get_operations() for t in op.outputs]
            near = difflib.get_close_matches(tensor_name, all_names, n=5, cutoff=0.6)
            if not near and option == "--input":
                near = [
                    t.name
                    for op in graph.get_operations()
                    if op.type == "Placeholder"
                    for t in op.outputs
                ][:5]
            hint = f"; near matches: {', '.join(near)}" if near else ""
            raise ExportError(
                f"{option} {key}={tensor_name}: no tensor {candidate!r} in the graph of "
                f"{self.path}{hint}"
            )
        return found

    def write_saved_model(self, target: Path) -> None:
        import tensorflow as tf

        with self._graph.as_default():
            signature = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(
                inputs={key: self._tensors[f"--input:{key}"] for key in self.inputs},
                outputs={key: self._tensors[f"--output:{key}"] for key in self.outputs},
            )
            main_op = tf.compat.v1.tables_initializer() if self._has_tables else None
            try:
                builder = tf.compat.v1.saved_model.builder.SavedModelBuilder(str(target))
                builder.add_meta_graph_and_variables(
                    self._session,
                    [tf.compat.v1.saved_model.tag_constants.SERVING],
                    signature_def_map={DEFAULT_SIGNATURE: signature},
                    main_op=main_op,
                    strip_default_attrs=True,
                )
                builder.save()
            except (tf.errors.OpError, ValueError, AssertionError) as exc:
                message = str(exc).strip().splitlines()[0]
                raise ExportError(f"cannot write the SavedModel: {message}") from exc

    def run_original(
        self, signature_name: str, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        feeds = {self._tensors[f"--input:{key}"]: value for key, value in inputs.items()}
        fetches = {key: self._tensors[f"--output:{key}"] for key in self.outputs}
        return self._session.run(fetches, feed_dict=feeds)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
