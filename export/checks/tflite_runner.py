"""Run a converted ``model.tflite`` the way the graph tier serves it.

The graph tier (``--prefer_tflite_model``) runs a TF Lite version by its
signature through TF Lite's interpreter; the export checks a quantized model on
the same path, so what parity and the metric delta measure is what gets served.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np


class TfLiteModel:
    """One interpreter over a serialized TF Lite model, called by signature."""

    def __init__(self, model: bytes) -> None:
        from tensorflow.lite.python.interpreter import Interpreter

        with warnings.catch_warnings():  # "use LiteRT": TF 2.21 still ships this one
            warnings.simplefilter("ignore")
            self._interpreter = Interpreter(model_content=model, num_threads=1)
        self.signatures = self._interpreter.get_signature_list()

    def run(
        self, signature_name: str, inputs: Mapping[str, np.ndarray], batch: int = 256
    ) -> dict[str, np.ndarray]:
        """Every output of ``signature_name`` for ``inputs``, in slices of ``batch`` rows.

        Slicing bounds the interpreter's arena on large evaluation sets.
        """
        runner = self._interpreter.get_signature_runner(signature_name)
        rows = len(next(iter(inputs.values())))
        parts: list[dict[str, np.ndarray]] = []
        for start in range(0, rows, batch):
            parts.append(runner(**{k: v[start : start + batch] for k, v in inputs.items()}))
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
