"""What the keeper may hold while the logic tier has served nothing yet (issue 29, finding 2).

On a fresh start the graph tier serves version 1 seconds before the logic
tier has loaded its artifacts. A version published in that window must not
make the keeper release version 1: if the new one is refused, the model would
have nothing left to serve (seen on CI). The registry runs against a graph tier
whose metadata answers only when the test lets it, so "still loading" lasts as
long as the assertions need.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from logic_service.graph.client import GraphClient, GraphError, SignatureSpec, VersionStatus
from logic_service.settings import LogicSettings
from logic_service.versions.registry import ModelRegistry


class _Graph(GraphClient):
    """Versions 1 and 2 AVAILABLE; 2's metadata fails at once, 1's when ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def model_status(self, model: str, timeout_s: float) -> list[VersionStatus]:
        return [VersionStatus(1, "AVAILABLE"), VersionStatus(2, "AVAILABLE")]

    async def resolve_label(self, model: str, label: str, timeout_s: float) -> int | None:
        return None

    async def signature(
        self, model: str, version: int, signature_name: str, timeout_s: float
    ) -> SignatureSpec:
        if version == 1:
            await self.release.wait()
        raise GraphError(f"no metadata for version {version}")


def test_the_oldest_available_version_is_held_until_one_is_ready_or_all_are_refused(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    for version in (1, 2):  # SavedModels without a tierkit manifest: metadata from the graph
        (repo / "ctr" / str(version)).mkdir(parents=True)
        (repo / "ctr" / str(version) / "saved_model.pb").write_bytes(b"")
    settings = LogicSettings(
        model_repository=repo, graph_config={"models_config": tmp_path / "absent.config"}
    )

    async def scenario() -> list[tuple[int, ...]]:
        graph = _Graph()
        registry = ModelRegistry(settings, graph)
        seen: list[tuple[int, ...]] = []
        await registry.refresh_all()
        while 2 not in registry.refused_versions("ctr"):
            await asyncio.sleep(0.01)
        seen.append(registry.routable("ctr").ready_versions)
        seen.append(registry.holdable_versions("ctr"))  # 1 still loading: held
        graph.release.set()
        while 1 not in registry.refused_versions("ctr"):
            await asyncio.sleep(0.01)
        seen.append(registry.holdable_versions("ctr"))  # both refused: nothing to hold
        await registry.stop()
        return seen

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == [(), (1,), ()]
