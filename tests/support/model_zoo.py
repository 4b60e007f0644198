"""Test models for the graph tier, built by real TensorFlow into a tmp repository.

Each builder writes one SavedModel version directory. ``build_zoo`` lays out the
shared repository the session server serves:

    half_plus_two/1   TF1 builder export, y = 0.5 x + 2 (port of TF Serving's
                      saved_model_half_plus_two.py: predict, classify, regress)
    half_plus_two/2   the same graph with b = 3 (y = 0.5 x + 3) and a warmup file
    tf2_multi/1       tf.saved_model.save: serving_default + echo_bytes
    slow/1            a request busy-waits ``seconds`` (originals also hold build "b")
    keras_export/1    Keras 3 ``model.export``
    broken/1          good (half_plus_two, b = 2)
    broken/2          corrupt: truncated saved_model.pb

Builders run in a fresh ``tf.Graph`` so they never touch eager state; TensorFlow
is imported lazily so collecting the tests stays cheap.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

KERAS_WEIGHTS = ([0.5, -1.0, 2.0], 0.25)  # dense kernel (3 -> 1) and bias


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def build_half_plus_two(export_dir: Path, b: float = 2.0, c: float = 3.0) -> Path:
    """Faithful port of TF Serving's testdata/saved_model_half_plus_two.py (CPU variant).

    Same tensor names, signature keys and method names, so the tests exercise
    what TF Serving's own integration tests exercise: ``serving_default``
    (x -> y), ``regress_x_to_y``, ``regress_x_to_y2``, ``regress_x2_to_y3`` and
    ``classify_x_to_y``, the regress/classify ones over serialized tf.Example.
    ``b`` is the intercept of y (2.0 in TF Serving's model; 3.0 makes our "v2").
    """
    tf = _tf()
    v1 = tf.compat.v1
    export_dir = Path(export_dir)
    builder = v1.saved_model.builder.SavedModelBuilder(str(export_dir))
    assets_src = export_dir.parent / f".assets-src-{export_dir.name}"
    assets_src.mkdir(parents=True, exist_ok=True)
    (assets_src / "foo.txt").write_text("asset-file-contents")
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        with tf.device("/cpu:0"):
            a = v1.Variable(0.5, name="a")
            b_var = v1.Variable(b, name="b")
            c_var = v1.Variable(c, name="c")
            serialized_tf_example = v1.placeholder(tf.string, name="tf_example", shape=[None])
            feature_configs = {
                "x": v1.FixedLenFeature([1], dtype=tf.float32),
                "x2": v1.FixedLenFeature([1], dtype=tf.float32, default_value=[0.0]),
            }
            tf_example = v1.parse_example(serialized_tf_example, feature_configs)
            x = tf.identity(tf_example["x"], name="x")
            y = tf.identity(tf.add(tf.multiply(a, x), b_var), name="y")
            y2 = tf.identity(tf.add(tf.multiply(a, x), c_var), name="y2")
            x2 = tf.identity(tf_example["x2"], name="x2")
            a2 = v1.Variable(0.5, name="a2")
            c2 = v1.Variable(3.0, name="c2")
            y3 = tf.identity(tf.add(tf.multiply(a2, x2), c2), name="y3")

        # The asset file and the assign op, as in the original.
        assets_filepath = tf.constant(str(assets_src / "foo.txt"))
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, assets_filepath)
        filename_tensor = v1.Variable(
            "foo.txt", name="filename_tensor", trainable=False, collections=[]
        )
        assign_filename_op = filename_tensor.assign("foo.txt")

        sig = v1.saved_model.signature_def_utils
        info = v1.saved_model.utils.build_tensor_info
        consts = v1.saved_model.signature_constants

        def regression(inp, out):
            return sig.build_signature_def(
                {consts.REGRESS_INPUTS: info(inp)},
                {consts.REGRESS_OUTPUTS: info(out)},
                consts.REGRESS_METHOD_NAME,
            )

        def classification(inp, scores):
            return sig.build_signature_def(
                {consts.CLASSIFY_INPUTS: info(inp)},
                {consts.CLASSIFY_OUTPUT_SCORES: info(scores)},
                consts.CLASSIFY_METHOD_NAME,
            )

        predict = sig.build_signature_def(
            {"x": info(x)}, {"y": info(y)}, consts.PREDICT_METHOD_NAME
        )
        signature_def_map = {
            "regress_x_to_y": regression(serialized_tf_example, y),
            "regress_x_to_y2": regression(serialized_tf_example, y2),
            "regress_x2_to_y3": regression(x2, y3),
            "classify_x_to_y": classification(serialized_tf_example, y),
            consts.DEFAULT_SERVING_SIGNATURE_DEF_KEY: predict,
        }
        sess.run(v1.global_variables_initializer())
        builder.add_meta_graph_and_variables(
            sess,
            [v1.saved_model.tag_constants.SERVING],
            signature_def_map=signature_def_map,
            assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
            main_op=tf.group(assign_filename_op),
        )
    builder.save()
    shutil.rmtree(assets_src, ignore_errors=True)
    return export_dir


def write_half_plus_two_warmup(export_dir: Path, xs: tuple[float, ...] = (1.0, 2.0)) -> Path:
    """Write TF Serving's warmup file: a TFRecord of PredictionLog (every request kind)."""
    tf = _tf()
    from tensorflow_serving.apis import (
        classification_pb2,
        inference_pb2,
        model_pb2,
        predict_pb2,
        prediction_log_pb2,
        regression_pb2,
    )

    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    logs: list[prediction_log_pb2.PredictionLog] = []
    for value in xs:
        predict = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="warmup"))
        predict.inputs["x"].CopyFrom(tf.make_tensor_proto([value], dtype=tf.float32))
        logs.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=predict)
            )
        )
    regress = regression_pb2.RegressionRequest(
        model_spec=model_pb2.ModelSpec(name="warmup", signature_name="regress_x_to_y")
    )
    regress.input.example_list.examples.add().features.feature["x"].float_list.value.append(1.0)
    logs.append(
        prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=regress))
    )
    classify = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(name="warmup", signature_name="classify_x_to_y")
    )
    classify.input.example_list.examples.add().features.feature["x"].float_list.value.append(1.0)
    logs.append(
        prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=classify)
        )
    )
    multi = inference_pb2.MultiInferenceRequest()
    task = multi.tasks.add()
    task.model_spec.signature_name = "regress_x_to_y"
    task.method_name = "tensorflow/serving/regress"
    multi.input.example_list.examples.add().features.feature["x"].float_list.value.append(1.0)
    logs.append(
        prediction_log_pb2.PredictionLog(
            multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=multi)
        )
    )
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def build_tf2_multi(export_dir: Path) -> Path:
    """A TF2 ``tf.saved_model.save`` export with two signatures and mixed dtypes."""
    tf = _tf()

    class Multi(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 2], tf.float32, name="a"),
                tf.TensorSpec([None], tf.int64, name="b"),
            ]
        )
        def serve(self, a, b):
            return {
                "sum": tf.reduce_sum(a, axis=1) + tf.cast(b, tf.float32),
                "b_times_2": b * 2,
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def echo(self, text):
            return {
                "text_bytes": tf.identity(text),
                "length": tf.strings.length(text, unit="BYTE"),
            }

    module = Multi()
    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={"serving_default": module.serve, "echo_bytes": module.echo},
    )
    return Path(export_dir)


