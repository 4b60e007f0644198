"""Atomic publishing, --force, and every kind of bad input (exit 2, nothing left behind)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest


def test_build_happens_in_tmp_dir_then_rename(sequential_h5, tmp_path, run_export, leftovers):
    result = run_export("keras", sequential_h5, "--name", "m", "--repo", tmp_path, "--version", 5)
    assert result.code == 0, result.err
    assert f"{tmp_path / 'm' / f'.tmp-5-{os.getpid()}'}" in result.err
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["5"]
    version_dir = tmp_path / "m" / "5"
    assert {p.name for p in version_dir.iterdir()} >= {
        "saved_model.pb",
        "variables",
        "assets.extra",
    }
    assert leftovers(tmp_path) == []


def test_existing_version_is_refused_then_replaced_with_force(
    sequential_h5, functional_h5, tmp_path, run_export, manifest_of, leftovers
):
    assert (
        run_export("keras", sequential_h5, "--name", "m", "--repo", tmp_path, "--version", 9).code
        == 0
    )
    version_dir = tmp_path / "m" / "9"
    before = (version_dir / "saved_model.pb").read_bytes()

    refused = run_export("keras", functional_h5, "--name", "m", "--repo", tmp_path, "--version", 9)
    assert refused.code == 2
    assert "version 9 already exists" in refused.error and "--force" in refused.error
    assert (version_dir / "saved_model.pb").read_bytes() == before

    forced = run_export(
        "keras", functional_h5, "--name", "m", "--repo", tmp_path, "--version", 9, "--force"
    )
    assert forced.code == 0, forced.err
    assert manifest_of(version_dir)["source"]["path"] == str(functional_h5)
    assert (version_dir / "saved_model.pb").read_bytes() != before
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["9"]
    assert leftovers(tmp_path) == []


def test_failed_parity_publishes_nothing_and_keeps_other_versions(
    random_savedmodel, tf2_savedmodel, tmp_path, run_export, leftovers
):
    assert (
        run_export(
            "savedmodel", tf2_savedmodel, "--name", "m", "--repo", tmp_path, "--version", 1
        ).code
        == 0
    )
    result = run_export(
        "savedmodel", random_savedmodel, "--name", "m", "--repo", tmp_path, "--version", 2
    )
    assert result.code == 2
    assert result.error.startswith("error: parity check failed: output 'noisy' differs by")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1"]
    assert (tmp_path / "m" / "1" / "saved_model.pb").is_file()
    assert leftovers(tmp_path) == []


def test_failed_export_into_new_repo_leaves_no_directories(random_savedmodel, tmp_path, run_export):
    repo = tmp_path / "fresh" / "repo"
    result = run_export("savedmodel", random_savedmodel, "--name", "m", "--repo", repo)
    assert result.code == 2
    assert not (tmp_path / "fresh").exists()


def test_loose_atol_accepts_what_strict_rejects(
    random_savedmodel, tmp_path, run_export, manifest_of
):
    # uniform noise in [0, 1): two runs differ by less than 1
    result = run_export(
        "savedmodel",
        random_savedmodel,
        "--name",
        "m",
        "--repo",
        tmp_path,
        "--version",
        1,
        "--atol",
        1.0,
    )
    assert result.code == 0, result.err
    parity = manifest_of(tmp_path / "m" / "1")["parity"]
    assert 0 < parity["max_abs_diff"] < 1.0 == parity["atol"]


def _not_a_model(tmp_path: Path) -> Path:
    path = tmp_path / "notes.h5"
    path.write_text("this is not HDF5")
    return path


def _hdf5_without_model(tmp_path: Path) -> Path:
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as handle:
        handle["values"] = np.arange(4)
    return path


def _garbage_meta(tmp_path: Path) -> Path:
    path = tmp_path / "broken.meta"
    path.write_bytes(b"\xff\x00 not a protobuf \x12\x34")
    return path


BAD_KERAS_INPUTS = {
    "missing file": (lambda tmp: tmp / "absent.h5", "no such file"),
    "text file named .h5": (_not_a_model, "not a Keras model file (not an HDF5 file)"),
    "hdf5 without a model": (_hdf5_without_model, "cannot load the Keras model"),
    "wrong suffix": (lambda tmp: tmp, "is a directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_KERAS_INPUTS))
def test_bad_keras_model_file(case, tmp_path, run_export):
    make, message = BAD_KERAS_INPUTS[case]
    model = make(tmp_path)
    repo = tmp_path / "repo"
    result = run_export("keras", model, "--name", "m", "--repo", repo, "--version", 1)
    assert result.code == 2
    assert message in result.error and str(model) in result.error
    assert not repo.exists()


def test_not_a_savedmodel_directory(tmp_path, run_export):
    (tmp_path / "empty").mkdir()
    result = run_export("savedmodel", tmp_path / "empty", "--name", "m", "--repo", tmp_path / "r")
    assert result.code == 2
    assert "not a SavedModel directory (no saved_model.pb" in result.error


def test_not_a_meta_graph(tf1_checkpoint, tmp_path, run_export):
    _, prefix = tf1_checkpoint
    meta = _garbage_meta(tmp_path)
    result = run_export(
        "checkpoint",
        "--meta",
        meta,
        "--ckpt",
        prefix,
        "--input",
        "x=input_x:0",
        "--output",
        "y=probability:0",
        "--name",
        "m",
        "--repo",
        tmp_path / "r",
    )
    assert result.code == 2
    assert f"--meta {meta}: not a usable MetaGraphDef" in result.error
    assert not (tmp_path / "r").exists()


def test_missing_checkpoint_prefix(tf1_checkpoint, tmp_path, run_export):
    meta, _ = tf1_checkpoint
    result = run_export(
        "checkpoint",
        "--meta",
        meta,
        "--ckpt",
        tmp_path / "model.ckpt-1",
        "--input",
        "x=input_x:0",
        "--output",
        "y=probability:0",
        "--name",
        "m",
    )
    assert result.code == 2
    assert "no checkpoint with this prefix" in result.error


def test_malformed_tensor_mapping(tf1_checkpoint, run_export):
    meta, prefix = tf1_checkpoint
    result = run_export(
        "checkpoint",
        "--meta",
        meta,
        "--ckpt",
        prefix,
        "--input",
        "input_x:0",
        "--output",
        "y=probability:0",
        "--name",
        "m",
    )
    assert result.code == 2
    assert "--input 'input_x:0': expected NAME=tensor_name:0" in result.error


@pytest.mark.parametrize("layout", ["file as repository", "repository under a file"])
def test_unwritable_repository(layout, sequential_h5, tmp_path, run_export, leftovers):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    repo = blocker if layout == "file as repository" else blocker / "repo"
    result = run_export("keras", sequential_h5, "--name", "m", "--repo", repo)
    assert result.code == 2
    assert f"repository {repo} is not writable" in result.error
    assert blocker.read_text() == "a file, not a directory"
    assert leftovers(tmp_path) == []


BAD_SAMPLES = {
    "invalid json": ('{"inputs": [[1, 2', "not valid JSON"),
    "neither inputs nor instances": ('{"rows": []}', "needs exactly one of 'inputs'"),
    "not an object": ("[1, 2, 3]", "expected a JSON object"),
    "unknown input name": ('{"inputs": {"nope": [[1, 2, 3, 4]]}}', "missing input(s) hidden_input"),
    "wrong width": (
        '{"instances": [[1, 2, 3]]}',
        "shape [1, 3] does not match the signature's [-1, 4]",
    ),
    "strings for floats": ('{"inputs": [["a", "b", "c", "d"]]}', "cannot be read as DT_FLOAT"),
    "unknown signature": (
        '{"signature_name": "other", "inputs": [[1, 2, 3, 4]]}',
        "signature 'other'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SAMPLES))
def test_bad_sample(case, sequential_h5, tmp_path, run_export, leftovers):
    body, message = BAD_SAMPLES[case]
    sample = tmp_path / "sample.json"
    sample.write_text(body)
    repo = tmp_path / "repo"
    result = run_export("keras", sequential_h5, "--name", "m", "--repo", repo, "--sample", sample)
    assert result.code == 2
    assert message in result.error and "--sample" in result.error
    assert not repo.exists() and leftovers(tmp_path) == []


def test_missing_sample_file(sequential_h5, tmp_path, run_export):
    result = run_export(
        "keras",
        sequential_h5,
        "--name",
        "m",
        "--repo",
        tmp_path,
        "--sample",
        tmp_path / "absent.json",
    )
    assert result.code == 2
    assert "--sample" in result.error and "no such file" in result.error


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_bad_model_name(name, sequential_h5, tmp_path, run_export):
    result = run_export("keras", sequential_h5, "--name", name, "--repo", tmp_path)
    assert result.code == 2
    assert "is not a valid model name" in result.error
    assert list(tmp_path.iterdir()) == []


def test_features_problems(demo, sequential_h5, tmp_path, run_export):
    not_skops = tmp_path / "features.skops"
    not_skops.write_text("plain text")
    cases = [
        (["--features", tmp_path / "absent.skops"], "--features", "no such file"),
        (["--features", not_skops], "--features", "not a skops file"),
        (["--features", demo / "model.h5"], "--features", "unknown file type '.h5'"),
        (["--feature-function", "os:path"], "--feature-function", "needs --features"),
        (
            ["--features", demo / "ctr_features.skops", "--feature-function", "nowhere.mod:derive"],
            "--feature-function",
            "cannot import nowhere.mod",
        ),
        (["--features", demo / "ctr_features.skops"], "--features", "needs a feature function"),
        (
            ["--features", demo / "ctr_features.skops", "--feature-function", "json:dumps"],
            "--features",
            "needs a JSON Schema of the raw record",
        ),
        (
            [
                "--features",
                demo / "ctr_features.skops",
                "--feature-function",
                "json:dumps",
                "--input-schema",
                tmp_path / "absent.json",
            ],
            "--input-schema",
            "no such file",
        ),
        (["--input-schema", demo / "ctr_sample.json"], "--input-schema", "needs --features"),
    ]
    for extra, option, message in cases:
        repo = tmp_path / "repo"
        result = run_export("keras", sequential_h5, "--name", "seq", "--repo", repo, *extra)
        assert result.code == 2, (extra, result.err)
        assert result.error.startswith(f"error: {option}") and message in result.error, extra
        assert not repo.exists()


def test_transformer_width_must_match_signature_input(demo, sequential_h5, tmp_path, run_export):
    result = run_export(
        "keras",
        sequential_h5,
        "--name",
        "ctr",
        "--repo",
        tmp_path / "r",
        "--features",
        demo / "ctr_features.skops",
    )
    assert result.code == 2
    width = len(json.loads((demo / "ctr_sample.json").read_text())["inputs"]["features"][0])
    assert f"the transformer produces {width} features" in result.error
    assert "'hidden_input' takes 4" in result.error
    assert not (tmp_path / "r").exists()


def test_usage_errors_are_one_error_line(run_export):
    with pytest.raises(SystemExit) as exit_info:
        run_export("keras", "--name")
    assert exit_info.value.code == 2
