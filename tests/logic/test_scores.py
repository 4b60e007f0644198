"""The one rule for the score of an answered record (prediction log, holdout, shadow)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from logic_service.scores import score_of


@pytest.mark.parametrize(
    ("output", "score"),
    [
        ({"score": 0.3}, 0.3),
        ({"logits": [1.5]}, 1.5),  # the only output
        ({"probability": 0.7, "class": 1}, 0.7),
        ({"scores": [0.2, 0.8], "class": 1}, None),  # not one number
        ({"a": 0.1, "b": 0.2}, None),  # no score named
        ({"score": "high"}, None),
        ({"score": True}, None),
    ],
)
def test_which_output_is_the_score(output: dict, score: float | None) -> None:
    assert score_of(output) == score


@pytest.mark.parametrize(
    ("output", "name", "score"),
    [
        ({"logits": 2.0, "probability": 0.9}, "logits", 2.0),  # the named output wins
        ({"logits": 2.0, "probability": 0.9}, None, 0.9),  # else a score name
        ({"logits": 2.0, "probability": 0.9}, "absent", 0.9),  # a name it lacks: the rule
        ({"a": 0.1, "b": 0.2}, "b", 0.2),
        ({"a": 0.1, "b": 0.2}, None, None),  # several outputs, none named: no score
        ({"score": np.array([0.25], dtype=np.float32)}, None, 0.25),  # one-element array
        ({"score": np.float32(0.5)}, "score", 0.5),
        ({"score": math.nan}, None, None),  # not finite: no score
        ({}, "score", None),
    ],
)
def test_a_rollouts_output_names_the_score_else_the_same_rule(
    output: dict, name: str | None, score: float | None
) -> None:
    assert score_of(output, name) == score


def test_a_bare_value_is_its_own_score() -> None:
    assert score_of(0.75) == 0.75
    assert score_of(np.float64(0.125)) == 0.125
    assert score_of("0.5") is None
    assert score_of(None) is None
