"""End to end: the CLI as a subprocess, the demo training script and scripts/publish_demo.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_cli_subprocess_export_and_inspect(functional_h5, tmp_path, run_cli):
    repo = tmp_path / "repo"
    result = run_cli("keras", functional_h5, "--name", "multi", "--repo", repo, "--version", 11)
    assert result.code == 0, result.err
    assert result.out.strip() == f"published multi version 11 to {repo / 'multi' / '11'}"
    assert "[export" in result.err and "parity ok" in result.err
    inspected = run_cli("inspect", repo / "multi" / "11")
    assert inspected.code == 0, inspected.err
    assert "category_ids" in inspected.out and "DT_INT32" in inspected.out


def test_cli_subprocess_bad_input(tmp_path, run_cli):
    result = run_cli("keras", tmp_path / "absent.h5", "--name", "m", "--repo", tmp_path / "r")
    assert result.code == 2
    assert result.error == f"error: {tmp_path / 'absent.h5'}: no such file"
    assert not (tmp_path / "r").exists()


def test_help_shows_an_example(run_cli):
    result = run_cli("checkpoint", "--help")
    assert result.code == 0
    assert "example:" in result.out and "--input x=input:0" in result.out


def _publish_demo_main():
    spec = importlib.util.spec_from_file_location(
        "publish_demo", REPO_ROOT / "scripts" / "publish_demo.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_demo_training_output(demo):
    sample = json.loads((demo / "ctr_sample.json").read_text())
    rows = np.array(sample["inputs"]["features"])
    assert rows.ndim == 2 and rows.shape[0] == 8
    import skops.io

    from logic_service.features.ctr import EXAMPLE_REQUEST, derive

    path = demo / "ctr_features.skops"
    transformer = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    import pandas as pd

    encoded = transformer.transform(pd.DataFrame([derive(EXAMPLE_REQUEST)]))
    assert encoded.shape == (1, rows.shape[1])


def test_publish_demo_trains_publishes_and_is_idempotent(tmp_path, capsys, manifest_of):
    main = _publish_demo_main()
    demo = tmp_path / "demo"
    repo, config = tmp_path / "serving_models", tmp_path / "models.config"
    args = ["--repo", str(repo), "--config", str(config), "--demo-dir", str(demo), "--quiet"]
    assert main([*args, "--rows", "300"]) == 0
    assert "training it" in capsys.readouterr().out
    version = str(int((demo / "model.h5").stat().st_mtime))
    assert [p.name for p in (repo / "ctr").iterdir()] == [version]
    manifest = manifest_of(repo / "ctr" / version)
    assert manifest["features"]["function"] == "logic_service.features.ctr:derive"
    assert manifest["parity"]["samples"] == 8
    assert 'base_path: "' + (repo / "ctr").as_posix() + '"' in config.read_text()
    first_config = config.read_text()

    assert main(args) == 0  # second run: nothing new, nothing retrained
    out = capsys.readouterr().out
    assert "already published" in out and "training it" not in out
    assert [p.name for p in (repo / "ctr").iterdir()] == [version]
    assert config.read_text() == first_config
