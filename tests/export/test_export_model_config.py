"""``python -m export config``: edits one models.config entry, keeps the others."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

OTHER_ENTRY = """
model_config_list {
  config {
    name: "other"
    base_path: "/models/other"
    model_platform: "tensorflow"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 4 }
  }
}
"""


def _parse(path: Path) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(path.read_text(), config)
    return config


def _entry(path: Path, name: str) -> model_server_config_pb2.ModelConfig:
    (entry,) = [c for c in _parse(path).model_config_list.config if c.name == name]
    return entry


def test_add_entry_with_defaults_into_new_file(tmp_path, run_export):
    config = tmp_path / "models.config"
    result = run_export("config", "--name", "ctr", "--config", config)
    assert result.code == 0, result.err
    assert result.out.startswith("added model 'ctr'")
    entry = _entry(config, "ctr")
    assert entry.base_path == "serving_models/ctr"
    assert entry.model_platform == "tensorflow"
    assert entry.model_version_policy.latest.num_versions == 1
    assert not list(tmp_path.glob(".models.config.*"))  # no temp file left


def test_update_keeps_other_entries(tmp_path, run_export):
    config = tmp_path / "models.config"
    config.write_text(OTHER_ENTRY)
    original_other = _entry(config, "other")
    assert run_export("config", "--name", "ctr", "--config", config, "--repo", "repo").code == 0
    result = run_export(
        "config",
        "--name",
        "ctr",
        "--config",
        config,
        "--policy",
        "specific:3,5",
        "--label",
        "stable=3",
        "--label",
        "canary=5",
        "--base-path",
        "/srv/models/ctr",
        "--platform",
        "tensorflow",
    )
    assert result.code == 0, result.err
    assert result.out.startswith("updated model 'ctr'")
    assert _entry(config, "other") == original_other
    entry = _entry(config, "ctr")
    assert list(entry.model_version_policy.specific.versions) == [3, 5]
    assert dict(entry.version_labels) == {"stable": 3, "canary": 5}
    assert entry.base_path == "/srv/models/ctr"
    assert [c.name for c in _parse(config).model_config_list.config] == ["other", "ctr"]

    result = run_export(
        "config", "--name", "ctr", "--config", config, "--remove-label", "canary", "--policy", "all"
    )
    assert result.code == 0, result.err
    entry = _entry(config, "ctr")
    assert dict(entry.version_labels) == {"stable": 3}
    assert entry.model_version_policy.WhichOneof("policy_choice") == "all"


def test_unchanged_entry_leaves_file_untouched(tmp_path, run_export):
    config = tmp_path / "models.config"
    config.write_text("# hand-written comment\n" + OTHER_ENTRY)
    result = run_export("config", "--name", "other", "--config", config)
    assert result.code == 0 and result.out.startswith("unchanged")
    assert config.read_text().startswith("# hand-written comment")


def test_repo_root_models_config_serves_the_demo():
    config = Path(__file__).resolve().parents[2] / "models.config"
    entry = _entry(config, "ctr")
    assert entry.base_path == "serving_models/ctr"
    assert entry.model_platform == "tensorflow"
    assert entry.model_version_policy.latest.num_versions == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "latest:0"], "--policy 'latest:0': latest:N needs N >= 1"),
        (["--policy", "newest"], "expected latest:N, all or specific:1,2"),
        (["--policy", "specific:a,b"], "specific needs version numbers"),
        (["--label", "stable"], "--label 'stable': expected LABEL=VERSION"),
        (["--label", "stable=v1"], "the version must be a non-negative integer"),
        (["--remove-label", "stable"], "--remove-label 'stable': model 'ctr' has no such label"),
    ],
)
def test_bad_config_options(args, message, tmp_path, run_export):
    config = tmp_path / "models.config"
    config.write_text(OTHER_ENTRY)
    before = config.read_text()
    result = run_export("config", "--name", "ctr", "--config", config, *args)
    assert result.code == 2
    assert message in result.error
    assert config.read_text() == before


def test_unparseable_config_file_is_not_overwritten(tmp_path, run_export):
    config = tmp_path / "models.config"
    config.write_text("model_config_list { config { nmae: 'x' } }")
    result = run_export("config", "--name", "ctr", "--config", config)
    assert result.code == 2
    assert f"--config {config}: not a valid ModelServerConfig" in result.error
    assert "nmae" in config.read_text()
