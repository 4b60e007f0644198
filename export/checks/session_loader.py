"""Load a SavedModel the way TensorFlow Serving (and tierkit's graph tier) does.

TF Serving's C++ loader never calls ``tf.saved_model.load``: it imports the
MetaGraphDef tagged ``serve`` into a session, restores the variables, runs the
init op, and then feeds and fetches the *tensor names* recorded in each
SignatureDef. Some exports work with one path and not the other (TF1 graphs
under ``tf.saved_model.load``, Keras 3 objects saved with the wrong tracking
under the session path), so the export's parity check must use this path: an
export that passes here is one the graph tier can serve.

The graph tier keeps its own loader; this module is deliberately small and
free of serving concerns (no batching, no threads, no version policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import tensorflow as tf

# TF2 SavedModels list their initializer as a pseudo-signature; it takes no
# inputs and is not callable by clients, so it is never treated as one.
INIT_OP_SIGNATURE = "__saved_model_init_op"
SERVE_TAG = "serve"


class SessionModel:
    """A SavedModel loaded into its own graph and ``tf.compat.v1.Session``."""

    def __init__(self, export_dir: str | Path, tags: tuple[str, ...] = (SERVE_TAG,)) -> None:
        self.export_dir = Path(export_dir)
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        try:
            meta_graph = tf.compat.v1.saved_model.loader.load(
                self._session, list(tags), str(self.export_dir)
            )
        except BaseException:
            self._session.close()
            raise
        self.signatures: dict[str, Any] = {
            key: signature
            for key, signature in meta_graph.signature_def.items()
            if key != INIT_OP_SIGNATURE
        }

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feed ``inputs`` (by signature input key) and fetch every signature output."""
        signature = self.signatures[signature_name]
        feeds = {signature.inputs[key].name: value for key, value in inputs.items()}
        fetches = {key: info.name for key, info in signature.outputs.items()}
        return self._session.run(fetches, feed_dict=feeds)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SessionModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
