"""The two models ``python -m bench compression`` measures, and their quantized versions.

* ``demo``: scripts/train_demo.py's click-through model (41 features, 2 hidden
  layers, about 1.9 k parameters), trained fresh into the run's directory with
  its sample, calibration and labelled held-out files.
* ``large``: a 256 -> 2048 -> 1024 -> 512 -> 1 sigmoid MLP (about 3.2 M
  parameters) trained for two epochs on synthetic rows whose label comes from a
  hidden random teacher, so AUC on held-out rows means something; the same four
  files are written for it.

Each model is published by the real export tool four times into one model
directory: version 1 the float SavedModel, 2 float16, 3 dynamic, 4 int8 (with
``--calibration`` and ``--eval``), so one graph server with
``--prefer_tflite_model=true`` and the ``all`` policy serves the four side by side.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = {1: "savedmodel", 2: "float16", 3: "dynamic", 4: "int8"}
LARGE_WIDTH = 256
LARGE_LAYERS = (2048, 1024, 512)


@dataclass(frozen=True)
class BenchModel:
    """One model's files and where its four versions were published."""

    name: str
    params: int
    files: dict[str, Path]  # model, sample, calibration, eval
    base: Path  # <repo>/<name>: versions 1-4

    def version_dir(self, version: int) -> Path:
        return self.base / str(version)

    def sample(self) -> dict[str, np.ndarray]:
        inputs = json.loads(self.files["sample"].read_text())["inputs"]
        return {key: np.asarray(value, np.float32) for key, value in inputs.items()}


def _rows(matrix: np.ndarray) -> list[list[float]]:
    return [[float(f"{v:.7g}") for v in row] for row in matrix]


def train_demo(workdir: Path) -> dict[str, Path]:
    out = workdir / "demo"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_demo.py"), "--out", str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return {
        "model": out / "model.h5",
        "sample": out / "ctr_sample.json",
        "calibration": out / "ctr_calibration.json",
        "eval": out / "ctr_eval.json",
    }


def train_large(workdir: Path, rows: int = 24_000, seed: int = 3) -> tuple[dict[str, Path], int]:
    """The larger MLP and its files; returns them and its parameter count."""
    import keras

    out = workdir / "large"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, LARGE_WIDTH)).astype(np.float32)
    teacher = rng.normal(size=(LARGE_WIDTH,)) / np.sqrt(LARGE_WIDTH)
    logits = features @ teacher + 0.5 * np.tanh(features[:, :8]).sum(axis=1) - 1.0
    labels = (rng.random(rows) < 1 / (1 + np.exp(-2 * logits))).astype(np.float32)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(LARGE_WIDTH,), name="features")
    hidden = inputs
    for i, units in enumerate(LARGE_LAYERS):
        hidden = keras.layers.Dense(units, activation="relu", name=f"hidden_{i + 1}")(hidden)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(hidden)
    model = keras.Model(inputs, score, name="large")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    split = int(rows * 0.8)
    model.fit(features[:split], labels[:split], epochs=2, batch_size=256, verbose=0)
    files = {
        "model": out / "model.h5",
        "sample": out / "sample.json",
        "calibration": out / "calibration.json",
        "eval": out / "eval.json",
    }
    files["sample"].write_text(json.dumps({"inputs": {"features": _rows(features[:8])}}))
    files["calibration"].write_text(json.dumps({"inputs": {"features": _rows(features[:256])}}))
    files["eval"].write_text(
        json.dumps(
            {
                "inputs": {"features": _rows(features[split:])},
                "labels": [int(v) for v in labels[split:]],
            }
        )
    )
    model.save(files["model"])
    return files, int(model.count_params())


def publish_versions(name: str, files: dict[str, Path], repo: Path, params: int) -> BenchModel:
    """Versions 1-4 of ``name`` through ``python -m export`` (in-process)."""
    from export.__main__ import main as export_main

    common = [
        "keras",
        str(files["model"]),
        "--name",
        name,
        "--repo",
        str(repo),
        "--sample",
        str(files["sample"]),
        "--quiet",
    ]
    for version, mode in VERSIONS.items():
        extra: list[str] = []
        if mode != "savedmodel":
            extra = ["--quantize", mode, "--eval", str(files["eval"])]
        if mode == "int8":
            extra += ["--calibration", str(files["calibration"])]
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = export_main([*common, "--version", str(version), *extra])
        if code != 0:
            raise RuntimeError(f"export of {name} {mode} failed:\n{err.getvalue()}")
    return BenchModel(name, params, files, repo / name)


def demo_params(files: dict[str, Path]) -> int:
    import keras

    return int(keras.saving.load_model(files["model"], compile=False).count_params())
