"""The score of one answered record: the one number evaluation, holdouts and shadows read.

One rule, so the prediction log's ``score`` column (what evaluation and the
canary's guardrails compute on), a holdout's threshold and a shadow
comparison never disagree about which output is "the score" of an answer:

1. the output named ``output`` (a rollout's ``holdout.output`` or
   ``shadow.output``), when the record has one of that name;
2. else the record's only output;
3. else the first of ``score``, ``probability``, ``probabilities``, ``scores``
   the record has;
4. else it has no score (None): several outputs, none of them named so.

The value found is a score when it is one finite number: a number, or an
array or list holding exactly one. Booleans, strings, NaN, infinities and
longer arrays are not (None), so such a record is left out of evaluation's
quality numbers, ignored by a holdout and not compared by a shadow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

SCORE_NAMES = ("score", "probability", "probabilities", "scores")


def score_of(prediction: Any, output: str | None = None) -> float | None:
    """The score of one answered record (``prediction`` of an answer, or one of ``predictions``)."""
    if not isinstance(prediction, Mapping):
        return _number(prediction)
    if output is not None and output in prediction:
        return _number(prediction[output])
    if len(prediction) == 1:
        return _number(next(iter(prediction.values())))
    for name in SCORE_NAMES:
        if name in prediction:
            return _number(prediction[name])
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.reshape(-1)[0]
    elif isinstance(value, list | tuple):
        if len(value) != 1:
            return None
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
