"""What a rollout does after the primary version answered: the holdout, then the shadow copy.

Kept out of the predict service so the request path there stays one readable
sequence; the service hands over what these need (a runner of the model's
versions, the registry, the shadow runner, the policy's random source) and
nothing here reaches back into it. A control-group request is answered by the
control version; if that call fails the caller still gets the primary's
answer (the holdout is an experiment, never a reason to fail a request) and
the arm says so. A shadow copy then goes to its version off the request path
(``shadow.py``), compared with whichever answer the caller gets.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from logic_service.errors import ApiError
from logic_service.observability.request_context import RequestContext
from logic_service.routing.holdout import CONTROL, TREATMENT, holdout_arm
from logic_service.routing.rollout_policy import Route
from logic_service.routing.shadow import Runner, ShadowRunner
from logic_service.scores import score_of
from logic_service.versions.registry import ModelRegistry

log = logging.getLogger(__name__)


async def after_answer(
    route: Route,
    model: str,
    body: Any,
    context: RequestContext,
    answer: dict[str, Any],
    run: Runner,
    registry: ModelRegistry,
    shadow: ShadowRunner | None,
    rng: random.Random | None,
) -> dict[str, Any]:
    """The answer the caller gets: the primary's, or the holdout control's; shadow launched."""
    # The shadow compares the version the rollout routed to, even when the holdout
    # answers with its control: comparing the control with itself says nothing.
    primary, primary_s = answer, context.elapsed()
    if route.holdout is not None and route.holdout_control is not None:
        answer = await holdout(route, model, body, context, answer, run, registry, rng)
    if route.shadow_version is not None and shadow is not None:
        spec = route.shadow
        shadow.launch(
            run,
            model,
            body,
            primary,
            primary_s,
            route.shadow_version,
            spec.threshold if spec else 0.5,
            spec.output if spec else None,
        )
    return answer


async def holdout(
    route: Route,
    model: str,
    body: Any,
    context: RequestContext,
    answer: dict[str, Any],
    run: Runner,
    registry: ModelRegistry,
    rng: random.Random | None,
) -> dict[str, Any]:
    spec = route.holdout
    if spec is None or route.holdout_control is None or "prediction" not in answer:
        return answer  # batches are not split into groups: one answer per request
    score = score_of(answer["prediction"], spec.output)
    group = holdout_arm(spec, model, route.salt, route.key, score, rng)
    if group is None:
        return answer
    context.arm = group
    if group == TREATMENT:
        return answer
    if registry.artifacts(model, route.holdout_control) is None:
        context.arm = f"{CONTROL}-unavailable"
        return answer
    try:
        control = await run(route.holdout_control, body, context)
    except ApiError as exc:
        log.warning("holdout control %s/%d failed: %s", model, route.holdout_control, exc.message)
        context.arm = f"{CONTROL}-failed"
        return answer
    context.version = route.holdout_control
    return control
