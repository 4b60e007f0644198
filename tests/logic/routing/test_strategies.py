"""The fallback rule: a rollout's traffic only ever goes to versions the rollout names.

Issue 24: with the canary's baseline not loaded, traffic went to "whatever is
newest". Each strategy here meets missing versions on a snapshot where an
outsider (version 9) is ready and newest: it never answers.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from logic_service.routing.canary import CanaryState
from logic_service.routing.strategies import primary
from logic_service.routing.version_policy import NoVersion
from logic_service.settings.rollout import RolloutSpec
from logic_service.versions.routable import RoutableModel

OUTSIDER = 9


def _model(*ready: int, labels: dict[str, int] | None = None) -> RoutableModel:
    return RoutableModel("ctr", tuple(sorted(ready)), labels or {})


def _arms(model: RoutableModel, spec: RolloutSpec, state: dict | None = None) -> Counter:
    rng = random.Random(7)
    return Counter(primary(model, spec, state or {}, str(user), rng)[0] for user in range(400))


def _canary(status: str = "running") -> dict:
    return {"canary": CanaryState(stage=0, status=status).to_json()}  # type: ignore[arg-type]


CANARY = RolloutSpec(strategy="canary", baseline="1", candidate="2", stages=[10, 100])


def test_canary_splits_when_both_serve() -> None:
    arms = _arms(_model(1, 2, OUTSIDER), CANARY, _canary())
    assert set(arms) == {1, 2} and 16 <= arms[2] <= 80


def test_canary_without_its_candidate_sends_everything_to_the_baseline() -> None:
    assert _arms(_model(1, OUTSIDER), CANARY, _canary()) == Counter({1: 400})


def test_canary_without_its_baseline_sends_everything_to_the_candidate() -> None:
    assert _arms(_model(2, OUTSIDER), CANARY, _canary()) == Counter({2: 400})


def test_a_rolled_back_canary_without_its_baseline_serves_nothing() -> None:
    with pytest.raises(NoVersion, match=r"rollout versions: 1, 2; ready: 2, 9"):
        primary(_model(2, OUTSIDER), CANARY, _canary("rolled_back"), "u", random.Random())


def test_canary_baseline_defaults_to_the_stable_label() -> None:
    spec = RolloutSpec(strategy="canary", candidate="2", stages=[10])
    model = _model(1, 2, OUTSIDER, labels={"stable": 1})
    assert set(_arms(model, spec, _canary())) == {1, 2}
    with pytest.raises(NoVersion, match="rollout versions: stable, 2"):
        primary(_model(OUTSIDER), spec, _canary(), "u", random.Random())


def test_split_gives_a_missing_arms_share_to_the_others_and_never_serves_weight_0() -> None:
    spec = RolloutSpec(strategy="split", weights={"1": 90, "2": 10, "3": 0})
    assert _arms(_model(1, 3, OUTSIDER), spec) == Counter({1: 400})
    with pytest.raises(NoVersion, match="split rollout ready to serve"):
        primary(_model(3, OUTSIDER), spec, {}, "u", random.Random())


def test_blue_green_falls_to_the_standby_then_to_nothing() -> None:
    spec = RolloutSpec(strategy="blue_green", active="1", standby="2")
    assert _arms(_model(2, OUTSIDER), spec) == Counter({2: 400})
    with pytest.raises(NoVersion):
        primary(_model(OUTSIDER), spec, {}, "u", random.Random())


def test_bandit_uses_only_its_ready_arms() -> None:
    spec = RolloutSpec(strategy="bandit", arms=["1", "2"])
    assert _arms(_model(2, OUTSIDER), spec) == Counter({2: 400})
    with pytest.raises(NoVersion):
        primary(_model(OUTSIDER), spec, {}, "u", random.Random())


def test_without_a_rollout_the_users_policy_decides() -> None:
    stable = RolloutSpec()
    assert _arms(_model(1, OUTSIDER), stable) == Counter({OUTSIDER: 400})
    labelled = _model(1, OUTSIDER, labels={"stable": 1})
    assert _arms(labelled, stable) == Counter({1: 400})
