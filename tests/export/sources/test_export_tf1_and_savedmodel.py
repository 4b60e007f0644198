"""TF1 checkpoints and existing TF1/TF2 SavedModels: conversion, validation, inspection."""

from __future__ import annotations

import json

import numpy as np
import pytest

ROWS = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
# sigmoid(x . [0.5, -1, 2] + 0.25), computed here rather than taken from the tool
EXPECTED = 1 / (1 + np.exp(-(ROWS @ np.array([[0.5], [-1.0], [2.0]]) + 0.25)))


def test_checkpoint_export(tf1_checkpoint, tmp_path, run_export, manifest_of, session_predict):
    meta, prefix = tf1_checkpoint
    repo = tmp_path / "repo"
    result = run_export(
        "checkpoint",
        "--meta",
        meta,
        "--ckpt",
        prefix,
        "--input",
        "x=input_x:0",
        "--output",
        "probability=probability:0",
        "--output",
        "logits=logits",  # op name alone means its first output
        "--name",
        "tf1",
        "--repo",
        repo,
    )
    assert result.code == 0, result.err
    version_dir = repo / "tf1" / str(int(prefix.with_name(prefix.name + ".index").stat().st_mtime))
    manifest = manifest_of(version_dir)
    signature = manifest["signatures"]["serving_default"]
    assert signature["inputs"] == {
        "x": {"dtype": "DT_FLOAT", "shape": [-1, 3], "tensor_name": "input_x:0"}
    }
    assert signature["outputs"]["probability"]["tensor_name"] == "probability:0"
    assert signature["outputs"]["logits"]["tensor_name"] == "logits:0"
    assert manifest["source"]["kind"] == "checkpoint"
    assert manifest["source"]["checkpoint"] == str(prefix)
    assert manifest["parity"]["samples"] == 8
    served = session_predict(version_dir, {"x": ROWS})
    np.testing.assert_allclose(served["probability"], EXPECTED, atol=1e-6)


def test_checkpoint_wrong_tensor_name_lists_near_matches(tf1_checkpoint, tmp_path, run_export):
    meta, prefix = tf1_checkpoint
    repo = tmp_path / "repo"
    result = run_export(
        "checkpoint",
        "--meta",
        meta,
        "--ckpt",
        prefix,
        "--input",
        "x=input_y:0",
        "--output",
        "p=probability:0",
        "--name",
        "tf1",
        "--repo",
        repo,
    )
    assert result.code == 2
    assert result.error.startswith("error: --input x=input_y:0: no tensor 'input_y:0'")
    assert "near matches: input_x:0" in result.error
    assert not repo.exists()


def test_checkpoint_directory_and_default_meta(tf1_checkpoint, tmp_path, run_export):
    _, prefix = tf1_checkpoint
    result = run_export(
        "checkpoint",
        "--ckpt",
        prefix.parent,
        "--input",
        "x=input_x:0",
        "--output",
        "y=probability:0",
        "--name",
        "tf1",
        "--repo",
        tmp_path,
        "--version",
        1,
    )
    assert result.code == 0, result.err
    assert (tmp_path / "tf1" / "1" / "saved_model.pb").is_file()


def test_tf1_savedmodel_keeps_every_signature(
    tf1_savedmodel, tmp_path, run_export, manifest_of, session_predict
):
    repo = tmp_path / "repo"
    result = run_export("savedmodel", tf1_savedmodel, "--name", "builder", "--repo", repo)
    assert result.code == 0, result.err
    version_dir = repo / "builder" / str(int((tf1_savedmodel / "saved_model.pb").stat().st_mtime))
    signatures = manifest_of(version_dir)["signatures"]
    assert sorted(signatures) == ["logits", "serving_default"]
    assert signatures["logits"]["outputs"]["logits"]["shape"] == [-1, 1]
    served = session_predict(version_dir, {"x": ROWS})
    np.testing.assert_allclose(served["probability"], EXPECTED, atol=1e-6)
    assert (version_dir / "variables" / "variables.index").is_file()


def test_tf2_savedmodel(tf2_savedmodel, tmp_path, run_export, manifest_of, session_predict):
    repo = tmp_path / "repo"
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps({"instances": [[1.0, 1.0], [2.0, -1.0], [0.5, 0.0]]}))
    result = run_export(
        "savedmodel", tf2_savedmodel, "--name", "tf2", "--repo", repo, "--sample", sample
    )
    assert result.code == 0, result.err
    version_dir = next((repo / "tf2").iterdir())
    manifest = manifest_of(version_dir)
    signature = manifest["signatures"]["serving_default"]
    assert signature["inputs"]["values"]["dtype"] == "DT_FLOAT"
    assert signature["inputs"]["values"]["shape"] == [-1, 2]
    assert signature["outputs"]["total"]["shape"] == [-1]
    assert manifest["parity"]["samples"] == 3
    assert manifest["warmup"]["records"] == 3
    served = session_predict(version_dir, {"values": np.array([[1.0, 1.0]], np.float32)})
    np.testing.assert_allclose(served["total"], [5.0])


def test_inspect_text_and_json(tf1_savedmodel, run_export):
    text = run_export("inspect", tf1_savedmodel)
    assert text.code == 0, text.err
    assert "MetaGraph with tags: serve" in text.out
    assert "signature 'logits'  method: tensorflow/serving/predict" in text.out
    assert "x            DT_FLOAT   (-1, 3)" in text.out
    as_json = run_export("inspect", tf1_savedmodel, "--json")
    description = json.loads(as_json.out)
    (meta_graph,) = description["meta_graphs"]
    assert meta_graph["tags"] == ["serve"]
    assert meta_graph["signatures"]["serving_default"]["inputs"]["x"] == {
        "dtype": "DT_FLOAT",
        "shape": [-1, 3],
        "tensor_name": "input_x:0",
    }


def test_inspect_model_directory_shows_latest_version(tf2_savedmodel, tmp_path, run_export):
    for version in (3, 12):
        assert (
            run_export(
                "savedmodel",
                tf2_savedmodel,
                "--name",
                "m",
                "--repo",
                tmp_path,
                "--version",
                version,
            ).code
            == 0
        )
    result = run_export("inspect", tmp_path / "m", "--json")
    assert json.loads(result.out)["path"] == str(tmp_path / "m" / "12")


@pytest.mark.parametrize("kind", ["file", "empty dir", "missing"])
def test_inspect_bad_directory(kind, tmp_path, run_export):
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("nope")
    elif kind == "empty dir":
        target.mkdir()
    result = run_export("inspect", target)
    assert result.code == 2
    assert result.error.startswith(f"error: {target}")
