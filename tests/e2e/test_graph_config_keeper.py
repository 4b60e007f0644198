"""The keeper against a real graph_service: pins load, one writer, a config not taken is undone.

The keeper runs in this process (asyncio, the real gRPC client) over a SQLite
database; the graph tier is ``python -m graph_service`` polling the effective
file, with the flags ``./scripts/up`` gives it. Versions are real SavedModels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.ctr_versions import publish_version
from support.graph_tier import GraphTier, graph_tier

from graph_service.command import LOCAL_STACK_FLAGS
from logic_service.graph.grpc_client import GrpcGraphClient
from logic_service.pinning.keeper import GraphConfigKeeper
from logic_service.pinning.pins import OPERATOR, PinStore
from logic_service.storage.database import open_database
from logic_service.storage.rollout_state import RolloutStore

from .stack import MODEL

V0, V1 = 1_810_000_000, 1_810_000_001


@dataclass
class KeptStack:
    graph: GraphTier
    user_config: Path
    effective: Path
    engine: Any


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory, transformer: Any) -> Iterator[KeptStack]:
    directory = tmp_path_factory.mktemp("keeper")
    repo = directory / "serving_models"
    for version in (V0, V1):
        publish_version(repo, MODEL, version, transformer, seed=version % 7)
    user_config = directory / "models.config"
    user_config.write_text(
        f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{repo / MODEL}" '
        'model_platform: "tensorflow" model_version_policy { latest { num_versions: 1 } } } }\n'
    )
    effective = directory / "graph" / "models.config"
    effective.parent.mkdir()
    effective.write_bytes(user_config.read_bytes())  # as ./scripts/up seeds it
    tier = graph_tier(
        effective,
        repo,
        directory / "graph.log",
        (MODEL,),
        *LOCAL_STACK_FLAGS,
        until=lambda tier: tier.available_versions() == [V1],
    )
    engine = open_database(f"sqlite:///{directory / 'tierkit.db'}")
    try:
        yield KeptStack(tier, user_config, effective, engine)
    finally:
        engine.dispose()
        tier.stop()


def _keeper(kept: KeptStack, client: Any, effective: Path | None = None, **kw: Any):
    return GraphConfigKeeper(
        kept.user_config, effective or kept.effective, kept.engine, client, interval_s=0.2, **kw
    )


async def _tick_until(keepers: list[GraphConfigKeeper], done, limit_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not done():
        assert loop.time() < deadline, "not within the time limit"
        for keeper in keepers:
            await keeper.tick()
        await asyncio.sleep(0.2)


def test_a_pin_loads_the_old_version_with_one_writer_and_its_release_unloads_it(
    kept: KeptStack,
) -> None:
    pins = PinStore(kept.engine)

    async def scenario() -> None:
        client = GrpcGraphClient(f"127.0.0.1:{kept.graph.grpc_port}")
        first, second = _keeper(kept, client), _keeper(kept, client)
        try:
            pins.add(MODEL, [V0], OPERATOR, "keep the old one")
            await _tick_until([first, second], lambda: first.last_good is not None, 5)
            await _tick_until(
                [first, second],
                lambda: kept.graph.available_versions() == [V0, V1] and first.pending is None,
                30,
            )
            assert second.last_good is None and second.pending is None  # never wrote
            assert f"versions: {V0}" in kept.effective.read_text()
            pins.remove(MODEL, [V0], OPERATOR)
            await _tick_until([first, second], lambda: kept.graph.available_versions() == [V1], 30)
            assert kept.effective.read_bytes() == kept.user_config.read_bytes()
        finally:
            await client.close()

    asyncio.run(scenario())
    kinds = [e["kind"] for e in RolloutStore(kept.engine).events(MODEL)]
    assert kinds == ["graph_config", "graph_config"]  # pinned, then released


def test_a_config_the_graph_tier_does_not_take_is_restored_and_reported(
    kept: KeptStack, tmp_path: Path
) -> None:
    """The keeper writes a file the graph tier does not poll: nothing loads, so it undoes it."""
    elsewhere = tmp_path / "not-polled.config"
    elsewhere.write_bytes(kept.user_config.read_bytes())
    pins = PinStore(kept.engine)

    async def scenario() -> GraphConfigKeeper:
        client = GrpcGraphClient(f"127.0.0.1:{kept.graph.grpc_port}")
        keeper = _keeper(kept, client, effective=elsewhere, verify_s=2.0)
        try:
            pins.add(MODEL, [V0], OPERATOR, "never loads")
            await _tick_until([keeper], lambda: keeper.refused, 15)
        finally:
            pins.remove(MODEL, [V0], OPERATOR)
            await client.close()
        return keeper

    keeper = asyncio.run(scenario())
    assert elsewhere.read_bytes() == kept.user_config.read_bytes()  # the last good one again
    (why,) = [why for _, why in keeper.refused.values()]
    assert f"did not load the pinned versions within 2 s (version {V0} of {MODEL} is END" in why
    event = RolloutStore(kept.engine).events(MODEL)[-1]
    assert (
        event["kind"] == "pin_failed" and "restored the last good graph config" in event["reason"]
    )


def test_a_write_still_being_checked_gives_way_to_a_new_plan(
    kept: KeptStack, tmp_path: Path
) -> None:
    """A pin released while its write is unverified: the keeper writes the new plan at once.

    Before, it waited for the old write until ``verify_s`` and reported nothing meanwhile
    (seen on CI: a canary's candidate deleted while its pin was being checked).
    """
    elsewhere = tmp_path / "not-polled.config"
    elsewhere.write_bytes(kept.user_config.read_bytes())
    pins = PinStore(kept.engine)
    before = len(RolloutStore(kept.engine).events(MODEL))

    async def scenario() -> GraphConfigKeeper:
        client = GrpcGraphClient(f"127.0.0.1:{kept.graph.grpc_port}")
        keeper = _keeper(kept, client, effective=elsewhere, verify_s=600.0)
        try:
            pins.add(MODEL, [V0], OPERATOR, "released before it loads")
            # 15 s: the lease of the last test's keeper runs out first
            await _tick_until([keeper], lambda: keeper.pending is not None, 15)
            assert f"versions: {V0}" in elsewhere.read_text()
            pins.remove(MODEL, [V0], OPERATOR)
            await _tick_until([keeper], lambda: keeper.pending is None, 5)
        finally:
            pins.remove(MODEL, [V0], OPERATOR)
            await client.close()
        return keeper

    keeper = asyncio.run(scenario())
    assert elsewhere.read_bytes() == kept.user_config.read_bytes()
    assert not keeper.refused and keeper.last_good == kept.user_config.read_bytes()
    kinds = [e["kind"] for e in RolloutStore(kept.engine).events(MODEL)[before:]]
    assert kinds == ["graph_config", "graph_config"]  # pinned, released; nothing failed
