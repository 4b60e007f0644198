"""Which models the logic tier serves without logic.yaml naming them (issue 29, finding 1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from logic_service.graph.client import GraphClient, VersionStatus
from logic_service.settings import LogicSettings
from logic_service.versions.discovery import discover
from logic_service.versions.registry import ModelRegistry


def _version(repo: Path, model: str, version: int) -> None:
    folder = repo / model / str(version)
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"")


def test_model_folders_with_a_version_and_models_config_entries_are_found(tmp_path) -> None:
    repo = tmp_path / "repo"
    _version(repo, "loan", 5)
    _version(repo, "ctr", 1)
    (repo / "drafts" / "notes").mkdir(parents=True)  # no integer folder
    (repo / "empty" / "3").mkdir(parents=True)  # a version folder without a SavedModel
    (repo / ".hidden" / "1").mkdir(parents=True)
    (repo / "README.md").write_text("not a model")
    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list { config { name: "fraud" base_path: "/elsewhere/fraud" } '
        'config { name: "remote" base_path: "gs://bucket/remote" } }'
    )
    found = discover(repo, config)
    assert found == {
        "ctr": repo / "ctr",
        "loan": repo / "loan",
        "fraud": Path("/elsewhere/fraud"),  # URIs are the graph tier's business only
    }
    config.write_text("model_config_list { config { name: ")  # broken: the keeper says why
    assert discover(repo, config) == {"ctr": repo / "ctr", "loan": repo / "loan"}
    assert discover(tmp_path / "absent", None) == {}


class _Graph(GraphClient):
    """A graph tier that knows no model (the registry only needs its status here)."""

    async def model_status(self, model: str, timeout_s: float) -> list[VersionStatus]:
        return []

    async def resolve_label(self, model: str, label: str, timeout_s: float) -> int | None:
        return None


def test_a_model_published_at_runtime_joins_the_registry_without_counting_for_readiness(
    tmp_path,
) -> None:
    repo = tmp_path / "repo"
    _version(repo, "ctr", 1)
    settings = LogicSettings(
        model_repository=repo, graph_config={"models_config": tmp_path / "absent.config"}
    )
    registry = ModelRegistry(settings, _Graph())
    assert registry.model_names() == ["ctr"]
    _version(repo, "loan", 7)

    async def refresh() -> None:
        registry.graph_reachable = True
        await registry.refresh_all()

    asyncio.run(refresh())
    assert registry.model_names() == ["ctr", "loan"]
    assert registry.describe()["loan"]["configured"] is False
    # ctr is logic.yaml's (the default): required; loan has never served: reported, not required
    assert [r.split(":")[0] for r in registry.readiness()] == ["model ctr"]
