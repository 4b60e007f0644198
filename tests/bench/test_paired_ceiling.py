"""The paired goal-1 measurement: who is measured when, and which figure counts."""

from __future__ import annotations

import math

from bench.paired_ceiling import PairedResult, PairedRound, measure_pairs


def test_rounds_alternate_abba_and_pair_adjacent_cells() -> None:
    calls: list[str] = []
    rates = {"ceiling": iter([1000.0, 1100.0, 900.0, 1000.0]), "server": iter([600.0] * 4)}

    def cell(name: str):
        def measure() -> float:
            calls.append(name)
            return next(rates[name])

        return measure

    result = measure_pairs(4, cell("ceiling"), cell("server"))
    assert calls == ["ceiling", "server", "server", "ceiling"] * 2
    assert [(r.ceiling, r.server) for r in result.rounds] == [
        (1000.0, 600.0),
        (1100.0, 600.0),
        (900.0, 600.0),
        (1000.0, 600.0),
    ]


def test_the_goal_figure_is_the_median_of_round_ratios_not_a_ratio_of_medians() -> None:
    # Drift: the machine doubles its speed between rounds. Round ratios 60, 45 and
    # 50 % give 50 %; the medians of each column would give 900/2000 = 45 %.
    rounds = [PairedRound(1000, 600), PairedRound(2000, 900), PairedRound(4000, 2000)]
    assert PairedResult(rounds).ratio == 0.5
    skewed = PairedResult([PairedRound(1000, 900), PairedRound(1000, 500), PairedRound(1000, 550)])
    assert math.isclose(skewed.ratio, 0.55)
    assert "median of 3 rounds 55%" in skewed.describe()
    assert "rounds 50%-90%" in skewed.describe()


def test_no_round_is_not_a_figure() -> None:
    assert math.isnan(PairedResult([]).ratio)
    assert math.isnan(PairedRound(0.0, 10.0).ratio)
