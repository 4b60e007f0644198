"""ctr-like versions for rollout tests: a healthy scorer, one that always fails, one that is slow.

They carry the same manifest, schema and transformer as real ctr versions
(``write_assets``), so the logic tier treats them like any published version;
only their graphs differ, and the failure happens when the graph runs (a
``tf.debugging`` assertion), not when it loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.ctr_artifacts import feature_width, write_assets
from support.ctr_versions import atomic_save


def publish_misbehaving(repo: Path, name: str, version: int, transformer: Any, kind: str) -> Path:
    import tensorflow as tf

    width = feature_width(transformer)

    class Misbehaving(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, width], tf.float32, name="features")])
        def serve(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
            if kind == "failing":
                gate = tf.debugging.assert_less(
                    tf.reduce_sum(features) * 0.0, -1.0, message="this version always fails"
                )
            else:  # slow: busy-wait 0.25 s of wall time per call
                start = tf.timestamp()
                gate = tf.while_loop(
                    lambda t: t < start + 0.25, lambda t: [tf.timestamp()], [start]
                )[0]
            with tf.control_dependencies([gate]):
                score = tf.sigmoid(tf.reduce_mean(features, axis=1, keepdims=True))
            return {"score": score}

    def assets(staging: Path) -> None:
        write_assets(staging, name, version, transformer)

    return atomic_save(repo, name, version, Misbehaving(), assets)
