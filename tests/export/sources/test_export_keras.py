"""Keras exports (.h5 from Keras 3 and Keras 2, .keras): signatures, parity, manifest, warmup."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _warmup_records(version_dir: Path) -> list[prediction_log_pb2.PredictionLog]:
    path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    records = []
    for raw in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw.numpy())
        records.append(log)
    return records


def test_sequential_h5_with_auto_named_input(
    sequential_h5, tmp_path, run_export, manifest_of, session_predict, leftovers
):
    repo = tmp_path / "repo"
    result = run_export("keras", sequential_h5, "--name", "seq", "--repo", repo)
    assert result.code == 0, result.err

    version = int(sequential_h5.stat().st_mtime)
    version_dir = repo / "seq" / str(version)
    assert result.out.strip().endswith(str(version_dir))
    assert (version_dir / "saved_model.pb").is_file()
    assert leftovers(repo) == []

    manifest = manifest_of(version_dir)
    signature = manifest["signatures"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    # an auto-named Sequential input gets tf.keras' "<first layer>_input" name
    assert signature["inputs"] == {
        "hidden_input": {
            "dtype": "DT_FLOAT",
            "shape": [-1, 4],
            "tensor_name": "serving_default_hidden_input:0",
        }
    }
    assert list(signature["outputs"]) == ["probability"]
    assert signature["outputs"]["probability"]["shape"] == [-1, 1]
    assert manifest["parity"]["samples"] == 8
    assert 0 <= manifest["parity"]["max_abs_diff"] <= manifest["parity"]["atol"] == 1e-5
    assert manifest["features"] is None and manifest["input_schema"] is None

    # the export serves what Keras computes, on data the parity check never saw
    import keras

    model = keras.models.load_model(sequential_h5, compile=False)
    fresh = np.random.default_rng(99).normal(size=(5, 4)).astype(np.float32)
    served = session_predict(version_dir, {"hidden_input": fresh})
    np.testing.assert_allclose(served["probability"], model.predict(fresh, verbose=0), atol=1e-5)


def test_functional_multi_input_multi_output(
    functional_h5, tmp_path, run_export, manifest_of, session_predict
):
    repo = tmp_path / "repo"
    result = run_export("keras", functional_h5, "--name", "multi", "--repo", repo, "--version", 3)
    assert result.code == 0, result.err
    version_dir = repo / "multi" / "3"
    signature = manifest_of(version_dir)["signatures"]["serving_default"]
    inputs = {k: (v["dtype"], v["shape"]) for k, v in signature["inputs"].items()}
    outputs = {k: (v["dtype"], v["shape"]) for k, v in signature["outputs"].items()}
    assert inputs == {
        "dense_features": ("DT_FLOAT", [-1, 3]),
        "category_ids": ("DT_INT32", [-1, 2]),
    }
    assert outputs == {"click": ("DT_FLOAT", [-1, 1]), "topics": ("DT_FLOAT", [-1, 3])}

    import keras

    model = keras.models.load_model(functional_h5, compile=False)
    dense = np.random.default_rng(5).normal(size=(4, 3)).astype(np.float32)
    ids = np.array([[0, 4], [1, 3], [2, 2], [4, 0]], dtype=np.int32)
    served = session_predict(version_dir, {"dense_features": dense, "category_ids": ids})
    click, topics = model.predict([dense, ids], verbose=0)
    np.testing.assert_allclose(served["click"], click, atol=1e-5)
    np.testing.assert_allclose(served["topics"], topics, atol=1e-5)

    records = _warmup_records(version_dir)
    assert len(records) == 8
    request = records[0].predict_log.request
    assert request.model_spec.name == "multi"
    assert request.model_spec.signature_name == "serving_default"
    assert set(request.inputs) == {"dense_features", "category_ids"}
    assert tf.make_ndarray(request.inputs["category_ids"]).dtype == np.int32
    assert tf.make_ndarray(request.inputs["dense_features"]).shape == (1, 3)


def test_keras_v3_file_with_dict_outputs(keras_v3_file, tmp_path, run_export, manifest_of):
    repo = tmp_path / "repo"
    result = run_export("keras", keras_v3_file, "--name", "v3", "--repo", repo, "--quiet")
    assert result.code == 0, result.err
    assert result.err == ""  # --quiet: no progress lines
    version_dir = repo / "v3" / str(int(keras_v3_file.stat().st_mtime))
    manifest = manifest_of(version_dir)
    signature = manifest["signatures"]["serving_default"]
    assert list(signature["inputs"]) == ["features"]
    assert signature["outputs"]["score"]["shape"] == [-1, 1]
    assert signature["outputs"]["embedding"]["shape"] == [-1, 2]
    assert manifest["source"] == {
        "kind": "keras",
        "path": str(keras_v3_file),
        "sha256": _sha256(keras_v3_file),
        "format": "keras",
    }


def test_h5_written_by_keras_2(tf_keras_h5, tmp_path, run_export, manifest_of, session_predict):
    repo = tmp_path / "repo"
    result = run_export("keras", tf_keras_h5, "--name", "legacy", "--repo", repo)
    assert result.code == 0, result.err
    version_dir = repo / "legacy" / str(int(tf_keras_h5.stat().st_mtime))
    signature = manifest_of(version_dir)["signatures"]["serving_default"]
    assert list(signature["inputs"]) == ["hidden_input"]
    assert list(signature["outputs"]) == ["prob"]

    import tf_keras

    model = tf_keras.models.load_model(tf_keras_h5)
    rows = np.random.default_rng(7).normal(size=(6, 3)).astype(np.float32)
    served = session_predict(version_dir, {"hidden_input": rows})
    np.testing.assert_allclose(served["prob"], model.predict(rows, verbose=0), atol=1e-5)


def test_manifest_files_and_features_of_the_demo(demo, tmp_path, run_export, manifest_of):
    repo = tmp_path / "repo"
    result = run_export(
        "keras",
        demo / "model.h5",
        "--name",
        "ctr",
        "--repo",
        repo,
        "--features",
        demo / "ctr_features.skops",
        "--sample",
        demo / "ctr_sample.json",
    )
    assert result.code == 0, result.err
    for step in ("loading", "converting", "parity", "warmup", "publishing"):
        assert step in result.err
    version = int((demo / "model.h5").stat().st_mtime)
    version_dir = repo / "ctr" / str(version)
    manifest = manifest_of(version_dir)
    assert manifest["format"] == "tierkit.manifest/1"
    assert (manifest["name"], manifest["version"]) == ("ctr", version)
    assert manifest["tool"]["name"] == "tierkit-export"
    assert manifest["created"].endswith("Z")

    copied = version_dir / "assets.extra" / "features.skops"
    features = manifest["features"]
    assert features["sha256"] == _sha256(copied) == _sha256(demo / "ctr_features.skops")
    assert features["transformer"] == "features.skops" and features["format"] == "skops"
    assert features["function"] == "logic_service.features.ctr:derive"
    assert features["signature_input"] == "features"
    import skops.io

    assert features["trusted_types"] == sorted(skops.io.get_untrusted_types(file=copied))

    from logic_service.features.ctr import INPUT_SCHEMA

    assert manifest["input_schema"] == INPUT_SCHEMA

    on_disk = {
        p.relative_to(version_dir).as_posix(): _sha256(p)
        for p in version_dir.rglob("*")
        if p.is_file() and "assets.extra" not in p.parts
    }
    assert manifest["files"] == on_disk
    assert "saved_model.pb" in on_disk and "variables/variables.index" in on_disk

    sample_rows = len(json.loads((demo / "ctr_sample.json").read_text())["inputs"]["features"])
    assert manifest["parity"]["samples"] == sample_rows
    assert manifest["warmup"]["records"] == len(_warmup_records(version_dir)) == sample_rows


def test_explicit_feature_function_and_input_schema(demo, tmp_path, run_export, manifest_of):
    schema = {
        "type": "object",
        "required": ["userId"],
        "properties": {"userId": {"type": "integer"}},
    }
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(schema))
    result = run_export(
        "keras",
        demo / "model.h5",
        "--name",
        "clicks",
        "--repo",
        tmp_path / "repo",
        "--features",
        demo / "ctr_features.skops",
        "--feature-function",
        "logic_service.features.ctr:derive",
        "--input-schema",
        schema_file,
        "--api-version",
        "v2",
        "--version",
        1,
    )
    assert result.code == 0, result.err
    manifest = manifest_of(tmp_path / "repo" / "clicks" / "1")
    assert manifest["input_schema"] == schema
    assert manifest["features"]["function"] == "logic_service.features.ctr:derive"
    assert manifest["api_version"] == "v2"  # served at /v2/models/clicks/predict


@pytest.mark.parametrize("api", ["2", "V2", "v0", "v1.1", "v12345", ""])
def test_a_bad_api_version_is_refused_before_anything_is_written(demo, tmp_path, run_export, api):
    result = run_export(
        "keras", demo / "model.h5", "--name", "ctr", "--repo", tmp_path, "--api-version", api
    )
    assert result.code == 2
    assert result.error == (
        f"error: --api-version {api!r} is not an API version: use v1, v2, ... "
        "(v and a number from 1 to 9999)"
    )
    assert not (tmp_path / "ctr").exists()


def test_manifest_is_accepted_by_the_logic_tier(demo, tmp_path, run_export):
    from logic_service.manifest import read_manifest

    result = run_export(
        "keras",
        demo / "model.h5",
        "--name",
        "ctr",
        "--repo",
        tmp_path,
        "--version",
        4,
        "--features",
        demo / "ctr_features.skops",
    )
    assert result.code == 0, result.err
    manifest = read_manifest(tmp_path / "ctr" / "4", "ctr", 4)
    assert manifest.features is not None and manifest.features.signature_input == "features"
    raw = json.loads((tmp_path / "ctr" / "4" / "assets.extra" / "tierkit.json").read_text())
    assert raw["api_version"] == manifest.api_version == "v1"  # written even when defaulted
