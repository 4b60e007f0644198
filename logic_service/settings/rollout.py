"""What a model's rollout should do: the typed ``rollout`` section of a model in logic.yaml.

The same object is stored in the database (``rollout_state``) and replaced
through the admin API, so one validator guards all three ways in: a typo or a
weight of -5 is refused with the field named, whichever door it came through.
Targets are version numbers or labels, kept as strings (``"2"``, ``"stable"``)
because YAML and JSON give both and the policy resolves them per request.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from logic_service.settings.strict import Strict

Strategy = Literal["stable", "split", "canary", "blue_green", "bandit"]
DEFAULT_STAGES = (1.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def _target(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Guardrails(Strict):
    """Candidate vs baseline over one stage; any breach rolls the canary back at once."""

    max_error_rate: float = Field(0.05, ge=0, le=1, description="Absolute candidate error rate.")
    max_error_ratio: float = Field(
        2.0, gt=0, description="Candidate error rate over baseline's (when baseline has errors)."
    )
    max_error_delta: float = Field(
        0.01, ge=0, le=1, description="Candidate error rate may exceed baseline's by this much."
    )
    max_p99_ratio: float = Field(2.0, gt=0, description="Candidate p99 latency over baseline's.")
    max_p99_delta_ms: float = Field(
        10.0,
        ge=0,
        description="Candidate p99 may exceed baseline's by this many ms whatever the ratio "
        "(a p99 over a few dozen requests is their slowest one).",
    )
    max_metric_drop: float = Field(
        0.05, ge=0, description="Online metric (accuracy) may fall this much below baseline's."
    )
    min_requests: int = Field(50, ge=1, description="Candidate requests before judging a stage.")
    min_feedback: int = Field(50, ge=1, description="Feedback per arm before the metric counts.")


class ShadowSpec(Strict):
    target: str = Field(description="Version or label that gets the copies.")
    share: float = Field(1.0, ge=0, le=1)
    threshold: float = Field(0.5, description="Scores on the same side of it agree.")
    output: str | None = Field(
        None,
        description="Output compared; default the only one, else score, probability, "
        "probabilities or scores (logic_service/scores.py).",
    )

    @field_validator("target", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return _target(value)


class HoldoutSpec(Strict):
    control: str = Field(description="Version or label that answers the control group.")
    share: float = Field(0.1, ge=0, le=1, description="Of positive predictions, sent to control.")
    threshold: float = Field(0.5, description="A primary score above it is a positive.")
    output: str | None = Field(
        None,
        description="Output that is the score; default the only one, else score, probability, "
        "probabilities or scores (logic_service/scores.py).",
    )

    @field_validator("control", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return _target(value)


class RolloutSpec(Strict):
    strategy: Strategy = "stable"
    key: str = Field("userId", min_length=1, description="Request field that makes arms sticky.")
    salt: str = Field("", description="Change it to reshuffle users between arms.")
    weights: dict[str, float] = Field(
        default_factory=dict, description="split: version or label -> weight."
    )
    baseline: str | None = Field(None, description="canary: default the stable label.")
    candidate: str | None = None
    stages: list[float] = Field(default_factory=lambda: list(DEFAULT_STAGES))
    dwell_s: float = Field(300.0, gt=0, description="canary: time each stage is held.")
    guardrails: Guardrails = Guardrails()
    active: str | None = Field(None, description="blue_green: the version taking all traffic.")
    standby: str | None = Field(None, description="blue_green: the version kept loaded.")
    move_labels: bool = Field(
        False, description="blue_green: also move stable/canary labels in models.config."
    )
    models_config: str | None = Field(None, description="blue_green: models.config to edit.")
    arms: list[str] = Field(default_factory=list, description="bandit: versions or labels.")
    shadow: ShadowSpec | None = None
    holdout: HoldoutSpec | None = None

    def label_targets(self) -> set[str]:
        """Targets naming a version label, not a number: the registry must resolve them."""
        targets = [
            *self.weights,
            self.baseline,
            self.candidate,
            self.active,
            self.standby,
            *self.arms,
            self.shadow.target if self.shadow else None,
            self.holdout.control if self.holdout else None,
        ]
        return {t for t in targets if t and not t.isdigit()}

    @field_validator("weights", mode="before")
    @classmethod
    def _weight_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(_target(k)): v for k, v in value.items()}
        return value

    @field_validator("baseline", "candidate", "active", "standby", mode="before")
    @classmethod
    def _one_target(cls, value: Any) -> Any:
        return _target(value)

    @field_validator("arms", mode="before")
    @classmethod
    def _arm_targets(cls, value: Any) -> Any:
        return [_target(v) for v in value] if isinstance(value, list) else value

    @field_validator("weights")
    @classmethod
    def _weights_sane(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, w in value.items() if w < 0]
        if bad:
            raise ValueError(f"weights must be >= 0 (negative for {', '.join(bad)})")
        if value and sum(value.values()) <= 0:
            raise ValueError("weights must not all be 0")
        return value

    @field_validator("stages")
    @classmethod
    def _stages_sane(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("stages must hold at least one traffic share")
        if any(not 0 < s <= 100 for s in value):
            raise ValueError("stages are percentages in (0, 100]")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("stages must increase")
        return value

    @model_validator(mode="after")
    def _strategy_needs(self) -> RolloutSpec:
        needs = {
            "split": ("weights",),
            "canary": ("candidate",),
            "blue_green": ("active",),
            "bandit": ("arms",),
        }.get(self.strategy, ())
        for name in needs:
            if not getattr(self, name):
                raise ValueError(f"strategy {self.strategy} needs {name!r}")
        if self.strategy == "bandit" and len(self.arms) < 2:
            raise ValueError("strategy bandit needs at least two arms")
        if self.move_labels and not self.models_config:
            raise ValueError("move_labels needs models_config (the models.config path)")
        return self
