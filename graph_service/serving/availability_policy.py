"""The availability-preserving version transition policy, as a pure function.

TF Serving's ``AvailabilityPreservingPolicy`` (an ``AspiredVersionPolicy``): given
one model's versions -- each one's state and whether the source still aspires to
it -- name the single action the manager should take next, or none:

1. unload a version nobody aspires to any more, the lowest first, but only while
   that keeps the model serving: when an aspired version is AVAILABLE, when
   nothing is aspired at all (the model was removed from the config), or when
   more than one unaspired version is AVAILABLE (one may go, one still serves);
2. otherwise load a new (START) aspired version, the highest first.

So a new version is loaded, and warmed up, before the old one goes; and a new
version that fails to load leaves the old one serving. No locks, threads or I/O:
the manager takes the snapshot under its lock and applies the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from graph_service.serving.version_state import State

LOAD: Literal["load"] = "load"
UNLOAD: Literal["unload"] = "unload"


@dataclass(frozen=True)
class VersionSnapshot:
    """One version the manager holds: its number, its state, whether it is aspired."""

    version: int
    state: State
    aspired: bool


@dataclass(frozen=True)
class VersionAction:
    """Load or unload this version of the model."""

    kind: Literal["load", "unload"]
    version: int


def next_action(versions: Iterable[VersionSnapshot]) -> VersionAction | None:
    """The next load or unload for one model's versions, or None when nothing is to do."""
    versions = list(versions)
    aspired = [v for v in versions if v.aspired]
    has_aspired_serving = any(v.state == State.AVAILABLE for v in aspired)
    unaspired_serving = [v for v in versions if not v.aspired and v.state == State.AVAILABLE]
    if unaspired_serving and (not aspired or has_aspired_serving or len(unaspired_serving) > 1):
        return VersionAction(UNLOAD, min(v.version for v in unaspired_serving))
    new = [v.version for v in aspired if v.state == State.START]
    if new:
        return VersionAction(LOAD, max(new))
    return None
