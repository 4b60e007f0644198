"""Which version serves a request.

Kept behind one small interface because routing grows (issue #5: A/B, canary,
shadow, bandits): a policy sees what the registry knows about a model (a
``RoutableModel``, ``versions/routable.py``) and the request, and names a
version. It never blocks and never does I/O.
"""

from __future__ import annotations

from typing import Any, Protocol

from logic_service.versions.routable import RoutableModel


class NoVersion(LookupError):
    """No version of the model can serve right now."""


class VersionPolicy(Protocol):
    def choose(self, model: RoutableModel, request: Any) -> int: ...


class StableOrNewest:
    """The version labelled ``stable`` when it is ready, else the newest ready version."""

    def __init__(self, label: str = "stable") -> None:
        self.label = label

    def choose(self, model: RoutableModel, request: Any = None) -> int:
        labelled = model.labels.get(self.label)
        if labelled is not None and labelled in model.ready_versions:
            return labelled
        if not model.ready_versions:
            raise NoVersion(f"model {model.name} has no version ready to serve")
        return model.ready_versions[-1]
