"""Thompson sampling over versions with binary rewards (Beta-Bernoulli).

Each arm's success rate has the posterior Beta(1 + successes, 1 + failures);
a request draws once from every posterior and goes to the highest draw. So an
arm is chosen with the probability that it is the best one, which moves
traffic to the better version as evidence grows and keeps exploring while it
is thin. Rewards come from feedback in the shared database.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ArmEvidence:
    arm: str
    successes: int = 0
    failures: int = 0


def thompson_pick(arms: Sequence[ArmEvidence], rng: random.Random) -> str:
    if not arms:
        raise ValueError("no arm to pick from")
    draws = [(rng.betavariate(1 + a.successes, 1 + a.failures), a.arm) for a in arms]
    return max(draws)[1]


def expected_shares(
    arms: Sequence[ArmEvidence], rng: random.Random, draws: int = 2000
) -> dict[str, float]:
    """The share each arm gets under the current posteriors (Monte Carlo), for the record."""
    counts = {a.arm: 0 for a in arms}
    for _ in range(draws):
        counts[thompson_pick(arms, rng)] += 1
    return {arm: count / draws for arm, count in counts.items()}
