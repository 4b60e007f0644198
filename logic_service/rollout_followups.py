"""What a rollout does after the primary version answered: the score-conditioned holdout.

Kept out of ``predict_service`` so the request path there stays one readable
sequence. A control-group request is answered by the control version; if that
call fails the caller still gets the primary's answer (the holdout is an
experiment, never a reason to fail a request) and the arm says so.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from logic_service.api_errors import ApiError
from logic_service.holdout import CONTROL, TREATMENT, holdout_arm, score_of
from logic_service.request_context import RequestContext

if TYPE_CHECKING:
    from logic_service.predict_service import PredictService
    from logic_service.rollout_policy import Route

log = logging.getLogger(__name__)


async def holdout(
    service: PredictService,
    route: Route,
    model: str,
    body: Any,
    context: RequestContext,
    answer: dict[str, Any],
) -> dict[str, Any]:
    spec = route.holdout
    if spec is None or route.holdout_control is None or "prediction" not in answer:
        return answer  # batches are not split into groups: one answer per request
    score = score_of(answer["prediction"], spec.output)
    group = holdout_arm(spec, model, route.salt, route.key, score, service.policy.rng)
    if group is None:
        return answer
    context.arm = group
    if group == TREATMENT:
        return answer
    artifacts = service.registry.artifacts(model, route.holdout_control)
    if artifacts is None:
        context.arm = f"{CONTROL}-unavailable"
        return answer
    try:
        control = await service._run(artifacts, body, context)
    except ApiError as exc:
        log.warning("holdout control %s/%d failed: %s", model, route.holdout_control, exc.message)
        context.arm = f"{CONTROL}-failed"
        return answer
    context.version = route.holdout_control
    return control
