"""A publish never takes serving down; a published model is served without models.config (issue 29).

``plan_effective`` on real folders, a real models.config and a real SQLite
database: the newest version the logic tier serves is in use ("last
servable"), so a newer version it refuses never becomes the only one loaded;
model folders of the repository that models.config does not name get an entry.
"""

from __future__ import annotations

import time
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from graph_service.serving.version_policy import aspired_versions
from logic_service.pinning.api_use import ApiContext
from logic_service.pinning.in_use import LAST_SERVABLE, in_use_now
from logic_service.pinning.pins import PinStore
from logic_service.pinning.plan import plan_effective
from logic_service.settings.rollout import RolloutSpec
from logic_service.storage.database import open_database
from logic_service.storage.rollout_state import RolloutStore


def _folders(repo: Path, model: str, *versions: int) -> None:
    for version in versions:
        folder = repo / model / str(version)
        folder.mkdir(parents=True)
        (folder / "saved_model.pb").write_bytes(b"")


def _setup(tmp_path: Path):
    repo = tmp_path / "repo"
    _folders(repo, "ctr", 1, 2)
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "ctr" base_path: "{repo / "ctr"}" '
        'model_platform: "tensorflow" model_version_policy { latest { num_versions: 1 } } } }'
    )
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    return repo, config, engine


def _plan(config: Path, engine, ready: dict[str, tuple[int, ...]] | None, repo: Path | None):
    apis = ApiContext(ready=(lambda model: ready[model]) if ready is not None else None)
    return plan_effective(config, RolloutStore(engine), PinStore(engine), "stable", apis, repo)


def _served(text: bytes) -> dict[str, str]:
    config = text_format.Parse(text.decode(), model_server_config_pb2.ModelServerConfig())
    return {e.name: e.model_version_policy.WhichOneof("policy_choice") for e in
            config.model_config_list.config}


def test_a_newer_version_the_logic_tier_refuses_never_unloads_the_one_serving(tmp_path) -> None:
    _repo, config, engine = _setup(tmp_path)
    # version 1 serves; 2 was published and refused (its feature code does not load)
    plan = _plan(config, engine, {"ctr": (1,)}, None)
    assert plan.effective.plans["ctr"].versions == (1, 2)
    assert [u.why for u in plan.uses["ctr"][1]] == [LAST_SERVABLE]
    parsed = text_format.Parse(
        plan.effective.text.decode(), model_server_config_pb2.ModelServerConfig()
    )
    (entry,) = parsed.model_config_list.config
    # what graph_service's own policy code loads from that entry: both versions
    assert aspired_versions(entry.model_version_policy, [1, 2]) == {1, 2}
    # once 2 is ready the pin moves to it and 1 is released
    plan = _plan(config, engine, {"ctr": (1, 2)}, None)
    assert plan.effective.plans["ctr"].versions == (2,)
    assert [u.kind for u in plan.uses["ctr"][2]] == ["servable"]


def test_without_a_logic_tier_nothing_is_pinned(tmp_path) -> None:
    """The graph tier's first config (./scripts/up seeds it): the user's file byte for byte."""
    _repo, config, engine = _setup(tmp_path)
    assert _plan(config, engine, None, None).effective.text == config.read_bytes()
    assert _plan(config, engine, {"ctr": ()}, None).effective.text == config.read_bytes()


def test_a_model_folder_models_config_does_not_name_gets_an_entry(tmp_path) -> None:
    repo, config, engine = _setup(tmp_path)
    _folders(repo, "loan", 5)
    (repo / "notes").mkdir()  # no version folder: not a model
    (repo / "empty" / "7").mkdir(parents=True)  # no SavedModel in it: not a model
    plan = _plan(config, engine, None, repo)
    assert _served(plan.effective.text) == {"ctr": "latest", "loan": "latest"}
    assert f'base_path: "{repo / "loan"}"' in plan.effective.text.decode()
    # and the logic tier's last servable loan version is kept like ctr's
    plan = _plan(config, engine, {"ctr": (2,), "loan": (5,)}, repo)
    assert _served(plan.effective.text) == {"ctr": "specific", "loan": "specific"}
    assert plan.effective.plans["loan"].versions == (5,)


def test_the_admin_view_names_the_last_servable_version(tmp_path) -> None:
    _repo, config, engine = _setup(tmp_path)
    uses = in_use_now(engine, config, "ctr", apis=ApiContext(ready=lambda model: (1, 2)))
    assert {v: [u.why for u in found] for v, found in uses.items()} == {2: [LAST_SERVABLE]}


class _SetLandsAfterTheRead(RolloutStore):
    """The rollouts as read just before ``rollout set`` commits: the old ones; then the set
    stores its canary and drops the pending pins that held its versions."""

    def __init__(self, engine, land) -> None:
        super().__init__(engine)
        self._land = land

    def load_all(self):
        records = super().load_all()
        self._land()
        return records


def test_a_plan_made_while_a_rollout_is_set_keeps_the_versions_it_names(tmp_path) -> None:
    repo, config, engine = _setup(tmp_path)
    pins, rollouts = PinStore(engine), RolloutStore(engine)
    pins.add("ctr", [1, 2], "pending:set", "rollout set (canary)", expires_at=time.time() + 60)

    def land() -> None:
        record = rollouts.ensure("ctr", RolloutSpec(), now=1.0)
        canary = RolloutSpec.model_validate(
            {"strategy": "canary", "baseline": 1, "candidate": 2, "stages": [10, 100]}
        )
        rollouts.save(record, canary, {}, "set", "test", {}, 2.0)
        pins.remove("ctr", None, "pending:set")

    plan = plan_effective(
        config, _SetLandsAfterTheRead(engine, land), pins, "stable", ApiContext(), repo
    )
    kept = plan.effective.plans.get("ctr")  # None: the user's latest:1 alone, 1 unloaded
    assert kept is not None and kept.versions == (1, 2), plan.effective.text.decode()
    # and once it has landed, the stored canary holds both
    assert _plan(config, engine, {"ctr": (1, 2)}, repo).effective.plans["ctr"].versions == (1, 2)
