"""Fixtures for the export tool's tests: real models built with TensorFlow.

Every artifact is made once per session in a tmp dir by the real library that
would make it in the field (Keras 3, tf.keras 2 via tf_keras, TF1 graph APIs,
``tf.saved_model.save``). Exports run in-process through ``main(argv)`` (one
TensorFlow import for the whole module); a few end-to-end tests run the CLI
as a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one ``error: ...`` line on stderr (progress lines may precede it)."""
        lines = [line for line in self.err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, f"expected exactly one error line, stderr was:\n{self.err}"
        assert "Traceback" not in self.err
        return lines[0]


@pytest.fixture(scope="session")
def run_export() -> Callable[..., CliResult]:
    """Call ``export.__main__.main(argv)`` in-process, capturing stdout/stderr."""
    from export.__main__ import main

    def run(*argv: Any) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(arg) for arg in argv])
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., CliResult]:
    """Run ``python -m export ...`` as a real subprocess from the repository root."""

    def run(*argv: Any, cwd: Path = REPO_ROOT) -> CliResult:
        completed = subprocess.run(
            [sys.executable, "-m", "export", *[str(arg) for arg in argv]],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)

    return run


@pytest.fixture(scope="session")
def session_predict() -> Callable[[Path, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Serve a SavedModel the TF Serving way, written here independently of export/."""
    import tensorflow as tf

    def predict(directory: Path, inputs: dict[str, np.ndarray], signature: str = "serving_default"):
        with tf.compat.v1.Session(graph=tf.Graph()) as session:
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(directory))
            sig = meta.signature_def[signature]
            feeds = {sig.inputs[key].name: value for key, value in inputs.items()}
            return session.run({k: v.name for k, v in sig.outputs.items()}, feeds)

    return predict


def read_manifest(version_dir: Path) -> dict[str, Any]:
    return json.loads((version_dir / "assets.extra" / "tierkit.json").read_text())


@pytest.fixture(scope="session")
def manifest_of() -> Callable[[Path], dict[str, Any]]:
    return read_manifest


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def sequential_h5(models: Path) -> Path:
    """Keras 3 Sequential whose input layer has an auto-generated name."""
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="probability"),
        ]
    )
    path = models / "sequential.h5"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def functional_h5(models: Path) -> Path:
    """Functional model: a float and an int32 input, two outputs."""
    import keras

    keras.utils.set_random_seed(2)
    dense_in = keras.Input(shape=(3,), name="dense_features")
    ids = keras.Input(shape=(2,), name="category_ids", dtype="int32")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(5, 2, name="embed")(ids))
    joined = keras.layers.Concatenate()([dense_in, embedded])
    click = keras.layers.Dense(1, activation="sigmoid", name="click")(joined)
    topics = keras.layers.Dense(3, activation="softmax", name="topics")(joined)
    model = keras.Model([dense_in, ids], [click, topics])
    path = models / "functional.h5"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def keras_v3_file(models: Path) -> Path:
    """Native Keras 3 format with dict outputs."""
    import keras

    keras.utils.set_random_seed(3)
    features = keras.Input(shape=(6,), name="features")
    hidden = keras.layers.Dense(4, activation="tanh", name="hidden")(features)
    outputs = {
        "score": keras.layers.Dense(1, name="score_head")(hidden),
        "embedding": keras.layers.Dense(2, name="embedding_head")(hidden),
    }
    model = keras.Model(features, outputs)
    path = models / "dict_outputs.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def tf_keras_h5(models: Path) -> Path:
    """An .h5 written by Keras 2 (tf.keras), as many existing teams have them."""
    import tf_keras

    tf_keras.utils.set_random_seed(4)
    model = tf_keras.Sequential(
        [
            tf_keras.layers.Dense(5, activation="relu", input_shape=(3,), name="hidden"),
            tf_keras.layers.Dense(1, activation="sigmoid", name="prob"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=1, verbose=0)
    path = models / "tf_keras.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy": that is the point
        model.save(path)
    return path


def _tf1_graph(tf: Any) -> tuple[Any, Any, Any]:
    x = tf.compat.v1.placeholder(tf.float32, shape=[None, 3], name="input_x")
    weights = tf.compat.v1.get_variable(
        "weights", initializer=tf.constant([[0.5], [-1.0], [2.0]], dtype=tf.float32)
    )
    bias = tf.compat.v1.get_variable("bias", initializer=tf.constant([0.25]))
    logits = tf.add(tf.matmul(x, weights), bias, name="logits")
    return x, logits, tf.sigmoid(logits, name="probability")


@pytest.fixture(scope="session")
def tf1_checkpoint(models: Path) -> tuple[Path, Path]:
    """A TF1 training checkpoint: model.ckpt-7.meta + .index + .data-*."""
    import tensorflow as tf

    directory = models / "tf1_ckpt"
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        _tf1_graph(tf)
        session.run(tf.compat.v1.global_variables_initializer())
        saver = tf.compat.v1.train.Saver()
        prefix = saver.save(session, str(directory / "model.ckpt"), global_step=7)
    return Path(prefix + ".meta"), Path(prefix)


@pytest.fixture(scope="session")
def tf1_savedmodel(models: Path) -> Path:
    """A SavedModel written by the TF1 builder, with two signatures."""
    import tensorflow as tf

    directory = models / "tf1_savedmodel"
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        x, logits, probability = _tf1_graph(tf)
        session.run(tf.compat.v1.global_variables_initializer())
        utils = tf.compat.v1.saved_model.signature_def_utils
        builder = tf.compat.v1.saved_model.builder.SavedModelBuilder(str(directory))
        builder.add_meta_graph_and_variables(
            session,
            ["serve"],
            signature_def_map={
                "serving_default": utils.predict_signature_def(
                    {"x": x}, {"probability": probability}
                ),
                "logits": utils.predict_signature_def({"x": x}, {"logits": logits}),
            },
        )
        builder.save()
    return directory


@pytest.fixture(scope="session")
def tf2_savedmodel(models: Path) -> Path:
    """A TF2 ``tf.Module`` with a variable, saved by ``tf.saved_model.save``."""
    import tensorflow as tf

    class Doubler(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = tf.Variable([2.0, 3.0])

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="values")])
        def serve(self, values: Any) -> dict[str, Any]:
            scaled = values * self.scale
            return {"scaled": scaled, "total": tf.reduce_sum(scaled, axis=1)}

    module = Doubler()
    directory = models / "tf2_savedmodel"
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory


@pytest.fixture(scope="session")
def random_savedmodel(models: Path) -> Path:
    """A SavedModel whose output is random: no two runs agree, so parity must fail."""
    import tensorflow as tf

    class Noisy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="values")])
        def serve(self, values: Any) -> dict[str, Any]:
            # the raw op with seed=seed2=0 is random per run whatever the global seed
            noise = tf.raw_ops.RandomUniform(shape=tf.shape(values), dtype=tf.float32)
            return {"noisy": values + noise}

    module = Noisy()
    directory = models / "random_savedmodel"
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``scripts/train_demo.py`` run for real (small --rows), once per session."""
    out = tmp_path_factory.mktemp("demo")
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "train_demo.py"),
            "--out",
            str(out),
            "--rows",
            "600",
            "--seed",
            "3",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "trained 5 epochs" in completed.stdout
    return out


def tmp_leftovers(repo: Path) -> list[Path]:
    return [p for p in repo.rglob("*") if p.name.startswith((".tmp-", ".old-"))]


@pytest.fixture(scope="session")
def leftovers() -> Callable[[Path], list[Path]]:
    return tmp_leftovers
