"""The config file poll applies a file that changed while the server was starting.

The logic tier's keeper may rewrite the graph tier's config file between the
moment graph_service reads it at start and the moment its first models have
loaded. The poll must still apply the newer file: remembering it as "already
applied" kept the old policy for as long as the file stayed the same (seen: a
``specific`` pin written 2 s after start was never applied, and a v2 version
replaced the only v1 version under ``latest``).
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format

from graph_service.serving.config_reloader import ConfigReloader
from graph_service.serving.manager import Manager
from graph_service.serving.server_config import ModelServerConfig


def _config(base: Path, policy: str) -> str:
    return (
        f'model_config_list {{ config {{ name: "m" base_path: "{base}" '
        f'model_platform: "tensorflow" {policy} }} }}\n'
    )


def _unused_load(name: str, version: int, path: Path) -> object:
    raise AssertionError(f"nothing should load: {name}/{version} at {path}")


def _reloader() -> ConfigReloader:
    return ConfigReloader(
        Manager(_unused_load),
        file_system_poll_wait_seconds=0,
        allow_version_labels_for_unavailable_models=False,
        reload_wait_seconds=1.0,
    )


def _policy(reloader: ConfigReloader) -> str:
    (entry,) = reloader.config.model_config_list.config
    return entry.model_version_policy.WhichOneof("policy_choice") or "default"


def test_a_file_rewritten_during_start_is_applied_by_the_first_poll(tmp_path: Path) -> None:
    base = tmp_path / "m"
    base.mkdir()  # no version folders: nothing loads
    path = tmp_path / "models.config"
    path.write_text(_config(base, "model_version_policy { latest { num_versions: 1 } }"))
    started_with = text_format.Parse(path.read_text(), ModelServerConfig())
    reloader = _reloader()
    reloader.start(started_with, initial_wait_seconds=0.1)
    try:
        # the keeper's rewrite lands before the server records what it applied
        path.write_text(_config(base, "model_version_policy { specific { versions: 1 } }"))
        reloader.remember_file(str(path))
        assert reloader.reload_from_file(str(path)) is True
        assert _policy(reloader) == "specific"
        assert reloader.reload_from_file(str(path)) is False  # applied once, then unchanged
    finally:
        reloader.stop()


def test_the_file_applied_at_start_is_not_applied_again(tmp_path: Path) -> None:
    base = tmp_path / "m"
    base.mkdir()
    path = tmp_path / "models.config"
    path.write_text(_config(base, ""))
    reloader = _reloader()
    reloader.start(text_format.Parse(path.read_text(), ModelServerConfig()), 0.1)
    try:
        reloader.remember_file(str(path))
        assert reloader.reload_from_file(str(path)) is False
    finally:
        reloader.stop()
