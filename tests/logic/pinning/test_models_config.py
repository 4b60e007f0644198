"""The effective config: the user's models.config plus the versions in use, and nothing else.

Real files in a tmp dir; the selection is checked against graph_service's own
policy code, so the keeper pins on top of exactly what the graph tier would
have loaded anyway.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from graph_service.serving.version_policy import aspired_versions
from logic_service.pinning.models_config import (
    base_dir_of,
    effective_config,
    published_versions,
    read_user_config,
    selected_by_policy,
)

USER = """# the user's own comment stays in their file
model_config_list {
  config {
    name: "ctr"
    base_path: "serving_models/ctr"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 1 } }
    version_labels { key: "stable" value: 5 }
  }
  config { name: "other" base_path: "/models/other" model_platform: "tensorflow" }
}
"""


@pytest.fixture
def user(tmp_path: Path):
    path = tmp_path / "models.config"
    path.write_text(USER)
    return read_user_config(path)


def _parsed(text: bytes) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(text.decode(), model_server_config_pb2.ModelServerConfig())


def test_with_nothing_in_use_the_effective_config_is_the_users_file_byte_for_byte(user) -> None:
    effective = effective_config(user, {}, {"ctr": {4, 5, 6}})
    assert effective.text == USER.encode() and effective.plans == {}
    assert effective.expected() == {}


def test_versions_in_use_are_added_to_what_the_users_policy_selects(user) -> None:
    effective = effective_config(user, {"ctr": {4, 5}}, {"ctr": {3, 4, 5, 6}, "other": {1}})
    plan = effective.plans["ctr"]
    assert (plan.selected, plan.pinned, plan.versions) == ((6,), (4, 5), (4, 5, 6))
    assert effective.expected() == {"ctr": {4, 5}}
    config = _parsed(effective.text)
    ctr, other = config.model_config_list.config
    assert list(ctr.model_version_policy.specific.versions) == [4, 5, 6]
    assert dict(ctr.version_labels) == {"stable": 5}  # labels travel on
    assert ctr.base_path == "serving_models/ctr"  # resolved by whoever serves it, as before
    original = _parsed(USER.encode()).model_config_list.config[1]
    assert other == original  # a model with nothing in use is left as written
    assert effective.text.startswith(b"# Written by tierkit's logic tier from models.config")
    # every process computes the same bytes from the same inputs
    again = effective_config(user, {"ctr": {5, 4}}, {"ctr": {6, 5, 4, 3}, "other": {1}})
    assert again.text == effective.text


def test_a_version_in_use_without_a_folder_cannot_be_pinned(user) -> None:
    only_gone = effective_config(user, {"ctr": {2}}, {"ctr": {5, 6}})
    assert only_gone.text == USER.encode()  # nothing to pin: the user's file
    some_gone = effective_config(user, {"ctr": {2, 5}}, {"ctr": {5, 6}})
    assert some_gone.plans["ctr"].absent == (2,) and some_gone.plans["ctr"].pinned == (5,)


def test_an_unlistable_model_folder_leaves_the_entry_as_written(user) -> None:
    assert effective_config(user, {"ctr": {5}}, {"ctr": None}).text == USER.encode()


@pytest.mark.parametrize(
    "policy",
    [
        "latest { num_versions: 1 }",
        "latest { num_versions: 2 }",
        "all {}",
        "specific { versions: 3 versions: 9 }",
        "",
    ],
)
def test_the_selection_is_graph_services_own(policy: str) -> None:
    entry = text_format.Parse(
        'name: "m" base_path: "/x" model_platform: "tensorflow" '
        + (f"model_version_policy {{ {policy} }}" if policy else ""),
        model_server_config_pb2.ModelConfig(),
    )
    on_disk = {1, 3, 7, 12}
    assert selected_by_policy(entry, on_disk) == aspired_versions(
        entry.model_version_policy, on_disk
    )


def test_folders_and_base_paths(tmp_path: Path) -> None:
    for name in ("3", "12", ".tmp-13-99", "notes"):
        (tmp_path / "m" / name).mkdir(parents=True)
    (tmp_path / "m" / "14").write_text("a file, not a version")
    assert published_versions(tmp_path / "m") == {3, 12}
    assert published_versions(tmp_path / "absent") is None
    assert base_dir_of("serving_models/m", tmp_path) == tmp_path / "serving_models/m"
    assert base_dir_of("/abs/m", tmp_path) == Path("/abs/m")
    assert base_dir_of("gs://bucket/m", tmp_path) is None


def test_an_unreadable_or_broken_users_file_is_named(tmp_path: Path) -> None:
    from logic_service.pinning.models_config import ConfigUnreadable

    with pytest.raises(ConfigUnreadable, match="cannot read"):
        read_user_config(tmp_path / "absent.config")
    broken = tmp_path / "models.config"
    broken.write_text("model_config_list { config { name: ")
    with pytest.raises(ConfigUnreadable, match="not a valid ModelServerConfig"):
        read_user_config(broken)
