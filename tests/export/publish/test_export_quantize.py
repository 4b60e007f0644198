"""--quantize: each mode from the real demo model, its checks, and every refusal.

The demo (scripts/train_demo.py, small --rows) is exported once per mode; each
version directory must hold the SavedModel and ``model.tflite`` (the file TF
Serving's --prefer_tflite_model looks for), a manifest entry with parity and the
metric delta on the held-out rows, and a TF Lite model that answers like the
SavedModel when run independently of export/.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

MODES = {"float16": 1e-3, "dynamic": 2e-2, "int8": 5e-2}


@pytest.fixture(scope="module")
def quantized(demo, tmp_path_factory, run_export):
    """The demo published once per mode (versions 1, 2, 3) with --eval."""
    repo = tmp_path_factory.mktemp("quantized")
    results = {}
    for version, mode in enumerate(MODES, start=1):
        extra = ["--calibration", demo / "ctr_calibration.json"] if mode == "int8" else []
        results[mode] = run_export(
            "keras", demo / "model.h5", "--name", "ctr", "--repo", repo, "--version", version,
            "--sample", demo / "ctr_sample.json", "--quantize", mode,
            "--eval", demo / "ctr_eval.json", "--max-metric-drop", "0.05", *extra,
        )
    return repo, results


def _tflite_predict(model: bytes, features: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=model)
    return interpreter.get_signature_runner("serving_default")(features=features)["score"]


@pytest.mark.parametrize("mode", list(MODES))
def test_each_mode_publishes_tflite_beside_the_savedmodel(
    mode, quantized, demo, manifest_of, session_predict, leftovers
):
    repo, results = quantized
    result = results[mode]
    assert result.code == 0, result.err
    assert f"quantizing 'serving_default' to TF Lite ({mode})" in result.err
    assert "parity check of model.tflite" in result.err and "eval on" in result.err
    version_dir = repo / "ctr" / str(list(MODES).index(mode) + 1)
    assert (version_dir / "saved_model.pb").is_file()
    model = (version_dir / "model.tflite").read_bytes()
    manifest = manifest_of(version_dir)
    entry = manifest["compression"]
    assert entry["mode"] == mode and entry["file"] == "model.tflite"
    assert entry["bytes"] == len(model)
    assert entry["parity"]["atol"] == MODES[mode]
    assert entry["parity"]["max_abs_diff"] <= MODES[mode]
    assert manifest["files"]["model.tflite"]  # its sha256, like every served file
    evaluation = entry["eval"]
    assert evaluation["metric"] == "auc" and set(evaluation["float"]) == {"auc", "logloss"}
    assert evaluation["rows"] == len(json.loads((demo / "ctr_eval.json").read_text())["labels"])
    assert evaluation["drop"] <= 0.05
    if mode == "int8":
        assert entry["calibration_rows"] == 256
        assert entry["saved_model_bytes"] >= 3 * entry["bytes"]

    # Independently of export/: the TF Lite model answers like the SavedModel.
    sample = np.array(
        json.loads((demo / "ctr_sample.json").read_text())["inputs"]["features"], np.float32
    )
    want = session_predict(version_dir, {"features": sample})["score"]
    got = _tflite_predict(model, sample)
    np.testing.assert_allclose(got, want, atol=MODES[mode])
    assert leftovers(repo) == []


def test_metric_drop_past_the_limit_publishes_nothing(demo, tmp_path, run_export, leftovers):
    # One all-zero calibration row: int8 ranges that fit nothing, so the scores
    # collapse (parity is let through to reach the metric check).
    calibration = tmp_path / "zeros.json"
    width = len(json.loads((demo / "ctr_sample.json").read_text())["inputs"]["features"][0])
    calibration.write_text(json.dumps({"inputs": {"features": [[0.0] * width]}}))
    result = run_export(
        "keras", demo / "model.h5", "--name", "ctr", "--repo", tmp_path / "repo", "--version", 4,
        "--sample", demo / "ctr_sample.json", "--quantize", "int8",
        "--calibration", calibration, "--quantize-atol", "1",
        "--eval", demo / "ctr_eval.json", "--max-metric-drop", "0.005",
    )
    assert result.code == 2
    assert result.error.startswith("error: --max-metric-drop 0.005: int8 loses ")
    assert "nothing published" in result.error
    assert not (tmp_path / "repo" / "ctr" / "4").exists()
    assert leftovers(tmp_path) == []


def test_parity_past_the_tolerance_publishes_nothing(demo, tmp_path, run_export, leftovers):
    result = run_export(
        "keras", demo / "model.h5", "--name", "ctr", "--repo", tmp_path, "--version", 5,
        "--sample", demo / "ctr_sample.json", "--quantize", "dynamic", "--quantize-atol", "0",
    )
    assert result.code == 2
    assert "parity check failed: output 'score' differs by" in result.error
    assert "the dynamic TF Lite model (allowed: --quantize-atol 0)" in result.error
    assert not (tmp_path / "ctr" / "5").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--eval", "x.json"], "--eval needs --quantize MODE"),
        (["--quantize", "int8", "--max-metric-drop", "0.01"], "--max-metric-drop needs --eval"),
        (["--quantize", "float16", "--calibration", "{sample}"], "it needs --quantize int8"),
        (["--quantize", "int8", "--eval", "missing.json"], "--eval missing.json: no such file"),
        (["--quantize", "dynamic", "--quantize-atol", "-1"], "--quantize-atol must be"),
    ],
)
def test_bad_quantize_options_are_refused_before_loading(
    args, message, demo, tmp_path, run_export
):
    argv = [a.format(sample=demo / "ctr_sample.json") for a in args]
    result = run_export("keras", demo / "model.h5", "--name", "ctr", "--repo", tmp_path, *argv)
    assert result.code == 2
    assert message in result.error
    assert "loading" not in result.err  # refused before the model is read
    assert not (tmp_path / "ctr").exists()


def test_unknown_mode_is_a_usage_error(tmp_path, run_cli):
    result = run_cli("keras", "model.h5", "--name", "ctr", "--repo", tmp_path, "--quantize", "int4")
    assert result.code == 2
    assert "argument --quantize: invalid choice: 'int4'" in result.error


def test_labels_that_do_not_fit_the_rows_are_refused(demo, tmp_path, run_export, leftovers):
    body = json.loads((demo / "ctr_eval.json").read_text())
    body["labels"] = body["labels"][:-1]
    bad = tmp_path / "eval.json"
    bad.write_text(json.dumps(body))
    result = run_export(
        "keras", demo / "model.h5", "--name", "ctr", "--repo", tmp_path / "repo",
        "--sample", demo / "ctr_sample.json", "--quantize", "float16", "--eval", bad,
    )
    assert result.code == 2
    rows = len(body["labels"]) + 1
    assert f"--eval {bad}: {rows - 1} labels for {rows} rows" in result.error
    assert leftovers(tmp_path) == []
