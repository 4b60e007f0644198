"""Score-conditioned holdout: some positive predictions are answered by a control version.

Only requests the primary version calls positive (score above the threshold)
are eligible, so the control group measures what the positive predictions are
worth: the same kind of request, answered by the other version. Membership is
hashed from the request key (sticky per user), random without one.
"""

from __future__ import annotations

import random

from logic_service.routing.traffic_split import request_point
from logic_service.settings.rollout import HoldoutSpec

TREATMENT = "holdout-treatment"
CONTROL = "holdout-control"


def holdout_arm(
    spec: HoldoutSpec,
    model: str,
    salt: str,
    key: str | None,
    score: float | None,
    rng: random.Random | None,
) -> str | None:
    """None for requests the holdout ignores (not positive), else the group they belong to."""
    if score is None or score <= spec.threshold:
        return None
    point = request_point(model, salt, key, rng, purpose="holdout")
    return CONTROL if point < spec.share else TREATMENT
