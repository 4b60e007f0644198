"""A second feature function, so one model's features visibly differ from another's.

The ``ctr_alt`` model is fitted on these features; were the logic tier to run
the demo's ``derive`` for it instead, device brands would miss their one-hot
columns and the score would change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logic_service.features import ctr

FUNCTION_PATH = "e2e.alt_features:derive"


def derive(record: Mapping[str, Any]) -> dict[str, Any]:
    features = ctr.derive(record)
    features["device_brand"] = "alt-" + features["device_brand"].lower()
    return features
