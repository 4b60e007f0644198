"""The staged canary as a pure state machine: stage, clock and stats in, transition out.

Kept free of I/O and of the wall clock so that every rule (dwell, minimum
samples, each guardrail, rollback beating promotion) is tested with an
injected clock and synthetic stats; ``rollout_policy`` feeds it real numbers
from the shared database and stores what it decides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from logic_service.settings.rollout import Guardrails, RolloutSpec

Status = Literal["running", "promoted", "rolled_back"]


@dataclass(frozen=True)
class ArmStats:
    """One version's outcomes over a window, summed over every worker."""

    requests: int = 0
    errors: int = 0
    p99_ms: float | None = None
    feedback: int = 0
    metric: float | None = None  # online accuracy when labelled feedback exists
    successes: int = 0  # binary rewards, for the bandit
    failures: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class CanaryState:
    stage: int = 0
    stage_started: float = 0.0
    status: Status = "running"
    reason: str = "started"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, now: float) -> CanaryState:
        if not data:
            return cls(stage_started=now)
        return cls(**{k: data[k] for k in ("stage", "stage_started", "status", "reason")})


@dataclass(frozen=True)
class Transition:
    kind: Literal["promote", "complete", "rollback"]
    from_share: float
    to_share: float
    reason: str


def candidate_share(spec: RolloutSpec, state: CanaryState) -> float:
    """Percent of traffic the candidate gets now."""
    if state.status == "promoted":
        return 100.0
    if state.status == "rolled_back":
        return 0.0
    return spec.stages[min(state.stage, len(spec.stages) - 1)]


def judge(g: Guardrails, baseline: ArmStats, candidate: ArmStats) -> tuple[str, str]:
    """("fail" | "wait" | "pass", why). Failing needs as few samples as judging does."""
    if candidate.requests < g.min_requests:
        return "wait", f"candidate has {candidate.requests} of {g.min_requests} requests"
    rate = candidate.error_rate
    if rate > g.max_error_rate:
        return "fail", f"candidate error rate {rate:.3f} above {g.max_error_rate:.3f}"
    if baseline.requests >= g.min_requests:
        base = baseline.error_rate
        if rate > base + g.max_error_delta and (base == 0 or rate > base * g.max_error_ratio):
            return "fail", (
                f"candidate error rate {rate:.3f} vs baseline {base:.3f} "
                f"(allowed +{g.max_error_delta:.3f} and x{g.max_error_ratio:g})"
            )
        if candidate.p99_ms is not None and baseline.p99_ms:
            # Both bounds, as for errors: at 50 candidate requests the p99 is about their
            # slowest, so one stalled request on a busy host doubles a few-ms p99.
            ratio = candidate.p99_ms / baseline.p99_ms
            slower = candidate.p99_ms - baseline.p99_ms
            if ratio > g.max_p99_ratio and slower > g.max_p99_delta_ms:
                return "fail", (
                    f"candidate p99 {candidate.p99_ms:.1f} ms is x{ratio:.2f} baseline's "
                    f"{baseline.p99_ms:.1f} ms (allowed x{g.max_p99_ratio:g} "
                    f"and +{g.max_p99_delta_ms:g} ms)"
                )
    if (
        candidate.metric is not None
        and baseline.metric is not None
        and min(candidate.feedback, baseline.feedback) >= g.min_feedback
        and candidate.metric < baseline.metric - g.max_metric_drop
    ):
        return "fail", (
            f"candidate online accuracy {candidate.metric:.3f} below baseline "
            f"{baseline.metric:.3f} - {g.max_metric_drop:g}"
        )
    return "pass", (
        f"guardrails hold: {candidate.requests} requests, error rate {rate:.3f}"
        + (f", p99 {candidate.p99_ms:.1f} ms" if candidate.p99_ms is not None else "")
    )


def step(
    spec: RolloutSpec, state: CanaryState, now: float, baseline: ArmStats, candidate: ArmStats
) -> tuple[CanaryState, Transition | None]:
    """One evaluation: roll back at once on a breach, promote after the dwell if all hold."""
    if state.status != "running":
        return state, None
    share = candidate_share(spec, state)
    verdict, why = judge(spec.guardrails, baseline, candidate)
    if verdict == "fail":
        new = replace(state, status="rolled_back", stage_started=now, reason=why)
        return new, Transition("rollback", share, 0.0, why)
    if now - state.stage_started < spec.dwell_s or verdict == "wait":
        return state, None
    if state.stage + 1 >= len(spec.stages):
        new = replace(state, status="promoted", stage_started=now, reason=why)
        return new, Transition("complete", share, 100.0, why)
    new = replace(state, stage=state.stage + 1, stage_started=now, reason=why)
    return new, Transition("promote", share, spec.stages[state.stage + 1], why)


def manual(
    spec: RolloutSpec, state: CanaryState, now: float, action: str, reason: str
) -> tuple[CanaryState, Transition]:
    """An operator's promote (next stage) or rollback, outside the guardrails."""
    share = candidate_share(spec, state)
    if action == "rollback":
        return replace(state, status="rolled_back", stage_started=now, reason=reason), Transition(
            "rollback", share, 0.0, reason
        )
    if state.status == "running" and state.stage + 1 < len(spec.stages):
        new = replace(state, stage=state.stage + 1, stage_started=now, reason=reason)
        return new, Transition("promote", share, spec.stages[new.stage], reason)
    new = replace(state, status="promoted", stage_started=now, reason=reason)
    return new, Transition("complete", share, 100.0, reason)
