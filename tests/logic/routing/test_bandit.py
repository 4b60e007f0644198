"""Thompson sampling moves traffic to the better arm as simulated rewards come in."""

from __future__ import annotations

import random
from collections import Counter

from logic_service.routing.bandit import ArmEvidence, expected_shares, thompson_pick


def test_simulated_rewards_move_most_traffic_to_the_better_arm() -> None:
    rng = random.Random(11)
    truth = {"1": 0.04, "2": 0.08}  # click-through rates: arm 2 is twice as good
    wins = {arm: [0, 0] for arm in truth}
    late = Counter()
    for step in range(6000):
        arm = thompson_pick([ArmEvidence(a, *wins[a]) for a in truth], rng)
        wins[arm][0 if rng.random() < truth[arm] else 1] += 1
        if step >= 5000:
            late[arm] += 1
    assert late["2"] / 1000 > 0.8, (late, wins)
    shares = expected_shares([ArmEvidence(a, *wins[a]) for a in truth], rng)
    assert shares["2"] > 0.8 and abs(sum(shares.values()) - 1.0) < 1e-9


def test_without_evidence_the_arms_share_evenly() -> None:
    rng = random.Random(5)
    counts = Counter(thompson_pick([ArmEvidence("a"), ArmEvidence("b")], rng) for _ in range(4000))
    assert 1800 < counts["a"] < 2200  # binomial(4000, 0.5): +-6 sigma


def test_the_evaluator_turns_feedback_into_evidence_and_records_the_shares(tmp_path) -> None:
    from support.rollout_store import Clock, open_store

    from logic_service.routing.canary import ArmStats
    from logic_service.routing.rollout_policy import RolloutPolicy
    from logic_service.settings.rollout import RolloutSpec
    from logic_service.versions.routable import RoutableModel

    feedback = {
        1: ArmStats(feedback=400, successes=20, failures=380),
        2: ArmStats(feedback=400, successes=60, failures=340),
    }
    spec = RolloutSpec(strategy="bandit", arms=[1, 2])
    policy = RolloutPolicy(
        open_store(tmp_path),
        {"ctr": spec},
        lambda model, since, arms: feedback,
        clock=Clock(),
        rng=random.Random(2),
    )
    policy.records = policy._load()
    model = RoutableModel("ctr", (1, 2), {})
    before = Counter(policy.route(model, {}).version for _ in range(1000))
    assert 400 < before[2] < 600  # no evidence yet: even
    policy.tick()
    assert policy.records["ctr"].state["bandit"] == {"1": [20, 380], "2": [60, 340]}
    after = Counter(policy.route(model, {}).version for _ in range(1000))
    assert after[2] > 900
    event = policy.store.events("ctr", kind="bandit_shares")[-1]
    assert event["details"]["shares"]["2"] > 0.9
    policy.tick()  # same evidence: no new revision, no new event
    assert len(policy.store.events("ctr", kind="bandit_shares")) == 1
