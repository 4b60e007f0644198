"""Sticky hashed A/B split: 10,000 requests follow the weights (chi-square) and keys stick."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from scipy.stats import chisquare
from support.rollout_store import Clock, open_store

from logic_service.routing.rollout_policy import RolloutPolicy
from logic_service.routing.traffic_split import pick, request_key, request_point, unit_hash
from logic_service.settings.rollout import RolloutSpec
from logic_service.versions.routable import RoutableModel

MODEL = RoutableModel("ctr", (1, 2, 3), {"stable": 1})
ALPHA = 0.001  # a correct splitter fails this once in a thousand seeds; the seed is fixed


def _policy(tmp_path: Path, spec: RolloutSpec, seed: int = 7) -> RolloutPolicy:
    policy = RolloutPolicy(
        open_store(tmp_path), {"ctr": spec}, clock=Clock(), rng=random.Random(seed)
    )
    policy.records = policy._load()
    return policy


def _assert_split(counts: Counter, weights: dict[int, float], total: int) -> None:
    versions = sorted(weights)
    observed = [counts.get(v, 0) for v in versions]
    expected = [total * weights[v] / sum(weights.values()) for v in versions]
    assert sum(observed) == total
    result = chisquare(observed, expected)
    assert result.pvalue > ALPHA, (observed, expected, result)


def test_keyed_requests_follow_the_weights_and_stick(tmp_path: Path) -> None:
    spec = RolloutSpec(strategy="split", weights={"stable": 90, 2: 10}, salt="exp-1")
    policy = _policy(tmp_path, spec)
    first = {}
    for i in range(10_000):
        first[f"user-{i}"] = policy.route(MODEL, {"userId": f"user-{i}", "x": 1}).version
    _assert_split(Counter(first.values()), {1: 90, 2: 10}, 10_000)
    # the same users again, in another order and from a second policy (another worker)
    other = _policy(tmp_path, spec, seed=99)
    for user in random.Random(3).sample(sorted(first), 2000):
        assert policy.route(MODEL, {"userId": user}).version == first[user]
        assert other.route(MODEL, {"userId": user}).version == first[user]


def test_three_arms_and_a_configured_key(tmp_path: Path) -> None:
    spec = RolloutSpec(strategy="split", weights={1: 50, 2: 30, 3: 20}, key="accountId")
    policy = _policy(tmp_path, spec)
    counts = Counter(policy.route(MODEL, {"accountId": i}).version for i in range(10_000))
    _assert_split(counts, {1: 50, 2: 30, 3: 20}, 10_000)
    route = policy.route(MODEL, {"accountId": 5})
    assert (route.strategy, route.arm) == ("split", str(route.version))


def test_requests_without_the_key_split_at_random(tmp_path: Path) -> None:
    policy = _policy(tmp_path, RolloutSpec(strategy="split", weights={1: 70, 2: 30}))
    counts = Counter(policy.route(MODEL, {"x": 1}).version for _ in range(10_000))
    _assert_split(counts, {1: 70, 2: 30}, 10_000)


def test_a_batch_is_routed_by_its_first_record() -> None:
    assert request_key({"records": [{"userId": "a"}, {"userId": "b"}]}, "userId") == "a"
    assert request_key({"records": []}, "userId") is None
    assert request_key([1, 2], "userId") is None


def test_salt_reshuffles_and_an_arm_not_ready_gives_its_share_away(tmp_path: Path) -> None:
    a = [request_point("ctr", "s1", str(i)) < 0.5 for i in range(1000)]
    b = [request_point("ctr", "s2", str(i)) < 0.5 for i in range(1000)]
    assert 350 < sum(x != y for x, y in zip(a, b, strict=True)) < 650  # independent halves
    policy = _policy(tmp_path, RolloutSpec(strategy="split", weights={1: 50, 9: 50}))
    assert {policy.route(MODEL, {"userId": i}).version for i in range(200)} == {1}


def test_pick_edges() -> None:
    weights = [("a", 1.0), ("b", 0.0), ("c", 3.0)]
    assert pick(weights, 0.0) == "a"
    assert pick(weights, 0.2499) == "a"
    assert pick(weights, 0.25) == "c"
    assert pick(weights, 0.99999999) == "c"
    assert 0 <= unit_hash("x") < 1 and unit_hash("x") == unit_hash("x")
    with pytest.raises(ValueError):
        pick([("a", 0.0)], 0.5)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"strategy": "split"}, "weights"),
        ({"strategy": "split", "weights": {"1": -1}}, "weights"),
        ({"strategy": "canary"}, "candidate"),
        ({"strategy": "canary", "candidate": 2, "stages": [5, 1]}, "stages"),
        ({"strategy": "bandit", "arms": [1]}, "two arms"),
        ({"strategy": "blue_green", "active": 1, "move_labels": True}, "models_config"),
        ({"strategy": "split", "weights": {"1": 1}, "wieghts": 2}, "wieghts"),
    ],
)
def test_bad_specs_name_the_field(spec: dict, field: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=field):
        RolloutSpec.model_validate(spec)