def build_keras_export(export_dir: Path) -> Path:
    """A Keras 3 model exported with ``model.export`` (a TF SavedModel for serving).

    One Dense layer with fixed weights: score = features . KERAS_WEIGHTS[0] + KERAS_WEIGHTS[1].
    """
    tf = _tf()
    import keras
    import numpy as np

    inputs = keras.Input(shape=(3,), name="features", dtype="float32")
    outputs = keras.layers.Dense(1, name="score")(inputs)
    model = keras.Model(inputs, outputs)
    kernel, bias = KERAS_WEIGHTS
    model.get_layer("score").set_weights(
        [np.array(kernel, dtype=np.float32).reshape(3, 1), np.array([bias], dtype=np.float32)]
    )
    del tf
    model.export(str(export_dir), verbose=False)
    return Path(export_dir)


def build_slow(export_dir: Path, tag: str) -> Path:
    """A model whose request takes ``seconds`` of wall time (busy wait on tf.timestamp).

    Lets lifecycle tests hold a request in flight on a version while it is being
    replaced. Outputs ``waited`` (seconds spent) and ``tag`` (which build served).
    """
    tf = _tf()

    class Slow(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float64, name="seconds")])
        def serve(self, seconds):
            start = tf.timestamp()
            deadline = start + tf.reduce_max(tf.concat([seconds, [0.0]], axis=0))
            end = tf.while_loop(lambda t: t < deadline, lambda t: [tf.timestamp()], [start])[0]
            return {
                "waited": tf.fill(tf.shape(seconds), end - start),
                "tag": tf.fill(tf.shape(seconds), tf.constant(tag)),
            }

    module = Slow()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return Path(export_dir)


def corrupt_saved_model(export_dir: Path) -> Path:
    """Truncate saved_model.pb so loading fails with a parse error."""
    pb = Path(export_dir) / "saved_model.pb"
    data = pb.read_bytes()
    pb.write_bytes(data[: len(data) // 3])
    return Path(export_dir)


def publish_version(src: Path, model_dir: Path, version: int) -> Path:
    """Copy a version directory into place atomically (copy to .tmp-*, then rename)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / f".tmp-{version}-{os.getpid()}"
    shutil.copytree(src, tmp)
    final = model_dir / str(version)
    os.rename(tmp, final)
    return final


@dataclass(frozen=True)
class Zoo:
    """Where the built models live. ``repo`` is the model repository root."""

    repo: Path
    # Pristine copies (outside the repo) that tests copy into place for hot adds.
    originals: Path

    def model_dir(self, name: str) -> Path:
        return self.repo / name


def build_zoo(root: Path) -> Zoo:
    """Build every zoo model once; ~10 s on 2 cores."""
    root = Path(root)
    originals = root / "originals"
    repo = root / "models"
    build_half_plus_two(originals / "half_plus_two_b2", b=2.0)
    build_half_plus_two(originals / "half_plus_two_b3", b=3.0)
    write_half_plus_two_warmup(originals / "half_plus_two_b3")
    build_tf2_multi(originals / "tf2_multi")
    build_keras_export(originals / "keras_export")
    build_slow(originals / "slow_a", "a")
    build_slow(originals / "slow_b", "b")
    shutil.copytree(originals / "half_plus_two_b2", originals / "broken_pb")
    corrupt_saved_model(originals / "broken_pb")

    layout = {
        ("half_plus_two", 1): "half_plus_two_b2",
        ("half_plus_two", 2): "half_plus_two_b3",
        ("tf2_multi", 1): "tf2_multi",
        ("keras_export", 1): "keras_export",
        ("slow", 1): "slow_a",
        ("broken", 1): "half_plus_two_b2",
        ("broken", 2): "broken_pb",
    }
    for (name, version), original in layout.items():
        shutil.copytree(originals / original, repo / name / str(version))
    return Zoo(repo=repo, originals=originals)
