"""A version's state in the manager, as GetModelStatus reports it (TF Serving's LoaderHarness).

``State`` holds ModelVersionStatus.State's values. ``VersionEntry`` is the
manager's mutable record of one version (path, state, load error, the loaded
servable, the handles lent out); ``VersionStatus`` is the frozen view of it that
leaves the manager.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from graph_service.errors import ServingError
from graph_service.runtime.servable import Servable


class State(enum.IntEnum):
    """ModelVersionStatus.State values."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass
class VersionEntry:
    version: int
    path: Path
    state: State = State.START
    error: ServingError | None = None
    servable: Servable | None = None
    handles: int = 0
    # False once the version ended and left the manager; kept only for status.
    in_manager: bool = True
    cancel_load: bool = False


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: State
    error: ServingError | None
