"""Which version of a rollout answers a request, and the rule when one of them cannot.

Pure over the routable snapshot (versions ready in the graph and logic tiers,
labels) and the stored rollout, so every rule is tested without servers.

The fallback rule (docs/rollouts.md, "When a version of a rollout is
missing"): traffic only ever goes to versions the rollout names.

- split, bandit: an arm that is not ready gives its share to the other arms
  (weight > 0 for a split); an arm of weight 0 never serves;
- canary: the candidate's share goes to the baseline while the candidate is
  not ready; without a ready baseline the candidate answers everything, unless
  the canary was rolled back (then nothing of the rollout may serve);
- blue-green: the standby answers while the active version is not ready;
- when no version of the rollout can serve, the request fails (503, naming the
  rollout's versions) rather than go to a version outside it.

Only a model without a rollout (strategy ``stable``) follows the stable label,
else its newest ready version: the user's own version policy.
"""

from __future__ import annotations

import random
from typing import Any

from logic_service.routing import bandit, canary
from logic_service.routing.canary import CanaryState
from logic_service.routing.traffic_split import pick, ready_weights, request_point, resolve
from logic_service.routing.version_policy import NoVersion, StableOrNewest
from logic_service.settings.rollout import RolloutSpec
from logic_service.versions.routable import RoutableModel


def _none_ready(model: RoutableModel, spec: RolloutSpec, names: list[str | None]) -> NoVersion:
    named = ", ".join(n for n in names if n) or "none"
    ready = ", ".join(map(str, model.ready_versions)) or "none"
    return NoVersion(
        f"model {model.name} has no version of its {spec.strategy} rollout ready to serve "
        f"(rollout versions: {named}; ready: {ready}); see GET /admin/rollouts/{model.name}"
    )


def primary(
    model: RoutableModel,
    spec: RolloutSpec,
    state: dict[str, Any],
    key: str | None,
    rng: random.Random,
    stable_label: str = "stable",
) -> tuple[int, str]:
    """(version, arm) of the rollout's primary answer; raises NoVersion per the rule above."""
    strategy = spec.strategy
    if strategy == "split":
        weights = ready_weights(spec.weights, model)
        if not weights:
            raise _none_ready(model, spec, list(spec.weights))
        arm = pick(weights, request_point(model.name, spec.salt, key, rng))
        return resolve(arm, model), arm  # type: ignore[return-value]
    if strategy == "canary":
        baseline = resolve(spec.baseline or stable_label, model)
        candidate = resolve(spec.candidate, model)
        progress = CanaryState.from_json(state.get("canary"), 0.0)
        share = canary.candidate_share(spec, progress)
        point = request_point(model.name, spec.salt, key, rng, purpose="canary")
        if candidate is not None and point * 100.0 < share:
            return candidate, "candidate"
        if baseline is not None:
            return baseline, "baseline"
        if candidate is not None and progress.status != "rolled_back":
            return candidate, "candidate"
        raise _none_ready(model, spec, [spec.baseline or stable_label, spec.candidate])
    if strategy == "blue_green":
        for target in (spec.active, spec.standby):
            version = resolve(target, model)
            if version is not None:
                return version, "active" if target == spec.active else "standby"
        raise _none_ready(model, spec, [spec.active, spec.standby])
    if strategy == "bandit":
        counts = state.get("bandit", {})
        evidence = [
            bandit.ArmEvidence(arm, *counts.get(arm, (0, 0)))
            for arm in spec.arms
            if resolve(arm, model) is not None
        ]
        if not evidence:
            raise _none_ready(model, spec, list(spec.arms))
        arm = bandit.thompson_pick(evidence, rng)
        return resolve(arm, model), arm  # type: ignore[return-value]
    return StableOrNewest(stable_label).choose(model), "stable"
