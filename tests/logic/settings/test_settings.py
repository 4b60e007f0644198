from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from logic_service.settings import LogicSettings, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in [k for k in os.environ if k.startswith("TIERKIT_")]:
        monkeypatch.delenv(key)


def test_defaults_fit_the_local_stack() -> None:
    settings = load_settings()
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.graph.protocol == "grpc"
    assert settings.graph.grpc_address == "127.0.0.1:8500"
    assert settings.graph.rest_url == "http://127.0.0.1:8501"
    assert settings.model_names() == ["ctr"]
    assert settings.model_repository == Path("serving_models")
    assert settings.log.retention_days == 3
    assert settings.log.level == "INFO"
    assert settings.status_refresh_s == 1.0


def test_repository_logic_yaml_loads_and_matches_the_defaults() -> None:
    assert load_settings(REPO / "logic.yaml") == load_settings()


def test_yaml_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "logic.yaml"
    config.write_text(
        "port: 9000\n"
        "graph:\n  protocol: rest\n  deadline_ms: 300\n"
        "models:\n  - name: ctr\n  - name: other\n    deadline_ms: 50\n"
    )
    monkeypatch.setenv("TIERKIT_LOGIC_CONFIG", str(config))
    monkeypatch.setenv("TIERKIT_GRAPH__DEADLINE_MS", "700")
    monkeypatch.setenv("TIERKIT_LOG__LEVEL", "DEBUG")
    settings = load_settings(port=9100)
    assert settings.port == 9100
    assert settings.graph.protocol == "rest"  # from the file, env did not touch it
    assert settings.graph.deadline_ms == 700  # env beats the file
    assert settings.log.level == "DEBUG"
    assert settings.model_names() == ["ctr", "other"]
    assert settings.deadline_s(settings.models[1]) == pytest.approx(0.05)
    assert settings.deadline_s(settings.models[0]) == pytest.approx(0.7)


def test_an_empty_optional_path_is_unset_not_the_working_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """compose passes ``${DB_PASSWORD_FILE:-}`` as "" when the user sets nothing."""
    monkeypatch.setenv("TIERKIT_STORAGE__DATABASE_PASSWORD_FILE", "")
    monkeypatch.setenv("TIERKIT_STORAGE__SPILL__DIR", " ")
    monkeypatch.setenv("TIERKIT_GRAPH__METRICS_PATH", "")
    settings = load_settings()
    assert settings.storage.database_password_file is None
    assert settings.storage.spill.dir is None
    assert settings.graph.metrics_path is None
    monkeypatch.setenv("TIERKIT_STORAGE__SPILL__DIR", "var/spill")
    assert load_settings().storage.spill.dir == Path("var/spill")


def test_typos_and_bad_values_are_errors(tmp_path: Path) -> None:
    config = tmp_path / "logic.yaml"
    config.write_text("graph:\n  protocoll: rest\n")
    with pytest.raises(ValueError, match="protocoll"):
        load_settings(config)
    config.write_text("graph:\n  protocol: http\n")
    with pytest.raises(ValueError, match="protocol"):
        load_settings(config)
    config.write_text("models:\n  - name: a\n  - name: a\n")
    with pytest.raises(ValueError, match="unique"):
        load_settings(config)
    config.write_text("- just a list\n")
    with pytest.raises(SettingsError, match="mapping"):
        load_settings(config)
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")


def _field_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every setting, nested sections walked (not list items such as ``models``)."""
    paths = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        paths.append(path)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend(_field_paths(annotation, path))
    return paths


def test_repository_logic_yaml_lists_every_setting() -> None:
    """README says logic.yaml lists every setting: set, or commented when it has no value."""
    text = (REPO / "logic.yaml").read_text()
    data = yaml.safe_load(text)
    missing = []
    for path in _field_paths(LogicSettings):
        section: object = data
        for part in path[:-1]:
            section = section.get(part, {}) if isinstance(section, dict) else {}
        present = isinstance(section, dict) and path[-1] in section
        commented = re.search(rf"(?m)^\s*#\s*{re.escape(path[-1])}:", text)
        if not present and not commented:
            missing.append(".".join(path))
    assert not missing, f"logic.yaml does not list: {', '.join(missing)}"
