"""Score-conditioned holdout: some positive predictions are answered by a control version.

Only requests the primary version calls positive (score above the threshold)
are eligible, so the control group measures what the positive predictions are
worth: the same kind of request, answered by the other version. Membership is
hashed from the request key (sticky per user), random without one.
"""

from __future__ import annotations

import random
from typing import Any

from logic_service.rollout_config import HoldoutSpec
from logic_service.traffic_split import request_point

TREATMENT = "holdout-treatment"
CONTROL = "holdout-control"


def score_of(prediction: Any, output: str | None) -> float | None:
    """The scalar score of one answered record, None when it has none."""
    if isinstance(prediction, dict):
        if not prediction:
            return None
        prediction = prediction[output] if output in prediction else next(iter(prediction.values()))
    try:
        return float(prediction)
    except (TypeError, ValueError):
        return None


def holdout_arm(
    spec: HoldoutSpec,
    model: str,
    salt: str,
    key: str | None,
    score: float | None,
    rng: random.Random,
) -> str | None:
    """None for requests the holdout ignores (not positive), else the group they belong to."""
    if score is None or score <= spec.threshold:
        return None
    point = request_point(model, salt, key, rng, purpose="holdout")
    return CONTROL if point < spec.share else TREATMENT
