"""``RoutableModel``: what the registry publishes of one model, and all routing may choose from.

Apart from the registry that builds it and the routing that reads it, so
neither imports the other for it: the registry (``versions/registry.py``)
publishes a new snapshot whenever versions or labels change, and every
routing decision reads the snapshot it is handed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RoutableModel:
    """A snapshot of one model: versions the graph tier serves whose artifacts are loaded."""

    name: str
    ready_versions: tuple[int, ...]  # ascending
    labels: Mapping[str, int] = field(default_factory=dict)
