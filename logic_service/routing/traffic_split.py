"""Sticky, stateless traffic split: the same key always lands in the same arm.

A request key (``userId`` by default) is hashed with the model name and a salt
into a point of [0, 1); the point falls into one arm's slice of the cumulative
weights. No table of assignments exists, so every worker and every restart
agrees, and changing the salt reshuffles users on purpose. Requests without
the key get a random point: they cannot be sticky, but they still split.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from typing import Any

from logic_service.versions.routable import RoutableModel

_SCALE = float(1 << 64)


def unit_hash(*parts: str) -> float:
    """A stable point in [0, 1) from text parts (blake2b, not Python's salted ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def request_key(request: Any, field: str) -> str | None:
    """The key's value from a single-record body; batches use the first record's key."""
    if isinstance(request, dict):
        if field in request and request[field] is not None:
            return str(request[field])
        records = request.get("records")
        if isinstance(records, list) and records and isinstance(records[0], dict):
            value = records[0].get(field)
            return None if value is None else str(value)
    return None


def request_point(
    model: str, salt: str, key: str | None, rng: random.Random | None = None, purpose: str = ""
) -> float:
    """Where a request falls in [0, 1): hashed from its key, else random."""
    if key is None:
        return (rng or random).random()
    return unit_hash(model, salt, purpose, key)


def pick(weights: Sequence[tuple[str, float]], point: float) -> str:
    """The arm whose cumulative-weight slice holds ``point``."""
    total = sum(w for _, w in weights)
    if total <= 0:
        raise ValueError("weights must not all be 0")
    edge = 0.0
    for arm, weight in weights:
        edge += weight / total
        if point < edge:
            return arm
    return next(arm for arm, w in reversed(weights) if w > 0)


def resolve(target: str | None, model: RoutableModel) -> int | None:
    """A version number or label to a ready version, None when it cannot serve now."""
    if target is None:
        return None
    version = int(target) if target.isdigit() else model.labels.get(target)
    return version if version is not None and version in model.ready_versions else None


def ready_weights(weights: Mapping[str, float], model: RoutableModel) -> list[tuple[str, float]]:
    """Only arms that can serve now: an arm that is not loaded gives its share to the others."""
    return [(arm, w) for arm, w in weights.items() if w > 0 and resolve(arm, model) is not None]
