"""The canary state machine (injected clock, synthetic stats) and its evaluator on a real store."""

from __future__ import annotations

import random
from pathlib import Path

from support.rollout_store import Clock, open_store

from logic_service.routing import canary
from logic_service.routing.canary import ArmStats, CanaryState
from logic_service.routing.rollout_policy import RolloutPolicy
from logic_service.settings.rollout import RolloutSpec
from logic_service.versions.routable import RoutableModel

SPEC = RolloutSpec(strategy="canary", baseline=1, candidate=2, dwell_s=60)
HEALTHY = ArmStats(requests=500, errors=1, p99_ms=20.0)
BASE = ArmStats(requests=5000, errors=10, p99_ms=18.0)


def test_healthy_canary_is_promoted_through_every_stage_after_each_dwell() -> None:
    state = CanaryState(stage_started=0.0)
    now, shares = 0.0, [canary.candidate_share(SPEC, state)]
    while state.status == "running":
        held, _ = canary.step(SPEC, state, now + 59, BASE, HEALTHY)
        assert held == state  # the dwell is not over: no move
        now += 60
        state, transition = canary.step(SPEC, state, now, BASE, HEALTHY)
        assert transition is not None and transition.kind in ("promote", "complete")
        shares.append(canary.candidate_share(SPEC, state))
    assert shares == [1, 5, 10, 20, 50, 100, 100]
    assert state.status == "promoted"
    assert canary.step(SPEC, state, now + 1000, BASE, HEALTHY) == (state, None)


def test_failing_guardrails_roll_back_at_once_without_waiting_for_the_dwell() -> None:
    start = CanaryState(stage=2, stage_started=0.0)
    cases = {
        "error rate": ArmStats(requests=100, errors=30, p99_ms=20.0),
        "p99": ArmStats(requests=100, errors=0, p99_ms=80.0),
        "accuracy": ArmStats(requests=100, p99_ms=20.0, feedback=100, metric=0.6),
    }
    baseline = ArmStats(requests=1000, errors=2, p99_ms=20.0, feedback=500, metric=0.8)
    for why, candidate in cases.items():
        state, transition = canary.step(SPEC, start, 1.0, baseline, candidate)
        assert state.status == "rolled_back", why
        assert transition.kind == "rollback" and transition.to_share == 0.0
        assert why.split()[0] in transition.reason
        assert canary.candidate_share(SPEC, state) == 0.0


def test_relative_error_rate_counts_only_beyond_the_allowed_delta() -> None:
    baseline = ArmStats(requests=1000, errors=20, p99_ms=20.0)  # 2 %
    close = ArmStats(requests=200, errors=5, p99_ms=20.0)  # 2.5 %: within +1 point
    far = ArmStats(requests=200, errors=9, p99_ms=20.0)  # 4.5 %: +2.5 points and x2.25
    assert canary.judge(SPEC.guardrails, baseline, close)[0] == "pass"
    verdict, reason = canary.judge(SPEC.guardrails, baseline, far)
    assert verdict == "fail" and "baseline 0.020" in reason


def test_a_slower_p99_counts_only_beyond_both_the_ratio_and_the_delta() -> None:
    baseline = ArmStats(requests=1000, p99_ms=4.0)
    stalled_once = ArmStats(requests=60, p99_ms=12.0)  # x3, but +8 ms: one slow request
    slower = ArmStats(requests=60, p99_ms=15.0)  # x3.75 and +11 ms
    assert canary.judge(SPEC.guardrails, baseline, stalled_once)[0] == "pass"
    verdict, reason = canary.judge(SPEC.guardrails, baseline, slower)
    assert verdict == "fail" and "x3.75" in reason and "+10 ms" in reason
    strict = SPEC.guardrails.model_copy(update={"max_p99_delta_ms": 0.0})
    assert canary.judge(strict, baseline, stalled_once)[0] == "fail"


def test_too_few_samples_hold_the_stage() -> None:
    few = ArmStats(requests=10, errors=10)
    state = CanaryState(stage_started=0.0)
    assert canary.step(SPEC, state, 10_000, BASE, few) == (state, None)
    assert canary.judge(SPEC.guardrails, BASE, few)[0] == "wait"


def test_manual_promote_and_rollback() -> None:
    state, transition = canary.manual(SPEC, CanaryState(), 5.0, "promote", "ops")
    assert (state.stage, transition.to_share, state.reason) == (1, 5.0, "ops")
    state, transition = canary.manual(SPEC, state, 6.0, "rollback", "pager")
    assert state.status == "rolled_back" and transition.from_share == 5.0


def _stats_source(table: dict[int, ArmStats]):
    seen = []

    def stats(model: str, since: float, arms) -> dict[int, ArmStats]:
        seen.append((model, since, arms))
        return dict(table)

    return stats, seen


def test_evaluator_records_every_transition_and_only_the_lease_holder_acts(tmp_path: Path) -> None:
    clock = Clock()
    table = {1: BASE, 2: HEALTHY}
    stats, seen = _stats_source(table)
    spec = SPEC.model_copy(update={"stages": [10.0, 50.0, 100.0]})
    workers = [
        RolloutPolicy(open_store(tmp_path), {"ctr": spec}, stats, clock=clock, rng=random.Random(i))
        for i in range(2)
    ]
    for worker in workers:
        worker.records = worker._load()
    model = RoutableModel("ctr", (1, 2), {"stable": 1})
    for _ in range(2):  # the first tick starts the stage clock, the second sees no dwell yet
        for worker in workers:
            worker.tick()
    assert {w.route(model, {"userId": "u"}).arm for w in workers} <= {"baseline", "candidate"}
    clock.advance(61)
    for worker in workers:
        worker.tick()
    events = workers[0].store.events("ctr")
    assert [e["kind"] for e in events] == ["configured", "stage", "promote"]  # once, not twice
    assert events[-1]["details"]["to_share"] == 50.0
    workers[1].reload()
    assert (
        canary.candidate_share(
            spec, CanaryState.from_json(workers[1].records["ctr"].state["canary"], 0)
        )
        == 50.0
    )
    # the candidate starts failing: the next tick rolls back, and all traffic goes to baseline
    table[2] = ArmStats(requests=300, errors=90, p99_ms=20.0)
    clock.advance(1)
    for worker in workers:
        worker.tick()
    for worker in workers:
        worker.reload()
        assert {worker.route(model, {"userId": f"u{i}"}).version for i in range(300)} == {1}
    last = workers[0].store.events("ctr")[-1]
    assert last["kind"] == "rollback" and "error rate 0.300" in last["reason"]
    # the stage's own arms: not the candidate's traffic from before the canary
    assert seen and all(m == "ctr" and a == ("baseline", "candidate") for m, _, a in seen)
