"""Goal 1 measured in pairs: the no-op ceiling and graph_service, turn about.

The speed of the bench machine drifts by up to a third within minutes, with no
steal showing (docs/benchmarks.md). The table's no-op cell and graph_service
cell are measured minutes apart, so their ratio carries that drift: the same
code gave 50 % and 66 % in two runs an hour apart. Here both servers run at
once and idle while the other is measured; short cells alternate (ABBA order
over the rounds), and each round's ratio compares two cells seconds apart. The
median of the round ratios is the goal's figure; every round is reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedRound:
    ceiling: float  # predictions/s of the no-op server
    server: float  # predictions/s of graph_service, batched

    @property
    def ratio(self) -> float:
        return self.server / self.ceiling if self.ceiling > 0 else float("nan")


@dataclass(frozen=True)
class PairedResult:
    rounds: list[PairedRound]

    @property
    def ratio(self) -> float:
        """Median of the rounds' ratios (nan without a round)."""
        ratios = [r.ratio for r in self.rounds]
        return statistics.median(ratios) if ratios else float("nan")

    def describe(self) -> str:
        each = ", ".join(f"{r.server:,.0f}/{r.ceiling:,.0f}" for r in self.rounds)
        low = min((r.ratio for r in self.rounds), default=float("nan"))
        high = max((r.ratio for r in self.rounds), default=float("nan"))
        return (
            f"median of {len(self.rounds)} rounds {self.ratio:.0%} (rounds {low:.0%}-{high:.0%}; "
            f"graph_service/no-op predictions/s: {each})"
        )


def measure_pairs(
    rounds: int, ceiling: Callable[[], float], server: Callable[[], float]
) -> PairedResult:
    """``rounds`` pairs of cells; odd rounds measure the server first (ABBA)."""
    measured: list[PairedRound] = []
    for index in range(rounds):
        if index % 2 == 0:
            first = ceiling()
            measured.append(PairedRound(first, server()))
        else:
            second = server()
            measured.append(PairedRound(ceiling(), second))
    return PairedResult(measured)
