"""Publish real model versions: TensorFlow SavedModels plus the logic tier's artifacts.

The ctr graphs are logistic scorers with seeded weights (``score`` of shape
[-1, 1] from ``features`` of shape [-1, width]); what matters here is that they
are real SavedModels the graph tier loads and that the reference scores below
run the very same files in-process. Versions appear atomically, as export does
it: written to ``.tmp-<version>-<pid>`` and renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io

from logic_service.features import ctr
from support.ctr_artifacts import Derive, feature_width, write_assets


def atomic_save(repo: Path, name: str, version: int, module: Any, fill=None) -> Path:
    import tensorflow as tf

    model_dir = repo / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".tmp-{version}-{os.getpid()}"
    tf.saved_model.save(module, str(staging), signatures={"serving_default": module.serve})
    if fill is not None:
        fill(staging)
    final = model_dir / str(version)
    os.rename(staging, final)
    return final


def publish_version(
    repo: Path,
    name: str,
    version: int,
    transformer: Any,
    seed: int,
    function: str = ctr.FUNCTION_PATH,
    derive: Derive = ctr.derive,
    schema: dict[str, Any] | None = None,
    api_version: str | None = None,
    code: bytes | None = None,
    example: dict[str, Any] | None = None,
) -> Path:
    """``derive`` takes a demo (v1) record: for another API, adapt the record first.

    ``code``/``example``: feature code travelling with the version and the manifest's
    example record (``support.ctr_artifacts.write_assets``).
    """
    import tensorflow as tf

    width = feature_width(transformer, derive)
    rng = np.random.default_rng(seed)

    class Scorer(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(rng.normal(0, 0.3, size=(width, 1)).astype("float32"))
            self.b = tf.Variable(np.float32(rng.normal(-1.0, 0.2)))

        @tf.function(input_signature=[tf.TensorSpec([None, width], tf.float32, name="features")])
        def serve(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"score": tf.sigmoid(tf.matmul(features, self.w) + self.b)}

    def assets(staging: Path) -> None:
        write_assets(
            staging,
            name,
            version,
            transformer,
            schema=schema,
            function=function,
            derive=derive,
            api_version=api_version,
            code=code,
            example=example,
        )

    return atomic_save(repo, name, version, Scorer(), assets)


def publish_tensor_model(repo: Path, name: str, version: int, batch_major: bool = True) -> Path:
    """A plain SavedModel without a manifest: x [-1, 3] -> y [-1, 1] (sum) and z [-1, 2].

    ``batch_major=False`` answers one scalar for the whole batch instead: a model
    whose output the logic tier cannot split into per-record predictions.
    """
    import tensorflow as tf

    class Plain(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            if not batch_major:
                return {"total": tf.reduce_sum(x)}
            return {
                "y": tf.reduce_sum(x, axis=1, keepdims=True),
                "z": tf.stack([x[:, 0] * 2.0, x[:, 2] - x[:, 1]], axis=1),
            }

    return atomic_save(repo, name, version, Plain())


def publish_guarded_model(repo: Path, name: str, version: int) -> Path:
    """x [-1, 3] -> y (row sums), refusing any negative x with INVALID_ARGUMENT.

    TensorFlow's own assertion fails the whole run, so one caller's bad rows in
    a merged call fail it for everybody in the call: what graph batching must undo.
    """
    import tensorflow as tf

    class Guarded(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            checked = tf.debugging.assert_non_negative(x, message="x must be >= 0")
            with tf.control_dependencies([checked]):
                return {"y": tf.reduce_sum(x, axis=1, keepdims=True)}

    return atomic_save(repo, name, version, Guarded())


def reference_scores(
    version_dir: Path, records: list[dict[str, Any]], derive: Derive = ctr.derive
) -> np.ndarray:
    """Scores computed in-process: TF runs the SavedModel, skops the transformer, same features."""
    import tensorflow as tf

    extra = version_dir / "assets.extra"
    data = (extra / "features.skops").read_bytes()
    transformer = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    features = transformer.transform(pd.DataFrame([derive(r) for r in records]))
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    out = signature(features=tf.constant(features.astype("float32")))
    return out["score"].numpy().reshape(-1)
