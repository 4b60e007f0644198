"""Rollout state lives in the database: it survives a restart and every worker sees it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.rollout_store import Clock, open_store

from logic_service.routing.rollout_policy import RolloutPolicy
from logic_service.settings.rollout import RolloutSpec
from logic_service.storage.rollout_state import StaleRevision
from logic_service.versions.routable import RoutableModel

MODEL = RoutableModel("ctr", (1, 2), {"stable": 1})
YAML = RolloutSpec(strategy="blue_green", active=1, standby=2)


def _worker(tmp_path: Path, configured: dict) -> RolloutPolicy:
    policy = RolloutPolicy(open_store(tmp_path), configured, clock=Clock())
    policy.records = policy._load()
    return policy


def test_runtime_changes_survive_a_restart_until_logic_yaml_changes(tmp_path: Path) -> None:
    first = _worker(tmp_path, {"ctr": YAML})
    assert first.route(MODEL, {}).version == 1
    first.act("ctr", "switch", "test")
    assert first.route(MODEL, {}).version == 2
    restarted = _worker(tmp_path, {"ctr": YAML})  # same logic.yaml: the database wins
    assert restarted.route(MODEL, {}).version == 2
    assert [e["kind"] for e in restarted.store.events("ctr")] == ["configured", "switch"]
    changed = YAML.model_copy(update={"active": "2", "standby": "1", "salt": "new"})
    edited = _worker(tmp_path, {"ctr": changed})  # logic.yaml edited: the file wins
    assert edited.records["ctr"].spec.salt == "new"
    assert edited.store.events("ctr")[-1]["kind"] == "configured"


def test_workers_follow_a_change_on_reload(tmp_path: Path) -> None:
    a, b = _worker(tmp_path, {"ctr": YAML}), _worker(tmp_path, {"ctr": YAML})
    a.put("ctr", RolloutSpec(strategy="split", weights={2: 1}), "test")
    assert b.route(MODEL, {}).version == 1  # not re-read yet
    b.reload()
    assert b.route(MODEL, {"userId": "x"}).version == 2
    assert b.records["ctr"].revision == a.records["ctr"].revision


def test_a_model_without_rollout_routes_stable_and_can_be_given_one(tmp_path: Path) -> None:
    policy = _worker(tmp_path, {"ctr": None})
    assert policy.get("ctr").revision == 0
    assert policy.route(MODEL, {}).version == 1
    with pytest.raises(ValueError, match="no rollout"):
        policy.act("ctr", "switch", "x")
    policy.put("ctr", YAML.model_copy(update={"active": "2", "standby": "1"}), "x")
    assert policy.route(MODEL, {}).version == 2


def test_a_stale_write_is_refused(tmp_path: Path) -> None:
    policy = _worker(tmp_path, {"ctr": YAML})
    old = policy.store.get("ctr")
    policy.act("ctr", "switch", "first")
    with pytest.raises(StaleRevision):
        policy.store.save(old, YAML, {}, "set", "late writer")


def test_one_lease_holder_until_it_expires(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert store.take_lease("evaluator", "a", 5.0, now=100.0)
    assert not store.take_lease("evaluator", "b", 5.0, now=101.0)
    assert store.take_lease("evaluator", "a", 5.0, now=102.0)  # renewal
    assert store.take_lease("evaluator", "b", 5.0, now=108.0)  # a stopped renewing
    assert not store.take_lease("evaluator", "a", 5.0, now=109.0)
